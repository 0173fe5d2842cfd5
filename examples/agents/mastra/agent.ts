/**
 * A Mastra agent whose `rotate-secret` tool has `requireApproval`, decided in Countersign:
 * the run suspends before the tool, `approvals.generate` asks Countersign and waits, then
 * goes on with `approveToolCallGenerate` (the tool runs, with the verified receipt) or
 * `declineToolCallGenerate` with the reviewer's reason, which the model reads.
 *
 *   npm install @countersign/sdk @mastra/core zod
 *   COUNTERSIGN_URL=http://127.0.0.1:8080 COUNTERSIGN_API_KEY=cs_... npx tsx agent.ts
 *
 * The model is Mastra's mock model, so the example runs without a provider key; use a real
 * one (`model: "openai/gpt-5-mini"`) and nothing else changes. Approvals need snapshots, so
 * the agent is registered on a Mastra with storage (in memory here).
 */
import { Countersign } from "@countersign/sdk";
import { approvalOf, countersign } from "@countersign/sdk/mastra";
import { Agent } from "@mastra/core/agent";
import { Mastra } from "@mastra/core/mastra";
import { InMemoryStore } from "@mastra/core/storage";
import { MastraLanguageModelV2Mock } from "@mastra/core/test-utils/llm-mock";
import { z } from "zod";

const cs = new Countersign({ baseUrl: process.env.COUNTERSIGN_URL ?? "http://127.0.0.1:8080", apiKey: process.env.COUNTERSIGN_API_KEY ?? "" });
const approvals = countersign(cs, { environment: "production", onSubmitted: (r) => console.log(`waiting for approval of ${r.id}`) });

// The one line: `approvals.createTool` instead of `createTool`.
const rotateSecret = approvals.createTool({
  id: "rotate-secret",
  description: "Rotate a production secret",
  inputSchema: z.object({ name: z.string() }),
  execute: async ({ name }, context) => {
    const { receipt } = approvalOf(context);
    return `rotated ${name}; approved by ${receipt.approvers.map((a) => a.principal).join(", ")}; receipt ${receipt.jti}`;
  },
});

const usage = { inputTokens: 0, outputTokens: 0, totalTokens: 0 };
const model = new MastraLanguageModelV2Mock({
  // Step 1 asks for the tool call; step 2 reports what the tool (or the decline) said.
  doGenerate: async ({ prompt }) => {
    const last = prompt.at(-1);
    if (last?.role === "tool") return { content: [{ type: "text", text: JSON.stringify(last.content) }], finishReason: "stop", usage, warnings: [] };
    const input = JSON.stringify({ name: "db-password" });
    return {
      content: [{ type: "tool-call", toolCallId: `call_${Date.now()}`, toolName: "rotate-secret", input }],
      finishReason: "tool-calls",
      usage,
      warnings: [],
    };
  },
});

// Register gated tools under their id: Mastra reports a suspended call by that key.
const ops = new Agent({ id: "ops", name: "ops", instructions: "Rotate leaked secrets.", model, tools: { "rotate-secret": rotateSecret } });
const mastra = new Mastra({ agents: { ops }, storage: new InMemoryStore(), logger: false });

const output = await approvals.generate(mastra.getAgent("ops"), "The db-password secret leaked. Rotate it.");
console.log(output.text);
