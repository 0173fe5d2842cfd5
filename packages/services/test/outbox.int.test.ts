import { type Database, openDatabase } from "@countersign/db";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { engines } from "../../../test/support/db.ts";
import { type ClaimedJob, claimJobs, createRequest, outboxStats, queueJob, settleJob } from "../src/index.ts";
import { type ServiceHarness, setupServices } from "./helpers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes jobs as the request paths do: queueJob's insert, here on its own. */
async function enqueue(db: Database, job: Parameters<typeof queueJob>[0]): Promise<string> {
  const { write, view } = queueJob(job, new Date());
  await db.prisma.$executeRawUnsafe(write.sql, ...write.params);
  return view.id;
}

async function enqueueMany(db: Database, n: number, tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await enqueue(db, { kind: "callback", requestId: null, payload: { tag, i }, runAt: new Date(Date.now() - 1000) }));
  return ids;
}

function attempt(worker: string, ok: boolean, error?: string) {
  const now = new Date();
  return { worker, startedAt: now, finishedAt: now, ok, ...(error ? { error } : {}) };
}

/** Drain everything due (with this tag) by repeatedly claiming small batches. */
async function drain(db: Database, worker: string, tag: string, seen: Map<string, string[]>): Promise<void> {
  for (;;) {
    const jobs = await claimJobs(db, worker, 3, 60_000);
    const mine = jobs.filter((j) => j.payload.tag === tag);
    if (jobs.length === 0) return;
    for (const j of mine) seen.set(j.id, [...(seen.get(j.id) ?? []), worker]);
    // Hold the claim briefly, as a worker delivering would, so claimers overlap.
    await sleep(2);
    for (const j of jobs) await settleJob(db, j, attempt(worker, true), { state: "done" });
  }
}

