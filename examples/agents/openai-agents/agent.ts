/**
 * An OpenAI Agents SDK agent whose `rotate_secret` tool needs a human's approval in
 * Countersign. The run stops at the approval interruption; the request is submitted and its
 * id saved in the serialised RunState, which another process (here, the same one later)
 * restores to wait for the decision and finish the run. A denial reaches the model as the
 * SDK's own rejection, with the reviewer's reason.
 *
 *   npm install @countersign/sdk @openai/agents zod
 *   COUNTERSIGN_URL=http://127.0.0.1:8080 COUNTERSIGN_API_KEY=cs_... npx tsx agent.ts
 *
 * The model is the SDK's ScriptedModel (from @openai/agents-core/testing, installed with
 * @openai/agents), so the example runs without an OpenAI key; drop `model` to use the
 * default OpenAI model and nothing else changes.
 */
import { Countersign } from "@countersign/sdk";
import { approvalOf, countersign } from "@countersign/sdk/openai-agents";
import { Agent, RunState, run } from "@openai/agents";
import { assistantMessage, functionCall, modelResponder, ScriptedModel } from "@openai/agents-core/testing";
import { z } from "zod";

const cs = new Countersign({ baseUrl: process.env.COUNTERSIGN_URL ?? "http://127.0.0.1:8080", apiKey: process.env.COUNTERSIGN_API_KEY ?? "" });
const approvals = countersign(cs, { environment: "production" });

// The one line: `approvals.tool` instead of `tool`.
const rotateSecret = approvals.tool({
  name: "rotate_secret",
  description: "Rotate a production secret",
  parameters: z.object({ name: z.string() }),
  execute: async ({ name }, _context, details) => {
    const { receipt } = approvalOf(details);
    return `rotated ${name}; approved by ${receipt.approvers.map((a) => a.principal).join(", ")}; receipt ${receipt.jti}`;
  },
});

// Step 1 asks for the tool call; step 2 reports what the tool (or the rejection) said.
const model = new ScriptedModel([
  [functionCall("rotate_secret", { name: "db-password" }, { callId: `call_${Date.now()}` })],
  modelResponder((call) => [assistantMessage(JSON.stringify(Array.isArray(call.request.input) ? call.request.input.at(-1) : call.request.input))]),
]);
const agent = new Agent({ name: "ops", instructions: "Rotate leaked secrets.", model, tools: [rotateSecret] });

// First process: run until the interruption, ask Countersign, save the state.
const first = await run(agent, "The db-password secret leaked. Rotate it.", { context: {} });
for (const { request } of await approvals.submit(first.state)) console.log(`waiting for approval of ${request.id}`);
const saved = first.state.toString();

// Later, perhaps in another process: restore, wait for the decision, finish the run.
const state = await RunState.fromString(agent, saved);
await approvals.resolve(state);
const result = await run(agent, state);
console.log(result.finalOutput);
