import { PolicyError } from "@countersign/core";
import { DataDirLockedError } from "@countersign/db";
import { EnvError, parseEnv } from "./env.ts";
import { startGateway } from "./gateway.ts";
import { buildSurfaces } from "./surfaces.ts";

/** Boots the gateway; failures that a user can fix are printed as one clear message. */
export async function main(): Promise<void> {
  try {
    const env = parseEnv(process.env);
    const gw = await startGateway({ env, surfaces: (deps, log) => buildSurfaces(env, deps, log) });
    const shutdown = (signal: string) => {
      gw.log.info(`received ${signal}; shutting down`);
      const force = setTimeout(() => process.exit(1), 10_000);
      force.unref();
      void gw.stop().then(() => process.exit(0));
    };
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    process.once("SIGINT", () => shutdown("SIGINT"));
  } catch (e) {
    if (e instanceof EnvError || e instanceof PolicyError) {
      console.error(`countersign: ${e instanceof PolicyError ? "invalid policy\n" : ""}${e.message}`);
    } else if (e instanceof DataDirLockedError) {
      console.error(`countersign: cannot start: ${e.message} (lock: ${e.lockFile})`);
    } else {
      console.error(`countersign: failed to start: ${(e as Error).stack ?? e}`);
    }
    process.exit(1);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) void main();
