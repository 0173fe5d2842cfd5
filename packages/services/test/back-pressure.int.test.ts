import { CountersignError } from "@countersign/core";
import { describe, expect, it } from "vitest";
import { engines, openTestDatabase } from "../../../test/support/db.ts";
import { createRequest, toCountersignError } from "../src/index.ts";
import { setupServices } from "./helpers.ts";

/**
 * Under a burst, intakes queue for a connection and are answered in turn; past the queue's
 * bound they are refused at once with 503 and Retry-After, and write nothing. Never a
 * transaction timeout (Prisma's P2028) from waiting in the pool.
 */
describe.each(engines())("back-pressure on %s", (engine) => {
  const slots = engine === "pglite" ? 1 : 2;

  async function burst(queue: number, n: number) {
    const h = await setupServices(engine, { database: await openTestDatabase(engine, { poolSize: 2, queueLimit: queue }) });
    try {
      const { actor } = await h.agent("burst", "owner@example.com");
      const results = await Promise.allSettled(
        Array.from({ length: n }, (_, i) =>
          createRequest({ ctx: h.ctx(actor), input: { body: { action: "svc.restart", summary: `burst ${i}`, params: { i } } } }),
        ),
      );
      const stored = await h.db.prisma.approvalRequest.count();
      return { results, stored };
    } finally {
      await h.cleanup();
    }
  }

  it("past the bound: refused at once with service_unavailable and Retry-After, and nothing written for them", async () => {
    const { results, stored } = await burst(3, 12);
    const ok = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    // Those running plus those queued are answered; the rest are refused.
    expect(ok.length).toBe(slots + 3);
    expect(refused.length).toBe(12 - slots - 3);
    for (const r of refused) {
      // What every surface answers with: the HTTP edge turns it into 503 + Retry-After: 1.
      const mapped = toCountersignError(r.reason);
      expect(mapped).toBeInstanceOf(CountersignError);
      expect(mapped).toMatchObject({ code: "service_unavailable", retryAfter: 1 });
    }
    expect(stored).toBe(ok.length);
  });

  it("within the bound: every one of a burst is answered, in turn, with no error", async () => {
    const { results, stored } = await burst(256, 64);
    expect(results.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason)).toEqual([]);
    expect(stored).toBe(64);
  });
});
