import type { Actor } from "@countersign/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines } from "../../../test/support/db.ts";
import { createRequest } from "../src/requests/create.ts";
import { decide } from "../src/requests/decide.ts";
import { expireDue } from "../src/requests/expire-due.ts";
import { type ServiceHarness, settleAll, setupServices } from "./helpers.ts";

/**
 * Concurrent votes never lose or double-count: the request row is locked for the whole
 * decision, so racing reviewers queue and exactly one terminal transition happens.
 */
describe.each(engines())("decide() under concurrency on %s", (engine) => {
  let h: ServiceHarness;
  let agent: Actor;
  const alice = () => h.reviewer("alice@example.com");
  const bob = () => h.reviewer("bob@example.com");
  const carol = () => h.reviewer("carol@example.com");

  beforeAll(async () => {
    h = await setupServices(engine, { callbackAllow: "http:127.0.0.1/32" });
    agent = (await h.agent("deploy-bot", "owner@example.com")).actor;
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  async function submit(action: string, extra: Record<string, unknown> = {}) {
    const r = await createRequest({
      ctx: h.ctx(agent),
      input: { body: { action, summary: `race ${action}`, params: { n: 1 }, callbackUrl: "http://127.0.0.1:9/hook", ...extra } },
    });
    expect(r.resource.status).toBe("pending");
    return r.resource.id;
  }

  async function facts(requestId: string) {
    const p = h.db.prisma;
    const [row, decisions, events, callbacks] = await Promise.all([
      p.approvalRequest.findUniqueOrThrow({ where: { id: requestId } }),
      p.decision.findMany({ where: { requestId } }),
      p.auditEvent.findMany({ where: { requestId }, orderBy: { seq: "asc" } }),
      p.outboxJob.findMany({ where: { requestId, kind: "callback" } }),
    ]);
    const terminal = events.filter((e) => /^request\.(approved|denied|expired|cancelled)$/.test(e.type));
    return { row, decisions, events, terminal, callbacks };
  }

  it("2-of-3 quorum with three simultaneous approvers: exactly 2 votes count, one approval, the third is refused", async () => {
    // Several requests at once so the interleavings vary between runs.
    const ids = await Promise.all([1, 2, 3, 4].map(() => submit("deploy.api")));
    const results = await Promise.all(
      ids.map((id) => settleAll([alice(), bob(), carol()].map((r) => decide({ ctx: h.ctx(r), input: { requestId: id, body: { decision: "approve" } } })))),
    );
    for (const [i, id] of ids.entries()) {
      const rs = results[i]!;
      const ok = rs.filter((r) => r.ok);
      const refused = rs.filter((r) => !r.ok);
      expect(ok).toHaveLength(2);
      expect(ok.filter((r) => r.ok && r.value.finished)).toHaveLength(1);
      expect(refused.map((r) => !r.ok && r.code)).toEqual(["request_not_pending"]);

      const f = await facts(id);
      expect(f.row.status).toBe("approved");
      expect(f.row.resolution).toBe("quorum");
      expect(f.row.receipt).toMatch(/^eyJ/);
      expect(f.decisions).toHaveLength(2);
      expect(new Set(f.decisions.map((d) => d.principal)).size).toBe(2);
      expect(f.terminal.map((e) => e.type)).toEqual(["request.approved"]);
      expect(f.events.filter((e) => e.type === "decision.recorded")).toHaveLength(2);
      expect(f.events.filter((e) => e.type === "decision.refused")).toHaveLength(1);
      expect(f.callbacks).toHaveLength(1);
      // The approval's audit event counts exactly two approvals.
      expect((f.terminal[0]!.data as { approvals: number }).approvals).toBe(2);
    }
  });

  it("approve racing deny (quorum 2): exactly one terminal state, denied, and no vote is lost", async () => {
    const ids = await Promise.all([1, 2, 3, 4].map(() => submit("deploy.db")));
    const results = await Promise.all(
      ids.map((id) =>
        settleAll([
          decide({ ctx: h.ctx(alice()), input: { requestId: id, body: { decision: "approve" } } }),
          decide({ ctx: h.ctx(bob()), input: { requestId: id, body: { decision: "deny" } } }),
        ]),
      ),
    );
    for (const [i, id] of ids.entries()) {
      const [approve, deny] = results[i]!;
      // Deny always lands (a single deny denies). The approve either came first and was
      // recorded, or came after the denial and was refused as request_not_pending.
      expect(deny?.ok).toBe(true);
      const f = await facts(id);
      expect(f.row.status).toBe("denied");
      expect(f.terminal.map((e) => e.type)).toEqual(["request.denied"]);
      expect(f.callbacks).toHaveLength(1);
      if (approve?.ok) {
        expect(f.decisions.map((d) => d.decision).sort()).toEqual(["approve", "deny"]);
      } else {
        expect(approve?.code).toBe("request_not_pending");
        expect(f.decisions.map((d) => d.decision)).toEqual(["deny"]);
      }
    }
  });

  it("approve racing deny (quorum 1): whichever locks first decides; the loser is refused and recorded as refused", async () => {
    const ids = await Promise.all([1, 2, 3, 4].map(() => submit("report.generate")));
    const results = await Promise.all(
      ids.map((id) =>
        settleAll([
          decide({ ctx: h.ctx(alice()), input: { requestId: id, body: { decision: "approve" } } }),
          decide({ ctx: h.ctx(bob()), input: { requestId: id, body: { decision: "deny" } } }),
        ]),
      ),
    );
    for (const [i, id] of ids.entries()) {
      const rs = results[i]!;
      expect(rs.filter((r) => r.ok)).toHaveLength(1);
      expect(rs.filter((r) => !r.ok).map((r) => !r.ok && r.code)).toEqual(["request_not_pending"]);
      const f = await facts(id);
      expect(f.decisions).toHaveLength(1);
      expect(f.row.status).toBe(f.decisions[0]!.decision === "approve" ? "approved" : "denied");
      expect(f.terminal).toHaveLength(1);
      expect(f.events.filter((e) => e.type === "decision.refused")).toHaveLength(1);
      expect(f.callbacks).toHaveLength(1);
    }
  });

  it("one reviewer voting twice at once is counted once", async () => {
    const id = await submit("deploy.web");
    const rs = await settleAll([1, 2, 3].map(() => decide({ ctx: h.ctx(alice()), input: { requestId: id, body: { decision: "approve" } } })));
    expect(rs.filter((r) => r.ok)).toHaveLength(1);
    expect(rs.filter((r) => !r.ok).map((r) => !r.ok && r.code)).toEqual(["already_voted", "already_voted"]);
    const f = await facts(id);
    expect(f.row.status).toBe("pending");
    expect(f.decisions).toHaveLength(1);
    expect(f.terminal).toHaveLength(0);
  });

  it("a vote racing the expiry sweeper: one terminal transition, never an approval after expiry", async () => {
    const ids = await Promise.all([1, 2, 3].map(() => submit("report.export")));
    // Both the vote and the sweeper see a clock past the expiry.
    h.clock.advance(31 * 60 * 1000);
    const due = await h.db.prisma.approvalRequest.count({ where: { status: "pending", expiresAt: { lte: h.clock.now() } } });
    const [votes, swept] = await Promise.all([
      settleAll(ids.map((id) => decide({ ctx: h.ctx(alice()), input: { requestId: id, body: { decision: "approve" } } }))),
      expireDue({ ctx: h.ctx(h.system), input: {} }),
    ]);
    expect(votes.map((v) => !v.ok && v.code)).toEqual(["request_not_pending", "request_not_pending", "request_not_pending"]);
    expect(swept).toBe(due);
    for (const id of ids) {
      const f = await facts(id);
      expect(f.row.status).toBe("expired");
      expect(f.row.resolution).toBe("timeout");
      expect(f.decisions).toHaveLength(0);
      expect(f.terminal.map((e) => e.type)).toEqual(["request.expired"]);
    }

    // Two sweepers at once (two replicas) expire each request exactly once.
    const more = await Promise.all([1, 2, 3].map(() => submit("report.export")));
    h.clock.advance(31 * 60 * 1000);
    const dueNow = await h.db.prisma.approvalRequest.count({ where: { status: "pending", expiresAt: { lte: h.clock.now() } } });
    expect(dueNow).toBeGreaterThanOrEqual(3);
    const [a, b] = await Promise.all([expireDue({ ctx: h.ctx(h.system), input: {} }), expireDue({ ctx: h.ctx(h.system), input: {} })]);
    expect(a + b).toBe(dueNow);
    for (const id of more) {
      const f = await facts(id);
      expect(f.row.status).toBe("expired");
      expect(f.terminal).toHaveLength(1);
      expect(f.callbacks).toHaveLength(1);
    }
  });
});