describe.each(engines())("outbox on %s", (engine) => {
  let h: ServiceHarness;
  beforeAll(async () => {
    h = await setupServices(engine);
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it("reports the relay's lag (the oldest due job's wait) and the pending requests about to expire", async () => {
    const { db } = h;
    // Drain what other tests left, so only this test's jobs count.
    while ((await claimJobs(db, "sweep", 100, 60_000)).length > 0) {}
    const now = new Date();
    expect((await outboxStats(db, now)).oldestDueSeconds).toBe(0);
    await enqueue(db, { kind: "callback", requestId: null, payload: { tag: "lag" }, runAt: new Date(now.getTime() - 42_000) });
    await enqueue(db, { kind: "callback", requestId: null, payload: { tag: "lag" }, runAt: new Date(now.getTime() - 5_000) });
    await enqueue(db, { kind: "callback", requestId: null, payload: { tag: "lag" }, runAt: new Date(now.getTime() + 3_600_000) }); // not due: no lag
    expect(Math.round((await outboxStats(db, now)).oldestDueSeconds)).toBe(42);

    const { actor } = await h.agent("stats", "owner@example.com");
    const before = await outboxStats(db, h.clock.now());
    const ask = (expiresIn: number) => createRequest({ ctx: h.ctx(actor), input: { body: { action: "svc.restart", summary: "s", params: {}, expiresIn } } });
    await ask(600); // expires in 10 minutes: soon
    await ask(1200); // 20 minutes: not yet
    const after = await outboxStats(db, h.clock.now());
    expect(after.pending - before.pending).toBe(2);
    expect(after.expiringSoon - before.expiringSoon).toBe(1);
    while ((await claimJobs(db, "sweep", 100, 60_000)).length > 0) {}
  });

  it("claims only due, pending jobs, once, and increments attempts", async () => {
    const due = await enqueueMany(h.db, 2, "due");
    await enqueue(h.db, { kind: "callback", requestId: null, payload: { tag: "later" }, runAt: new Date(Date.now() + 3600_000) });
    const first = await claimJobs(h.db, "w1", 10, 60_000);
    expect(first.map((j) => j.id).sort()).toEqual([...due].sort());
    expect(first.every((j) => j.attempts === 1 && j.maxAttempts === 10)).toBe(true);
    // Running jobs with a live lease are not claimable by anyone.
    expect(await claimJobs(h.db, "w2", 10, 60_000)).toEqual([]);
    for (const j of first) expect(await settleJob(h.db, j, attempt("w1", true), { state: "done" })).toBe(true);
    const rows = await h.db.prisma.outboxJob.findMany({ where: { id: { in: due } } });
    expect(rows.every((r) => r.status === "done" && r.lockedBy === null && r.completedAt !== null)).toBe(true);
  });

  it("a retried job waits for its run_at; a failed job stays failed and its attempts are logged", async () => {
    const [id] = await enqueueMany(h.db, 1, "retry");
    const [job] = (await claimJobs(h.db, "w1", 10, 60_000)) as [ClaimedJob];
    expect(job.id).toBe(id);
    expect(
      await settleJob(h.db, job, { ...attempt("w1", false, "receiver answered 503"), httpStatus: 503 }, { state: "retry", at: new Date(Date.now() + 300) }),
    ).toBe(true);
    expect(await claimJobs(h.db, "w1", 10, 60_000)).toEqual([]);
    await sleep(400);
    const [again] = (await claimJobs(h.db, "w1", 10, 60_000)) as [ClaimedJob];
    expect(again).toMatchObject({ id, attempts: 2 });
    expect(await settleJob(h.db, again, attempt("w1", false, "receiver answered 410"), { state: "failed" })).toBe(true);
    await sleep(50);
    expect(await claimJobs(h.db, "w1", 10, 60_000)).toEqual([]);
    const row = await h.db.prisma.outboxJob.findUniqueOrThrow({ where: { id }, include: { attemptLog: { orderBy: { attempt: "asc" } } } });
    expect(row).toMatchObject({ status: "failed", attempts: 2, lastError: "receiver answered 410" });
    expect(row.attemptLog.map((a) => [a.attempt, a.ok, a.httpStatus])).toEqual([
      [1, false, 503],
      [2, false, null],
    ]);
  });

  it("a job whose lease expired (its worker died) is claimed again, and the stale worker cannot overwrite the new outcome", async () => {
    const [id] = await enqueueMany(h.db, 1, "lease");
    const [stale] = (await claimJobs(h.db, "dead-worker", 10, 100)) as [ClaimedJob];
    expect(stale.id).toBe(id);
    expect(await claimJobs(h.db, "live-worker", 10, 60_000)).toEqual([]);
    await sleep(250);
    const [fresh] = (await claimJobs(h.db, "live-worker", 10, 60_000)) as [ClaimedJob];
    expect(fresh).toMatchObject({ id, attempts: 2 });

    // The old worker wakes up and reports failure: not applied.
    expect(await settleJob(h.db, stale, attempt("dead-worker", false, "late failure"), { state: "failed" })).toBe(false);
    let row = await h.db.prisma.outboxJob.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ status: "running", lockedBy: "live-worker", attempts: 2, lastError: null });

    // The new owner's outcome sticks; a late "done" from the stale worker changes nothing either.
    expect(await settleJob(h.db, fresh, attempt("live-worker", true), { state: "done" })).toBe(true);
    expect(await settleJob(h.db, stale, attempt("dead-worker", true), { state: "retry", at: new Date() })).toBe(false);
    row = await h.db.prisma.outboxJob.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ status: "done", lockedBy: null, attempts: 2 });
    expect(await claimJobs(h.db, "live-worker", 10, 60_000)).toEqual([]);
  });

  it("two claimers draining one queue never take the same job, and together take every job", async () => {
    // On PostgreSQL each claimer is its own pool (as two replicas would be), so the claims truly overlap.
    let second: Database = h.db;
    let dropSecond = async () => {};
    if (engine === "postgres") {
      const [{ db: name }] = (await h.db.prisma.$queryRawUnsafe<{ db: string }[]>("SELECT current_database() AS db")) as [{ db: string }];
      const url = new URL(inject("pgUrl") as string);
      url.pathname = `/${name}`;
      second = await openDatabase({ kind: "postgres", url: url.toString(), poolSize: 4 });
      dropSecond = () => second.close();
    }
    try {
      const ids = await enqueueMany(h.db, 60, "race");
      const seen = new Map<string, string[]>();
      await Promise.all([
        drain(h.db, "a1", "race", seen),
        drain(h.db, "a2", "race", seen),
        drain(second, "b1", "race", seen),
        drain(second, "b2", "race", seen),
      ]);
      expect([...seen.keys()].sort()).toEqual([...ids].sort());
      const doubles = [...seen.entries()].filter(([, ws]) => ws.length !== 1);
      expect(doubles).toEqual([]);
      const rows = await h.db.prisma.outboxJob.findMany({ where: { id: { in: ids } } });
      expect(rows.every((r) => r.status === "done" && r.attempts === 1)).toBe(true);
      // With overlap, more than one claimer did real work.
      expect(new Set([...seen.values()].flat()).size).toBeGreaterThan(1);
    } finally {
      await dropSecond();
    }
  });

  it.runIf(engine === "postgres")("on PostgreSQL the claim skips rows another transaction holds (FOR UPDATE SKIP LOCKED)", async () => {
    const ids = await enqueueMany(h.db, 4, "skip");
    const [held, ...rest] = ids as [string, ...string[]];
    // Another replica's claim transaction is mid-flight and holds one row lock.
    let release!: () => void;
    const holding = new Promise<void>((r) => {
      release = r;
    });
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => {
      locked = r;
    });
    const tx = h.db.prisma.$transaction(
      async (t) => {
        await t.$queryRawUnsafe(`SELECT id FROM outbox_jobs WHERE id = $1 FOR UPDATE`, held);
        locked();
        await holding;
      },
      { timeout: 20_000 },
    );
    await isLocked;
    const started = Date.now();
    const claimed = await claimJobs(h.db, "other", 10, 60_000);
    // It did not wait for the lock, and it did not take the locked row.
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(claimed.map((j) => j.id).sort()).toEqual([...rest].sort());
    release();
    await tx;
    const after = await claimJobs(h.db, "other", 10, 60_000);
    expect(after.map((j) => j.id)).toEqual([held]);
  });
});
