import { createReadStream, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import type { AdminOps, LoadProgress, SnapshotLine, TableCounts } from "@countersign/services";
import { type AdminSession, openAdmin, opsFor, receiptKeySources } from "./admin-client.ts";
import type { CliEnv } from "./env.ts";
import { CliError } from "./errors.ts";
import { print } from "./output.ts";

const BACKUP_FORMAT = "countersign-backup";

/** A backup file's first line; the snapshot's lines follow. */
interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: 1;
  /** The gateway's receipt key ring file (the keys that signed receipts and checkpoints), or null when there was none. */
  receiptKeys: unknown;
}

function note(json: boolean | undefined, line: string): void {
  if (!json) process.stderr.write(`${line}\n`);
}

/** One stderr line per table as it completes (and per batch on a terminal). */
function loadProgress(verb: string, json: boolean | undefined): (p: LoadProgress) => void {
  const tty = Boolean(process.stderr.isTTY);
  return (p) => {
    if (json) return;
    if (p.loaded === p.of) process.stderr.write(`${tty ? "\r" : ""}${verb} ${p.table}: ${p.loaded} rows\n`);
    else if (tty) process.stderr.write(`\r${verb} ${p.table}: ${p.loaded}/${p.of}…`);
  };
}

const rows = (c: TableCounts) => Object.values(c).reduce((a, b) => a + b, 0);

/**
 * A push source (takeSnapshot's emit) as a pull source (loadSnapshot's iterable), one line
 * in flight, so a copy holds one batch in memory whatever the size of the log.
 */
function piped(produce: (emit: (line: SnapshotLine) => Promise<void>) => Promise<unknown>): AsyncIterable<SnapshotLine> {
  return {
    async *[Symbol.asyncIterator]() {
      let wake: (() => void) | undefined;
      let taken: (() => void) | undefined;
      let slot: SnapshotLine | undefined;
      let finished = false;
      let stopped = false;
      let failed: unknown;
      const signal = () => {
        wake?.();
        wake = undefined;
      };
      const producing = produce(async (line) => {
        // The consumer gave up (the load failed): end the producer's read transaction too.
        // After the trailer there is nothing left to read, so the producer just finishes.
        if (stopped) throw new Error("the copy stopped");
        slot = line;
        signal();
        await new Promise<void>((r) => {
          taken = r;
        });
        if (stopped && !("end" in line)) throw new Error("the copy stopped");
      }).then(
        () => {
          finished = true;
          signal();
        },
        (e: unknown) => {
          failed = e ?? new Error("the snapshot failed");
          signal();
        },
      );
      try {
        yield* drain();
      } finally {
        stopped = true;
        taken?.();
        // The source's transaction has ended (committed or rolled back) before the caller closes it.
        await producing;
      }
      async function* drain(): AsyncGenerator<SnapshotLine> {
        for (;;) {
          if (slot === undefined && !finished && failed === undefined) {
            await new Promise<void>((r) => {
              wake = r;
            });
          }
          if (slot !== undefined) {
            const line = slot;
            slot = undefined;
            yield line;
            taken?.();
            continue;
          }
          if (failed !== undefined) throw failed;
          if (finished) return;
        }
      }
    },
  };
}

async function direct(env: CliEnv, what: string): Promise<AdminSession> {
  const session = await openAdmin(env);
  if (session.via === "gateway") {
    await session.close();
    throw new CliError(`a gateway is running on ${resolve(env.COUNTERSIGN_DATA_DIR)}: stop it before ${what}, so that nothing is written meanwhile`);
  }
  return session;
}

async function verified(ops: AdminOps, where: string): Promise<{ events: number; checkpoints: number }> {
  const v = await ops.verifyAudit();
  if (!v.ok)
    throw new CliError(
      `the audit log of ${where} does not verify: ${v.firstBad ? `${v.firstBad.problem}: ${v.firstBad.detail}` : "see countersign audit verify"}; nothing was copied`,
    );
  return { events: v.events, checkpoints: v.checkpoints };
}

