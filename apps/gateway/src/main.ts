import { EnvError } from "@countersign/config";
import { PolicyError } from "@countersign/core";
import { DataDirLockedError } from "@countersign/db";
import { toCountersignError } from "@countersign/services";
import { parseEnv } from "./env.ts";
import { StartupError, startGateway } from "./gateway.ts";
import { buildSurfaces } from "./surfaces.ts";
import { teamsSettings } from "./teams/config.ts";

/** What a failed start-up prints: one message a user can act on, never a stack trace. */
export function startupFailure(e: unknown): string {
  if (e instanceof EnvError) return `countersign: ${e.message}`;
  if (e instanceof PolicyError) return `countersign: invalid policy\n${e.message}`;
  if (e instanceof StartupError) return `countersign: cannot start: ${e.message}`;
  if (e instanceof DataDirLockedError) return `countersign: cannot start: ${e.message} (lock: ${e.lockFile})`;
  const ce = toCountersignError(e);
  if (ce.code === "service_unavailable") {
    return `countersign: cannot start: the database is unavailable (${(e as Error)?.message ?? String(e)}); check DATABASE_URL and that the server is running`;
  }
  if (ce.code !== "internal_error") return `countersign: cannot start: ${ce.code}: ${ce.message}`;
  return `countersign: failed to start: ${(e as Error)?.message ?? String(e)} (set LOG_LEVEL=debug for details)`;
}

/** Boots the gateway; failures that a user can fix are printed as one clear message. */
export async function main(): Promise<void> {
  let debug = false;
  try {
    const env = parseEnv(process.env);
    debug = env.LOG_LEVEL === "debug";
    // Surface settings that need more than one variable are checked here too, so every
    // configuration problem is reported before the database is opened.
    teamsSettings(env);
    const gw = await startGateway({ env, surfaces: (deps, log) => buildSurfaces(env, deps, log) });
    // Ctrl-C under `pnpm start` delivers SIGINT twice: the terminal signals the whole
    // process group, and pnpm forwards it to its child too. The repeat must not kill the
    // shutdown halfway (exit 130, and pnpm's "Command failed"); a second signal a user
    // sends deliberately, after a moment, still forces the exit.
    let stoppingSince: number | undefined;
    const shutdown = (signal: string) => {
      if (stoppingSince !== undefined) {
        if (Date.now() - stoppingSince > 1_000) process.exit(1);
        return;
      }
      stoppingSince = Date.now();
      gw.log.info(`received ${signal}; shutting down`);
      // Longer than the HTTP drain (SHUTDOWN_GRACE_MS) plus the relay finishing its deliveries.
      const force = setTimeout(() => process.exit(1), 20_000);
      force.unref();
      void gw.stop().then(() => process.exit(0));
    };
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
  } catch (e) {
    console.error(startupFailure(e));
    if (debug) console.error(e);
    process.exit(1);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) void main();
