import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The compiled entry points: end-to-end tests boot what `pnpm start` runs, not the sources. */
export const GATEWAY_MAIN = join(ROOT, "apps/gateway/dist/main.js");
export const CLI_MAIN = join(ROOT, "apps/cli/dist/main.js");

/**
 * Global setup for the tiers that spawn the gateway or the CLI: compiles the workspace
 * first (a Turborepo cache hit when nothing changed), so a test never boots stale output.
 */
export default function setup(): void {
  execFileSync(join(ROOT, "node_modules/.bin/turbo"), ["run", "build", "--output-logs=errors-only"], {
    cwd: ROOT,
    env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1" },
    stdio: ["ignore", "ignore", "inherit"],
  });
}
