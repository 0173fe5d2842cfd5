import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countersign } from "../../src/adapters/mastra.ts";
import { ApprovalUnavailableError, Countersign } from "../../src/index.ts";
import { agentWith } from "./fixtures/mastra-agent.ts";
import { type AdapterHarness, closedUrl, runExample, startHarness } from "./support.ts";

// A real Mastra agent loop (Agent.generate, requireApproval, approveToolCallGenerate /
// declineToolCallGenerate, snapshots in Mastra storage), with Mastra's own mock model,
// against the real gateway process.

describe("@countersign/sdk/mastra with Mastra", () => {
  let h: AdapterHarness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("allowed by policy: one intake call, no wait, and the tool runs with its receipt", async () => {
    const approvals = countersign(h.cs);
    const { agent, runs } = agentWith(approvals, "readReport", { target: "q3", count: 1 }, "call_allow_1");
    const output = await approvals.generate(agent, "read the q3 report");
    expect(runs).toEqual([{ args: { target: "q3", count: 1 }, jti: expect.stringMatching(/^req_/), receiptJws: expect.any(String) }]);
    const [req, ...more] = await h.requestsFor("tool.readReport");
    expect(more).toEqual([]);
    expect(req).toMatchObject({ id: runs[0]?.jti, status: "approved", resolution: "policy", summary: "readReport: The readReport tool" });
    expect(output.text).toContain("done q3 for policy");
  });

  it("suspends, waits until a reviewer approves through the API, then runs with exactly the approved arguments", async () => {
    const params = { target: "db-password", count: 2 };
    const approvals = countersign(h.cs, { environment: "production" });
    const { agent, runs } = agentWith(approvals, "rotateSecret", params, "call_approve_1");
    const running = approvals.generate(agent, "rotate it");
    const req = await h.pendingFor("tool.rotateSecret");
    expect(req).toMatchObject({ params, environment: "production" });
    await new Promise((r) => setTimeout(r, 300));
    expect(runs).toEqual([]);
    await h.decide(req.id, "approve");
    const output = await running;
    expect(runs).toEqual([{ args: params, jti: req.id, receiptJws: expect.any(String) }]);
    await h.cs.verifyReceipt(runs[0]?.receiptJws, { action: "tool.rotateSecret", params, requestId: req.id, environment: "production" });
    expect(output.text).toContain("done db-password for alice@example.com");
  });

  it("denied by a reviewer: declineToolCall with the reason, the tool never runs, the model reads why", async () => {
    const approvals = countersign(h.cs);
    const { agent, runs } = agentWith(approvals, "deleteBucket", { target: "logs", count: 1 }, "call_deny_1");
    const running = approvals.generate(agent, "delete the bucket");
    const req = await h.pendingFor("tool.deleteBucket");
    await h.decide(req.id, "deny", "not during the change freeze");
    const output = await running;
    expect(runs).toEqual([]);
    expect(output.text).toContain("not during the change freeze");
  });

  it("denied by policy: the tool never runs, the model hears which rule", async () => {
    const approvals = countersign(h.cs);
    const { agent, runs } = agentWith(approvals, "dropTable", { target: "users", count: 1 }, "call_policy_1");
    const output = await approvals.generate(agent, "drop it");
    expect(runs).toEqual([]);
    expect(output.text).toContain("never-drop");
  });

  it("pauses and resumes from storage with a fresh adapter and agent: same request, asked once", async () => {
    // The first "process" runs to the suspension and submits; a second adapter and agent on
    // the same storage (what a restarted process sees) resolve the run by its id.
    const firstApprovals = countersign(h.cs);
    const firstAgent = agentWith(firstApprovals, "restartService", { target: "api", count: 3 }, "call_resume_1");
    const paused = await firstAgent.agent.generate("restart the api");
    const call = firstApprovals.suspended(paused);
    expect(call).toMatchObject({ toolCallId: "call_resume_1", toolName: "restartService", args: { target: "api", count: 3 } });
    const request = await firstApprovals.submit(call as NonNullable<typeof call>);
    expect(request.status).toBe("pending");
    await h.decide(request.id, "approve");

    const laterApprovals = countersign(h.cs);
    const later = agentWith(laterApprovals, "restartService", { target: "api", count: 3 }, "call_resume_1", firstAgent.storage);
    const output = await laterApprovals.resolve(later.agent, call as NonNullable<typeof call>);
    expect(firstAgent.runs).toEqual([]);
    expect(later.runs).toEqual([{ args: { target: "api", count: 3 }, jti: request.id, receiptJws: expect.any(String) }]);
    expect(output.text).toContain("done api for alice@example.com");
    expect(await h.requestsFor("tool.restartService")).toHaveLength(1);
  });

  it("a call approved by hand with approveToolCallGenerate, without Countersign, does not run the tool", async () => {
    const approvals = countersign(h.cs);
    const { agent, runs } = agentWith(approvals, "rotateSecret", { target: "x", count: 1 }, "call_forged_1");
    const paused = await agent.generate("rotate");
    const call = approvals.suspended(paused);
    expect(call).toBeDefined();
    const output = await agent.approveToolCallGenerate({ runId: paused.runId as string, toolCallId: "call_forged_1" });
    expect(runs).toEqual([]);
    expect(output.text).toContain("approved without Countersign");
  });

  it("fails closed when Countersign is unreachable or the key is bad: a typed error, the tool never runs", async () => {
    const down = countersign(new Countersign({ baseUrl: await closedUrl(), apiKey: h.agentKey, maxRetries: 1, retryDelayMs: 10 }));
    const a = agentWith(down, "rotateSecret", { target: "x", count: 1 }, "call_down_1");
    const err = await down.generate(a.agent, "rotate").catch((e) => e);
    expect(err).toBeInstanceOf(ApprovalUnavailableError);
    expect(err).toMatchObject({ reason: "unreachable", tool: "rotateSecret" });
    expect(a.runs).toEqual([]);

    const bad = countersign(new Countersign({ baseUrl: h.gw.url, apiKey: "cs_not_a_key", maxRetries: 0 }));
    const b = agentWith(bad, "rotateSecret", { target: "x", count: 1 }, "call_bad_1");
    const refused = await bad.generate(b.agent, "rotate").catch((e) => e);
    expect(refused).toBeInstanceOf(ApprovalUnavailableError);
    expect(refused).toMatchObject({ reason: "unauthorized" });
    expect(b.runs).toEqual([]);
  });

  it("examples/agents/mastra/agent.ts runs as a user runs it: approved through the API, the tool runs", async () => {
    const ex = runExample("mastra", ["@mastra/core", "zod"], { COUNTERSIGN_URL: h.gw.url, COUNTERSIGN_API_KEY: h.agentKey });
    try {
      const [, id] = (await ex.waitFor(/waiting for approval of (req_\w+)/)) as unknown as [string, string];
      expect((await h.requestsFor("tool.rotate-secret")).find((r) => r.id === id)).toMatchObject({ status: "pending", environment: "production" });
      await h.decide(id, "approve");
      expect(await ex.exit, ex.out()).toBe(0);
      expect(ex.out()).toContain(`rotated db-password; approved by alice@example.com; receipt ${id}`);
    } finally {
      ex.cleanup();
    }
  });
});
