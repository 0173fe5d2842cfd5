/**
 * A Vercel AI SDK (v5) tool whose execution is gated by Countersign: the model may call
 * `rotateSecret` whenever it likes, but the rotation runs only after a human approves
 * that exact call. If they deny it, the model is told why and can carry on.
 *
 *   cd examples && npm install        # ai, @ai-sdk/openai, zod, @countersign/sdk
 *   COUNTERSIGN_URL=http://127.0.0.1:8080 COUNTERSIGN_API_KEY=cs_... OPENAI_API_KEY=sk-... \
 *     npx tsx ai-sdk-tool.ts
 */
import { openai } from "@ai-sdk/openai";
import { ApprovalError, Countersign } from "@countersign/sdk";
import { generateText, stepCountIs, tool } from "ai";
import { z } from "zod";

const cs = new Countersign({
  baseUrl: process.env.COUNTERSIGN_URL ?? "http://127.0.0.1:8080",
  apiKey: process.env.COUNTERSIGN_API_KEY ?? "",
});

/** The privileged action; a stand-in for your secret manager's API. */
async function rotate(name: string): Promise<{ name: string; version: number }> {
  return { name, version: Date.now() };
}

// Each call asks Countersign first and runs only with the approved params.
const guardedRotate = cs.guard("secret.rotate", async (p: { name: string; reason: string }) => rotate(p.name), {
  summary: (p) => `Rotate secret ${p.name}`,
  rationale: (p) => p.reason,
  resource: (p) => `secrets/${p.name}`,
  environment: "production",
  risk: "critical",
  onBehalfOf: process.env.COUNTERSIGN_ON_BEHALF_OF, // the human who asked the agent; they cannot approve it
  timeoutMs: 10 * 60_000,
  cancelOnTimeout: true,
});

export const tools = {
  rotateSecret: tool({
    description: "Rotate a production secret. Each rotation must first be approved by a human reviewer in Countersign.",
    inputSchema: z.object({
      name: z.string().describe("The secret's name, e.g. db-password"),
      reason: z.string().describe("Why it must be rotated now, shown to the reviewer"),
    }),
    execute: async ({ name, reason }, { abortSignal }) => {
      try {
        const rotated = await guardedRotate({ name, reason }, { signal: abortSignal });
        return { rotated: true, ...rotated };
      } catch (e) {
        // Denied, expired, cancelled or timed out: tell the model instead of failing the run.
        if (e instanceof ApprovalError) return { rotated: false, reason: e.message };
        throw e;
      }
    },
  }),
};

const result = await generateText({
  model: openai("gpt-4o"),
  tools,
  stopWhen: stepCountIs(5),
  prompt: "The db-password secret leaked in a CI log an hour ago. Rotate it, then summarise what you did.",
});
console.log(result.text);