export async function backup(o: { out: string; json?: boolean }, env: CliEnv): Promise<void> {
  const keyFile = receiptKeySources(env).keyFile;
  const header: BackupHeader = { format: BACKUP_FORMAT, version: 1, receiptKeys: existsSync(keyFile) ? JSON.parse(readFileSync(keyFile, "utf8")) : null };
  // Written beside the target and renamed at the end: a failed backup never leaves a file under the name asked for.
  // Opened before the gateway is asked for anything, so a bad path fails first; a fresh file
  // ("wx" after removing a stale one) gets mode 0600, since it holds the receipt keys.
  const partial = `${o.out}.partial`;
  rmSync(partial, { force: true });
  const file = await open(partial, "wx", 0o600).catch((e: NodeJS.ErrnoException) => {
    throw new CliError(`--out: cannot write ${partial}: ${e.code === "ENOENT" ? "no such directory" : e.message}`);
  });
  const gzip = createGzip();
  const done = pipeline(gzip, file.createWriteStream());
  // A disk that fills up fails the pipeline; every later write then rejects with its error.
  let failed: Error | undefined;
  done.catch((e: Error) => {
    failed = e;
  });
  const write = (line: unknown) =>
    new Promise<void>((ok, fail) => {
      if (failed) return fail(new CliError(`cannot write ${partial}: ${failed.message}`));
      if (gzip.write(`${JSON.stringify(line)}\n`)) return ok();
      const onDrain = () => {
        gzip.off("close", onClose);
        ok();
      };
      const onClose = () => {
        gzip.off("drain", onDrain);
        fail(new CliError(`cannot write ${partial}: ${failed?.message ?? "the file was closed"}`));
      };
      gzip.once("drain", onDrain);
      gzip.once("close", onClose);
    });
  let counts: TableCounts;
  try {
    await write(header);
    const session = await openAdmin(env);
    try {
      counts = await session.ops.snapshot(write);
    } finally {
      await session.close();
    }
    gzip.end();
    await done;
    renameSync(partial, o.out);
  } catch (e) {
    gzip.destroy();
    await done.catch(() => {});
    rmSync(partial, { force: true });
    throw e;
  }
  if (o.json) return print({ file: o.out, counts, receiptKeys: header.receiptKeys !== null });
  print(
    `backup written to ${o.out}: ${rows(counts)} rows (${counts.approval_requests} requests, ${counts.audit_events} audit events, ${counts.audit_checkpoints} checkpoints)`,
  );
  if (header.receiptKeys !== null) note(o.json, `It holds the receipt key ring from ${keyFile}: keep it as safe as the data directory.`);
  else note(o.json, "No receipt key ring was found; if COUNTERSIGN_RECEIPT_KEY signs your receipts, keep that key with the backup.");
}

