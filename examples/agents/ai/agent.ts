/**
 * A Vercel AI SDK (v7) agent whose `rotateSecret` tool runs only once a human approves that
 * exact call in Countersign. A denial reaches the model as the SDK's own `execution-denied`
 * result, with the reviewer's reason.
 *
 *   npm install @countersign/sdk ai zod
 *   COUNTERSIGN_URL=http://127.0.0.1:8080 COUNTERSIGN_API_KEY=cs_... npx tsx agent.ts
 *
 * The model is the AI SDK's scripted test model, so the example runs without a provider
 * key; use a real one (`model: openai("gpt-5")`) and nothing else changes.
 */
import { Countersign } from "@countersign/sdk";
import { approvalOf, withCountersign } from "@countersign/sdk/ai";
import { type LanguageModel, ToolLoopAgent, tool } from "ai";
import { MockLanguageModelV4 } from "ai/test";
import { z } from "zod";

const cs = new Countersign({ baseUrl: process.env.COUNTERSIGN_URL ?? "http://127.0.0.1:8080", apiKey: process.env.COUNTERSIGN_API_KEY ?? "" });

const rotateSecret = tool({
  description: "Rotate a production secret",
  inputSchema: z.object({ name: z.string(), reason: z.string() }),
  execute: async ({ name }, options) => {
    // The verified receipt: who approved, and the JWS to hand to an executor that checks it again.
    const { receipt } = approvalOf(options);
    return { rotated: name, approvedBy: receipt.approvers.map((a) => a.principal), receipt: receipt.jti };
  },
});

const usage = { inputTokens: { total: 0, noCache: 0, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 0, text: 0, reasoning: 0 } };
const model = new MockLanguageModelV4({
  // Step 1 asks for the tool call; step 2 reports what the tool (or the denial) said.
  doGenerate: async ({ prompt }) => {
    const last = prompt.at(-1);
    if (last?.role === "tool")
      return { content: [{ type: "text", text: JSON.stringify(last.content) }], finishReason: { unified: "stop", raw: "stop" }, usage, warnings: [] };
    const input = JSON.stringify({ name: "db-password", reason: "it leaked in a CI log" });
    return {
      content: [{ type: "tool-call", toolCallId: `call_${Date.now()}`, toolName: "rotateSecret", input }],
      finishReason: { unified: "tool-calls", raw: "tool_calls" },
      usage,
      warnings: [],
    };
  },
});

const agent = new ToolLoopAgent({
  model: model as LanguageModel,
  // The one line: every tool call becomes a Countersign request, and runs only once approved.
  ...withCountersign(
    cs,
    { rotateSecret },
    { rationale: (call) => String(call.args.reason), environment: "production", onSubmitted: (r) => console.log(`waiting for approval of ${r.id}`) },
  ),
});

const result = await agent.generate({ prompt: "The db-password secret leaked. Rotate it." });
console.log(result.text);
