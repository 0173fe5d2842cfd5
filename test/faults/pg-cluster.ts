import { execFileSync, spawn } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../support/net.ts";

/**
 * A throwaway PostgreSQL cluster on its own port and data directory, so a test can stop
 * and start "the database" without touching the shared server other tests use. initdb
 * refuses to run as root, so as root the tools run as the `postgres` OS user.
 */
export interface ThrowawayCluster {
  port: number;
  /** postgresql://postgres@127.0.0.1:<port>/postgres */
  url: string;
  start(): Promise<void>;
  /** `fast` disconnects clients and stops cleanly; `immediate` is closer to a crash. */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  destroy(): Promise<void>;
}

function binDir(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, "bin", "initdb")))
    .sort((x, y) => Number(y) - Number(x));
  return versions[0] ? join(root, versions[0], "bin") : undefined;
}

/** Why a throwaway cluster cannot be made here, or null when it can. */
export function clusterUnavailableReason(): string | null {
  const bin = binDir();
  if (!bin) return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin";
  if (process.getuid?.() === 0) {
    if (!existsSync("/usr/sbin/runuser") && !existsSync("/sbin/runuser")) return "running as root without runuser (initdb refuses root)";
    try {
      execFileSync("id", ["-u", "postgres"], { stdio: "pipe" });
    } catch {
      return "running as root and there is no postgres OS user to run initdb as";
    }
  }
  return null;
}

function run(cmd: string, args: string[], timeoutMs = 90_000): Promise<string> {
  const asRoot = process.getuid?.() === 0;
  const [file, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv as string[], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
    });
    child.stderr.on("data", (c) => {
      out += c;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(" ")} exited with ${code}:\n${out}`));
    });
  });
}

export async function createThrowawayCluster(): Promise<ThrowawayCluster> {
  const bin = binDir() as string;
  const dir = mkdtempSync(join(tmpdir(), "cs-pg-"));
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, "data");
  const port = await freePort();
  try {
    await run(join(bin, "initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"]);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`;
  const cluster: ThrowawayCluster = {
    port,
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    async start() {
      await run(join(bin, "pg_ctl"), ["-D", data, "-o", opts, "-l", join(dir, "server.log"), "-w", "-t", "60", "start"]);
    },
    async stop(mode = "fast") {
      await run(join(bin, "pg_ctl"), ["-D", data, "-m", mode, "-w", "-t", "60", "stop"]);
    },
    async destroy() {
      await cluster.stop("immediate").catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}