async function* backupLines(file: string): AsyncGenerator<unknown> {
  const lines = createInterface({ input: createReadStream(file).pipe(createGunzip()), crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  try {
    for await (const line of lines) {
      n++;
      if (!line) continue;
      try {
        yield JSON.parse(line);
      } catch {
        throw new CliError(`${file}: line ${n} is not JSON (a damaged backup?)`);
      }
    }
  } catch (e) {
    if (e instanceof CliError) throw e;
    const code = (e as { code?: string }).code;
    if (code === "ENOENT") throw new CliError(`${file}: no such file`);
    if (code === "Z_DATA_ERROR" || code === "Z_BUF_ERROR") throw new CliError(`${file}: not a countersign backup (not gzip data, or cut short)`);
    throw e;
  }
}

export async function restore(file: string, o: { json?: boolean }, env: CliEnv): Promise<void> {
  if (!existsSync(file)) throw new CliError(`${file}: no such file`);
  const source = backupLines(file);
  const first = (await source.next()).value as Partial<BackupHeader> | undefined;
  if (first?.format !== BACKUP_FORMAT || first.version !== 1) throw new CliError(`${file}: not a countersign backup (its first line is not a backup header)`);
  const keyFile = receiptKeySources(env).keyFile;
  const keys = first.receiptKeys === null || first.receiptKeys === undefined ? null : `${JSON.stringify(first.receiptKeys, null, 2)}\n`;
  if (keys && existsSync(keyFile) && readFileSync(keyFile, "utf8").trim() !== keys.trim()) {
    throw new CliError(`${keyFile} already holds other receipt keys; move it away, then restore (the backup's ring replaces it)`);
  }
  const session = await direct(env, "restoring");
  let counts: TableCounts;
  try {
    // The embedded database is migrated when it is opened; PostgreSQL is migrated here. A
    // database that holds anything is refused by loadSnapshot, so a failed restore (which
    // leaves the tables empty) can simply be run again.
    await session.ops.migrate();
    counts = await session.ops.loadSnapshot(source as AsyncIterable<SnapshotLine>, loadProgress("restored", o.json));
  } finally {
    await session.close();
  }
  if (keys) writeFileSync(keyFile, keys, { mode: 0o600 });
  if (o.json) return print({ file, counts, receiptKeys: keys !== null });
  print(
    `restored ${rows(counts)} rows from ${file} (${counts.approval_requests} requests, ${counts.audit_events} audit events)${keys ? `; receipt keys written to ${keyFile}` : ""}`,
  );
  note(o.json, "Check it with: countersign audit verify");
}

export async function copy(o: { to: string; json?: boolean }, env: CliEnv): Promise<void> {
  if (!/^postgres(ql)?:\/\//.test(o.to) || !URL.canParse(o.to))
    throw new CliError(`--to must be a postgres:// URL, got "${o.to.replace(/\/\/[^@/]*@/, "//…@")}"`);
  const target = new URL(o.to);
  const shown = `${target.hostname}${target.port ? `:${target.port}` : ""}${target.pathname}`;
  if (env.DATABASE_URL && new URL(env.DATABASE_URL).href === target.href) throw new CliError("--to names the database being copied");
  const { databaseConfigFrom, openDatabase, describeConnectFailure } = await import("@countersign/db");
  const session = await direct(env, "copying");
  try {
    const db = await openDatabase(databaseConfigFrom({ url: o.to, dataDir: env.COUNTERSIGN_DATA_DIR }));
    try {
      // The pool connects lazily: an unreachable target shows up here, before the source is read.
      const migrated = await db.migrate().catch((e: unknown) => {
        const why = describeConnectFailure(e, o.to, "--to");
        throw why ? new CliError(why) : e;
      });
      if (migrated.applied.length) note(o.json, `target ${shown}: applied ${migrated.applied.length} migrations`);
      const before = await verified(session.ops, "the source");
      note(o.json, `source verified: ${before.events} audit events in ${before.checkpoints} checkpoints`);
      // The target is checked and loaded by the same services as any database, with the source's key ring.
      const into = await opsFor(db, env);
      const counts = await into.loadSnapshot(
        piped((emit) => session.ops.snapshot(emit)),
        loadProgress("copied", o.json),
      );
      const after = await verified(into, "the copy");
      if (after.events !== before.events || after.checkpoints !== before.checkpoints) {
        throw new CliError(
          `the copy verifies but holds ${after.events} events in ${after.checkpoints} checkpoints, the source ${before.events} in ${before.checkpoints}`,
        );
      }
      const keyFile = receiptKeySources(env).keyFile;
      if (o.json) return print({ to: shown, counts, verified: after, receiptKeys: keyFile });
      print(`copied ${rows(counts)} rows to ${shown}; the audit log verifies there: ${after.events} events in ${after.checkpoints} checkpoints`);
      note(
        o.json,
        `Receipt keys are not in the database. Give every PostgreSQL gateway the key ring ${keyFile} (copy it into each one's COUNTERSIGN_DATA_DIR), and set COUNTERSIGN_RECEIPT_KEY to its active key, so that old receipts and checkpoints still verify and new ones are signed alike.`,
      );
    } finally {
      await db.close();
    }
  } finally {
    await session.close();
  }
}
