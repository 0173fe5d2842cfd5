// Runs `prisma generate` for the workspace.
//
// The Prisma 7 CLI insists on downloading a native schema engine before any command,
// even `generate`, which never runs it. Machines without access to Prisma's binary host
// (air-gapped CI, these dev boxes) would fail, so point the CLI at an existing file when
// the user has not configured an engine. Generation itself is pure JS/WASM.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const env = { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: "1", CHECKPOINT_DISABLE: "1" };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY) env.PRISMA_SCHEMA_ENGINE_BINARY = fileURLToPath(import.meta.url);

const require = createRequire(import.meta.url);
let cli;
try {
  cli = require.resolve("prisma/build/index.js");
} catch {
  console.error("prisma-generate: the prisma CLI is not installed yet; run `pnpm install`.");
  process.exit(1);
}
if (!existsSync(cli)) process.exit(1);
const r = spawnSync(process.execPath, [cli, "generate"], { cwd: root, env, stdio: "inherit" });
process.exit(r.status ?? 1);
