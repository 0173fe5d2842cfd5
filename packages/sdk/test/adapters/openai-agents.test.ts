import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, run } from "@openai/agents";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { approvalOf, countersign } from "../../src/adapters/openai-agents.ts";
import { ApprovalUnavailableError, Countersign } from "../../src/index.ts";
import { scriptedModel } from "./fixtures/openai-agents-model.ts";
import { type AdapterHarness, closedUrl, inChildProcess, runExample, startHarness } from "./support.ts";

// A real OpenAI Agents SDK run loop (run(), interruptions, RunState), with the SDK's own
// ScriptedModel, against the real gateway process.

describe("@countersign/sdk/openai-agents with the OpenAI Agents SDK", () => {
  let h: AdapterHarness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  /** An agent with one gated tool that records each execution, with its arguments and receipt. */
  function setup(cs: Countersign, name: string, args: Record<string, unknown>, callId: string) {
    const approvals = countersign(cs);
    const runs: { args: unknown; jti: string; receiptJws: string }[] = [];
    const gated = approvals.tool({
      name,
      description: `The ${name} tool`,
      parameters: z.object({ target: z.string(), count: z.number() }),
      execute: async (input, _context, details) => {
        const { receipt, receiptJws } = approvalOf(details);
        runs.push({ args: input, jti: receipt.jti, receiptJws });
        return `done ${input.target} for ${receipt.approvers.map((a) => a.principal).join(",") || "policy"}`;
      },
    });
    const agent = new Agent({ name: "ops", instructions: "Do as asked.", model: scriptedModel(name, args, callId), tools: [gated] });
    return { approvals, agent, runs };
  }

  it("allowed by policy: one intake call, no wait, and the tool runs with its receipt", async () => {
    const { approvals, agent, runs } = setup(h.cs, "readReport", { target: "q3", count: 1 }, "call_allow_1");
    const result = await approvals.run(agent, "read the q3 report");
    expect(runs).toEqual([{ args: { target: "q3", count: 1 }, jti: expect.stringMatching(/^req_/), receiptJws: expect.any(String) }]);
    const [req, ...more] = await h.requestsFor("tool.readReport");
    expect(more).toEqual([]);
    expect(req).toMatchObject({ id: runs[0]?.jti, status: "approved", resolution: "policy", summary: "readReport: The readReport tool" });
    expect(result.finalOutput).toContain("done q3 for policy");
  });

  it("interrupts, then waits until a reviewer approves through the API, and runs with exactly the approved arguments", async () => {
    const params = { target: "db-password", count: 2 };
    const { approvals, agent, runs } = setup(h.cs, "rotateSecret", params, "call_approve_1");
    const running = approvals.run(agent, "rotate it");
    const req = await h.pendingFor("tool.rotateSecret");
    expect(req.params).toEqual(params);
    await new Promise((r) => setTimeout(r, 300));
    expect(runs).toEqual([]);
    await h.decide(req.id, "approve");
    const result = await running;
    expect(runs).toEqual([{ args: params, jti: req.id, receiptJws: expect.any(String) }]);
    await h.cs.verifyReceipt(runs[0]?.receiptJws, { action: "tool.rotateSecret", params, requestId: req.id });
    expect(result.finalOutput).toContain("done db-password for alice@example.com");
  });

  it("denied by a reviewer: the tool never runs and the rejection the model sees carries the reason", async () => {
    const { approvals, agent, runs } = setup(h.cs, "deleteBucket", { target: "logs", count: 1 }, "call_deny_1");
    const running = approvals.run(agent, "delete the bucket");
    const req = await h.pendingFor("tool.deleteBucket");
    await h.decide(req.id, "deny", "not during the change freeze");
    const result = await running;
    expect(runs).toEqual([]);
    expect(result.finalOutput).toContain("not during the change freeze");
    expect(result.finalOutput).toContain("function_call_result");
  });

  it("denied by policy: the tool never runs, the model hears which rule", async () => {
    const { approvals, agent, runs } = setup(h.cs, "dropTable", { target: "users", count: 1 }, "call_policy_1");
    const result = await approvals.run(agent, "drop it");
    expect(runs).toEqual([]);
    expect(result.finalOutput).toContain("never-drop");
  });

  it("an item approved by hand, without Countersign, does not run the tool", async () => {
    const { agent, runs } = setup(h.cs, "rotateSecret", { target: "x", count: 1 }, "call_forged_1");
    const first = await run(agent, "rotate");
    expect(first.interruptions).toHaveLength(1);
    first.state.approve(first.interruptions[0] as never);
    const second = await run(agent, first.state);
    expect(runs).toEqual([]);
    // The SDK turns the refusal into its generic tool error for the model; the tool body never ran.
    expect(second.finalOutput).toContain("An error occurred while running the tool");
    expect(second.finalOutput).not.toContain("done x");
  });

  it("resumes from the serialised RunState in a new process: same request, asked once, the request id in the state", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cs-oa-state-"));
    try {
      const file = join(import.meta.dirname, "fixtures/openai-agents-resume.ts");
      const env = { URL: h.gw.url, KEY: h.agentKey, STATE_FILE: join(dir, "state.json"), OPENAI_AGENTS_DISABLE_TRACING: "1" };
      const started = await inChildProcess<{ interruptions: number; pending: string[]; ran: unknown[] }>(file, { ...env, MODE: "start" });
      expect(started).toMatchObject({ interruptions: 1, ran: [] });
      const [id] = started.pending as [string];
      expect(readFileSync(env.STATE_FILE, "utf8")).toContain(id);
      await h.decide(id, "approve");
      const resumed = await inChildProcess<{ stored: unknown; ran: unknown[]; output: string }>(file, { ...env, MODE: "resume" });
      expect(resumed.stored).toEqual({ call_resume_1: id });
      expect(resumed.ran).toEqual([{ args: { target: "api", count: 3 }, jti: id }]);
      expect(resumed.output).toContain("restarted");
      expect(await h.requestsFor("tool.restartService")).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fails closed when Countersign is unreachable or the key is bad: a typed error, the tool never runs", async () => {
    const unreachable = new Countersign({ baseUrl: await closedUrl(), apiKey: h.agentKey, maxRetries: 1, retryDelayMs: 10 });
    const down = setup(unreachable, "rotateSecret", { target: "x", count: 1 }, "call_down_1");
    const err = await down.approvals.run(down.agent, "rotate").catch((e) => e);
    expect(err).toBeInstanceOf(ApprovalUnavailableError);
    expect(err).toMatchObject({ reason: "unreachable", tool: "rotateSecret" });
    expect(down.runs).toEqual([]);

    const bad = setup(new Countersign({ baseUrl: h.gw.url, apiKey: "cs_not_a_key", maxRetries: 0 }), "rotateSecret", { target: "x", count: 1 }, "call_bad_1");
    const refused = await bad.approvals.run(bad.agent, "rotate").catch((e) => e);
    expect(refused).toBeInstanceOf(ApprovalUnavailableError);
    expect(refused).toMatchObject({ reason: "unauthorized" });
    expect(refused.message).toMatch(/COUNTERSIGN_API_KEY/);
    expect(bad.runs).toEqual([]);
  });

  it("examples/agents/openai-agents/agent.ts runs as a user runs it: pauses, resumes after approval", async () => {
    const ex = runExample("openai-agents", ["@openai/agents", "@openai/agents-core", "zod"], {
      COUNTERSIGN_URL: h.gw.url,
      COUNTERSIGN_API_KEY: h.agentKey,
      OPENAI_AGENTS_DISABLE_TRACING: "1",
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
