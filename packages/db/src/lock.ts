import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";

/**
 * PGlite allows one process per data directory. The gateway holds this lock while it
 * runs and serves admin commands on a unix socket beside the data directory; a CLI
 * command that finds the lock held by a live gateway goes through that socket instead
 * of opening the database itself.
 */
export interface LockInfo {
  pid: number;
  role: "gateway" | "cli";
  socket?: string;
  startedAt: string;
}

export class DataDirLockedError extends Error {
  override name = "DataDirLockedError";
  constructor(
    readonly lockFile: string,
    readonly holder: LockInfo,
  ) {
    super(
      holder.role === "gateway"
        ? `the gateway (pid ${holder.pid}) has the embedded database open`
        : `another countersign command (pid ${holder.pid}) has the embedded database open; retry when it finishes`,
    );
  }
}

export const lockPath = (dataDir: string) => join(dataDir, "gateway.lock");
export const socketPath = (dataDir: string) => join(dataDir, "admin.sock");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function readLock(dataDir: string): LockInfo | null {
  try {
    const info = JSON.parse(readFileSync(lockPath(dataDir), "utf8")) as LockInfo;
    return alive(info.pid) ? info : null;
  } catch {
    return null;
  }
}

export function acquireDataDirLock(dataDir: string, info: Omit<LockInfo, "pid" | "startedAt">): () => void {
  mkdirSync(dataDir, { recursive: true });
  const file = lockPath(dataDir);
  const me: LockInfo = { pid: process.pid, startedAt: new Date().toISOString(), ...info };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, "wx", 0o600);
      writeSync(fd, JSON.stringify(me));
      closeSync(fd);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        try {
          const cur = JSON.parse(readFileSync(file, "utf8")) as LockInfo;
          if (cur.pid === process.pid) unlinkSync(file);
        } catch {}
      };
      process.once("exit", release);
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = readLock(dataDir);
      if (holder) throw new DataDirLockedError(file, holder);
      // The holder died (SIGKILL, power loss): its lock is stale.
      try {
        unlinkSync(file);
      } catch {}
    }
  }
  throw new Error(`could not take the lock ${file}`);
}
