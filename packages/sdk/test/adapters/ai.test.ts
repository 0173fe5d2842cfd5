import { join } from "node:path";
import { generateText, isStepCount, type LanguageModel, ToolLoopAgent, tool } from "ai";
import { MockLanguageModelV4 } from "ai/test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { approvalOf, withCountersign } from "../../src/adapters/ai.ts";
import { ApprovalUnavailableError, Countersign, paramsSha256 } from "../../src/index.ts";
import { type AdapterHarness, closedUrl, inChildProcess, runExample, startHarness } from "./support.ts";

// A real AI SDK v7 agent loop (ToolLoopAgent / generateText, the SDK's own MockLanguageModelV4)
// against the real gateway process.

/**
 * A model that calls `toolName` with `input` on its first step and, once the tool message
 * is back, answers with what that message said, so a test can see what the model was told.
 */
function scriptedModel(toolName: string, input: object, toolCallId: string) {
  const usage = {
    inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 },
    outputTokens: { total: 1, text: 1, reasoning: 0 },
  };
  return new MockLanguageModelV4({
    doGenerate: async ({ prompt }) => {
      const last = prompt.at(-1);
      if (last?.role === "tool") {
        return {
          content: [{ type: "text", text: `tool said: ${JSON.stringify(last.content)}` }],
          finishReason: { unified: "stop", raw: "stop" },
          usage,
          warnings: [],
        };
      }
      return {
        content: [{ type: "tool-call", toolCallId, toolName, input: JSON.stringify(input) }],
        finishReason: { unified: "tool-calls", raw: "tool_calls" },
        usage,
        warnings: [],
      };
    },
  });
}

