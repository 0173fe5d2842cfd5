import { defineConfig } from "vitest/config";

// Three tiers kept apart (plus the fault suite): unit tests are pure and colocated;
// integration tests hit a real database (PGlite and PostgreSQL); e2e and fault tests
// boot the real gateway process.
//
// Tests import the workspace packages' sources (the "source" export condition); the
// tiers that spawn processes boot the compiled build, which build.ts compiles first.
// Vite's own defaults follow "source", since setting conditions replaces them.
const conditions = ["source", "module", "node", "development|production"];
const source = { resolve: { conditions }, ssr: { resolve: { conditions } } };
// Packages that publish a "source" export of their own (TypeScript that Node cannot load):
// Vite compiles them instead of handing them to Node, and also the packages that import
// them, since a package Node loads resolves its imports itself: the AI SDK (ai imports
// @ai-sdk/provider-utils, which imports eventsource-parser) and the OpenAI Agents SDK
// (through @modelcontextprotocol/client, which imports eventsource), and Mastra (which
// bundles AI SDK code that imports eventsource-parser).
const server = {
  deps: { inline: ["eventsource-parser", "eventsource", /@modelcontextprotocol\//, /@ai-sdk\//, /\/node_modules\/ai\//, /@openai\/agents/, /@mastra\//] },
};

export default defineConfig({
  ...source,
  test: {
    projects: [
      { ...source, test: { name: "unit", include: ["packages/*/src/**/*.test.ts", "apps/*/src/**/*.test.ts"] } },
      {
        ...source,
        test: {
          name: "integration",
          include: ["packages/*/test/**/*.int.test.ts", "apps/*/test/**/*.int.test.ts"],
          globalSetup: ["test/support/pg-global-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        ...source,
        test: {
          name: "e2e",
          server,
          include: ["test/e2e/**/*.test.ts", "packages/sdk/test/**/*.test.ts"],
          globalSetup: ["test/support/build.ts", "test/support/pg-global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        ...source,
        test: {
          name: "faults",
          server,
          include: ["test/faults/**/*.test.ts"],
          globalSetup: ["test/support/build.ts", "test/support/pg-global-setup.ts"],
          testTimeout: 600_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
      // The container and Kubernetes files: Dockerfile lint, Helm render, schema checks.
      { ...source, test: { name: "deploy", include: ["test/deploy/**/*.test.ts"], testTimeout: 60_000, hookTimeout: 60_000 } },
    ],
  },
});
