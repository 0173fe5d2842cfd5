/**
 * A LangChain.js agent (createAgent, on LangGraph) whose `rotate_secret` tool runs only once
 * a human approves that exact call in Countersign. In "interrupt" mode the run pauses with
 * LangGraph's `interrupt()` (the request id is in the checkpoint), and is resumed with
 * `new Command({ resume })` once reviewers decided; with a durable checkpointer
 * (PostgresSaver, SqliteSaver) another process can resume it. A denial reaches the model as
 * an error ToolMessage with the reviewer's reason.
 *
 *   npm install @countersign/sdk langchain @langchain/core @langchain/langgraph zod
 *   COUNTERSIGN_URL=http://127.0.0.1:8080 COUNTERSIGN_API_KEY=cs_... npx tsx agent.ts
 *
 * The model is LangChain's fakeModel, so the example runs without a provider key; pass a
 * real one (`model: "openai:gpt-5"`) and nothing else changes.
 */
import { Countersign } from "@countersign/sdk";
import { approvalOf, type CountersignInterrupt, countersignMiddleware } from "@countersign/sdk/langchain";
import { Command, MemorySaver } from "@langchain/langgraph";
import { AIMessage, createAgent, fakeModel, tool } from "langchain";
import { z } from "zod";

const cs = new Countersign({ baseUrl: process.env.COUNTERSIGN_URL ?? "http://127.0.0.1:8080", apiKey: process.env.COUNTERSIGN_API_KEY ?? "" });

const rotateSecret = tool(
  async ({ name }, config) => {
    const { receipt } = approvalOf(config);
    return `rotated ${name}; approved by ${receipt.approvers.map((a) => a.principal).join(", ")}; receipt ${receipt.jti}`;
  },
  { name: "rotate_secret", description: "Rotate a production secret", schema: z.object({ name: z.string() }) },
);

const model = fakeModel()
  .respondWithTools([{ name: "rotate_secret", args: { name: "db-password" }, id: `call_${Date.now()}` }])
  .respond((messages) => new AIMessage(String(messages.at(-1)?.content)));

const agent = createAgent({
  model,
  tools: [rotateSecret],
  checkpointer: new MemorySaver(),
  // The one line.
  middleware: [countersignMiddleware(cs, { mode: "interrupt", environment: "production" })],
});

const config = { configurable: { thread_id: "rotate-db-password" } };
let result = await agent.invoke({ messages: [{ role: "user", content: "The db-password secret leaked. Rotate it." }] }, config);
for (const pause of result.__interrupt__ ?? []) {
  const { requestId } = (pause.value as CountersignInterrupt).countersign;
  console.log(`waiting for approval of ${requestId}`);
  // Here the process could stop; something that learns of the decision (a Countersign
  // callback, or this wait) resumes the thread.
  await cs.waitForDecision(requestId);
}
result = await agent.invoke(new Command({ resume: {} }), config);
console.log(result.messages.at(-1)?.content);