describe("@countersign/sdk/ai with the Vercel AI SDK", () => {
  let h: AdapterHarness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  /** A tool that records every execution, with the arguments and receipt it ran with. */
  function recorder(name: string) {
    const runs: { args: unknown; jti: string; receiptJws: string }[] = [];
    const t = tool({
      description: `The ${name} tool`,
      inputSchema: z.object({ target: z.string(), count: z.number() }),
      execute: async (args, options) => {
        const { receipt, receiptJws } = approvalOf(options);
        runs.push({ args, jti: receipt.jti, receiptJws });
        return { done: args.target, by: receipt.approvers.map((a) => a.principal) };
      },
    });
    return { t, runs };
  }

  it("allowed by policy: one intake call, no wait, and the tool runs with its receipt", async () => {
    const { t, runs } = recorder("readReport");
    const agent = new ToolLoopAgent({
      model: scriptedModel("readReport", { target: "q3", count: 1 }, "call-allow-1") as LanguageModel,
      ...withCountersign(h.cs, { readReport: t }),
    });
    const result = await agent.generate({ prompt: "read the q3 report" });
    expect(runs).toHaveLength(1);
    expect(runs[0]?.args).toEqual({ target: "q3", count: 1 });
    const [req, ...more] = await h.requestsFor("tool.readReport");
    expect(more).toEqual([]);
    expect(req).toMatchObject({ status: "approved", resolution: "policy", params: { target: "q3", count: 1 }, summary: "readReport: The readReport tool" });
    expect(runs[0]?.jti).toBe(req?.id);
    expect(result.text).toContain('"done":"q3"');
  });

  it("held until a reviewer approves through the API, then runs with exactly the approved arguments", async () => {
    const { t, runs } = recorder("rotateSecret");
    const params = { target: "db-password", count: 2 };
    const running = generateText({
      model: scriptedModel("rotateSecret", params, "call-approve-1") as LanguageModel,
      prompt: "rotate it",
      stopWhen: isStepCount(3),
      ...withCountersign(h.cs, { rotateSecret: t }, { environment: "production", risk: "high" }),
    });
    const req = await h.pendingFor("tool.rotateSecret");
    expect(req).toMatchObject({ params, environment: "production", risk: "high" });
    await new Promise((r) => setTimeout(r, 300));
    expect(runs).toEqual([]);
    await h.decide(req.id, "approve", "ticket OPS-1");
    const result = await running;
    expect(runs).toEqual([{ args: params, jti: req.id, receiptJws: expect.any(String) }]);
    const claims = await h.cs.verifyReceipt(runs[0]?.receiptJws, { action: "tool.rotateSecret", params, requestId: req.id, environment: "production" });
    expect(claims.params_sha256).toBe(await paramsSha256(params));
    expect(result.text).toContain('"by":["alice@example.com"]');
  });

  it("denied by a reviewer: the tool never runs and the model is told the reviewer's reason", async () => {
    const { t, runs } = recorder("deleteBucket");
    const running = generateText({
      model: scriptedModel("deleteBucket", { target: "logs", count: 1 }, "call-deny-1") as LanguageModel,
      prompt: "delete the bucket",
      stopWhen: isStepCount(3),
      ...withCountersign(h.cs, { deleteBucket: t }),
    });
    const req = await h.pendingFor("tool.deleteBucket");
    await h.decide(req.id, "deny", "not during the change freeze");
    const result = await running;
    expect(runs).toEqual([]);
    // The second model call's prompt carries the denial, reason and all.
    expect(result.text).toContain("execution-denied");
    expect(result.text).toContain("not during the change freeze");
  });

  it("denied by policy: no wait, the tool never runs, the model hears which rule", async () => {
    const { t, runs } = recorder("dropTable");
    const result = await generateText({
      model: scriptedModel("dropTable", { target: "users", count: 1 }, "call-policy-1") as LanguageModel,
      prompt: "drop it",
      stopWhen: isStepCount(3),
      ...withCountersign(h.cs, { dropTable: t }),
    });
    expect(runs).toEqual([]);
    expect(result.text).toContain("never-drop");
  });

  it("a second process re-running the same tool call finds the same request and does not ask twice", async () => {
    // The first process asks and stops waiting before anyone decides; the second replays the
    // same step (same tool call id and arguments) and must wait on the existing request.
    const file = join(import.meta.dirname, "fixtures/ai-rerun.ts");
    const env = { URL: h.gw.url, KEY: h.agentKey, CALL_ID: "call-rerun-1" };
    const first = inChildProcess<unknown>(file, { ...env, TIMEOUT_MS: "1500" }).catch((e: Error) => e);
    const req = await h.pendingFor("tool.restartService");
    expect(await first).toMatchObject({ ran: false });
    const second = inChildProcess<{ ran: boolean; jti: string; args: unknown }>(file, env);
    await new Promise((r) => setTimeout(r, 1_000));
    await h.decide(req.id, "approve");
    expect(await second).toEqual({ ran: true, jti: req.id, args: { target: "api", count: 3 } });
    expect(await h.requestsFor("tool.restartService")).toHaveLength(1);
  });

  it("fails closed when Countersign is unreachable or the key is bad: the run rejects with a typed error, the tool never runs", async () => {
    const { t, runs } = recorder("rotateSecret");
    const unreachable = new Countersign({ baseUrl: await closedUrl(), apiKey: h.agentKey, maxRetries: 1, retryDelayMs: 10 });
    const down = await generateText({
      model: scriptedModel("rotateSecret", { target: "x", count: 1 }, "call-down-1") as LanguageModel,
      prompt: "rotate",
      ...withCountersign(unreachable, { rotateSecret: t }),
    }).catch((e) => e);
    expect(down).toBeInstanceOf(ApprovalUnavailableError);
    expect(down).toMatchObject({ reason: "unreachable", tool: "rotateSecret" });
    expect(down.message).toMatch(/Check that the gateway is running/);

    const badKey = new Countersign({ baseUrl: h.gw.url, apiKey: "cs_not_a_key", maxRetries: 0 });
    const refused = await generateText({
      model: scriptedModel("rotateSecret", { target: "x", count: 1 }, "call-badkey-1") as LanguageModel,
      prompt: "rotate",
      ...withCountersign(badKey, { rotateSecret: t }),
    }).catch((e) => e);
    expect(refused).toBeInstanceOf(ApprovalUnavailableError);
    expect(refused).toMatchObject({ reason: "unauthorized" });
    expect(refused.message).toMatch(/COUNTERSIGN_API_KEY/);
    expect(runs).toEqual([]);
  });

  it("examples/agents/ai/agent.ts runs as a user runs it: approved through the API, the tool runs", async () => {
    const run = runExample("ai", ["ai", "zod"], { COUNTERSIGN_URL: h.gw.url, COUNTERSIGN_API_KEY: h.agentKey });
    try {
      const [, id] = (await run.waitFor(/waiting for approval of (req_\w+)/)) as unknown as [string, string];
      const req = (await h.requestsFor("tool.rotateSecret")).find((r) => r.id === id);
      expect(req).toMatchObject({ status: "pending", environment: "production", rationale: "it leaked in a CI log", params: { name: "db-password" } });
      await h.decide(id, "approve");
      expect(await run.exit, run.out()).toBe(0);
      expect(run.out()).toContain(`"rotated":"db-password","approvedBy":["alice@example.com"],"receipt":"${id}"`);
    } finally {
      run.cleanup();
    }
  });
});
