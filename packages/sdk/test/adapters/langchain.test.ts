import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApprovalUnavailableError, Countersign } from "../../src/index.ts";
import { agentWith } from "./fixtures/langchain-agent.ts";
import { type AdapterHarness, closedUrl, inChildProcess, runExample, startHarness } from "./support.ts";

// A real LangChain v1 agent loop (createAgent on LangGraph, with LangChain's fakeModel)
// against the real gateway process.

const ask = (content: string) => ({ messages: [{ role: "user" as const, content }] });

describe("@countersign/sdk/langchain with LangChain.js and LangGraph", () => {
  let h: AdapterHarness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("allowed by policy: one intake call, no wait, and the tool runs with its receipt", async () => {
    const { agent, runs } = agentWith(h.cs, "readReport", { target: "q3", count: 1 }, "call_allow_1");
    const result = await agent.invoke(ask("read the q3 report"));
    expect(runs).toEqual([{ args: { target: "q3", count: 1 }, jti: expect.stringMatching(/^req_/), receiptJws: expect.any(String) }]);
    const [req, ...more] = await h.requestsFor("tool.readReport");
    expect(more).toEqual([]);
    expect(req).toMatchObject({ id: runs[0]?.jti, status: "approved", resolution: "policy", summary: "readReport: The readReport tool" });
    expect(result.messages.at(-1)?.content).toContain("done q3 for policy");
  });

  it("waits until a reviewer approves through the API, then runs with exactly the approved arguments", async () => {
    const params = { target: "db-password", count: 2 };
    const { agent, runs } = agentWith(h.cs, "rotateSecret", params, "call_approve_1", { risk: "high" });
    const running = agent.invoke(ask("rotate it"));
    const req = await h.pendingFor("tool.rotateSecret");
    expect(req).toMatchObject({ params, risk: "high" });
    await new Promise((r) => setTimeout(r, 300));
    expect(runs).toEqual([]);
    await h.decide(req.id, "approve");
    const result = await running;
    expect(runs).toEqual([{ args: params, jti: req.id, receiptJws: expect.any(String) }]);
    await h.cs.verifyReceipt(runs[0]?.receiptJws, { action: "tool.rotateSecret", params, requestId: req.id });
    expect(result.messages.at(-1)?.content).toContain("done db-password for alice@example.com");
  });

  it("denied by a reviewer: the tool never runs and the model reads the reason in an error ToolMessage", async () => {
    const { agent, runs } = agentWith(h.cs, "deleteBucket", { target: "logs", count: 1 }, "call_deny_1");
    const running = agent.invoke(ask("delete the bucket"));
    const req = await h.pendingFor("tool.deleteBucket");
    await h.decide(req.id, "deny", "not during the change freeze");
    const result = await running;
    expect(runs).toEqual([]);
    const toolMessage = result.messages.find((m) => m.type === "tool");
    expect(toolMessage).toMatchObject({ status: "error", tool_call_id: "call_deny_1" });
    expect(String(toolMessage?.content)).toContain("not during the change freeze");
    expect(result.messages.at(-1)?.content).toContain("not during the change freeze");
  });

  it("denied by policy: the tool never runs, the model hears which rule", async () => {
    const { agent, runs } = agentWith(h.cs, "dropTable", { target: "users", count: 1 }, "call_policy_1");
    const result = await agent.invoke(ask("drop it"));
    expect(runs).toEqual([]);
    expect(result.messages.at(-1)?.content).toContain("never-drop");
  });

  it("interrupts, and a new process resumes from the saved checkpoint with Command({ resume }): same request, asked once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cs-lc-state-"));
    try {
      const file = join(import.meta.dirname, "fixtures/langchain-resume.ts");
      const env = { URL: h.gw.url, KEY: h.agentKey, STATE_FILE: join(dir, "checkpoints.json") };
      const started = await inChildProcess<{ interrupts: { countersign: { requestId: string; tool: string } }[]; runs: unknown[] }>(file, {
        ...env,
        MODE: "start",
      });
      expect(started.runs).toEqual([]);
      expect(started.interrupts).toHaveLength(1);
      const id = started.interrupts[0]?.countersign.requestId as string;
      expect(started.interrupts[0]?.countersign).toMatchObject({ tool: "restartService", toolCallId: "call_resume_1" });
      // The checkpoint (its serialised bytes, base64 in the file) holds the interrupt with the request id.
      const saved = readFileSync(env.STATE_FILE, "utf8");
      const decoded = [...saved.matchAll(/"\$u8":"([^"]*)"/g)].map((m) => Buffer.from(m[1] as string, "base64").toString()).join("\n");
      expect(decoded).toContain(`"requestId":"${id}"`);
      await h.decide(id, "approve");
      const resumed = await inChildProcess<{ runs: { args: unknown; jti: string }[]; last: string }>(file, { ...env, MODE: "resume" });
      expect(resumed.runs).toEqual([{ args: { target: "api", count: 3 }, jti: id, receiptJws: expect.any(String) }]);
      expect(resumed.last).toContain("done api for alice@example.com");
      expect(await h.requestsFor("tool.restartService")).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fails closed when Countersign is unreachable or the key is bad: a typed error, the tool never runs", async () => {
    const unreachable = new Countersign({ baseUrl: await closedUrl(), apiKey: h.agentKey, maxRetries: 1, retryDelayMs: 10 });
    const down = agentWith(unreachable, "rotateSecret", { target: "x", count: 1 }, "call_down_1");
    // LangChain wraps what a middleware throws in its MiddlewareError, with the original as `cause`.
    const err = await down.agent.invoke(ask("rotate")).catch((e) => e);
    expect(err.cause).toBeInstanceOf(ApprovalUnavailableError);
    expect(err.cause).toMatchObject({ reason: "unreachable", tool: "rotateSecret" });
    expect(down.runs).toEqual([]);

    const bad = agentWith(
      new Countersign({ baseUrl: h.gw.url, apiKey: "cs_not_a_key", maxRetries: 0 }),
      "rotateSecret",
      { target: "x", count: 1 },
      "call_bad_1",
      {
        mode: "interrupt",
      },
    );
    const refused = await bad.agent.invoke(ask("rotate")).catch((e) => e);
    expect(refused.cause).toBeInstanceOf(ApprovalUnavailableError);
    expect(refused.cause).toMatchObject({ reason: "unauthorized" });
    expect(bad.runs).toEqual([]);
  });

  it("examples/agents/langchain/agent.ts runs as a user runs it: interrupts, resumes after approval", async () => {
    const ex = runExample("langchain", ["langchain", "@langchain/core", "@langchain/langgraph", "zod"], {
      COUNTERSIGN_URL: h.gw.url,
      COUNTERSIGN_API_KEY: h.agentKey,
    });
    try {
      const [, id] = (await ex.waitFor(/waiting for approval of (req_\w+)/)) as unknown as [string, string];
      await h.decide(id, "approve");
      expect(await ex.exit, ex.out()).toBe(0);
      expect(ex.out()).toContain(`rotated db-password; approved by alice@example.com; receipt ${id}`);
    } finally {
      ex.cleanup();
    }
  });
});
