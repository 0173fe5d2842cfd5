/**
 * A Claude Agent SDK session in which every Bash command and file write needs a human's
 * approval in Countersign. The PreToolUse hook asks Countersign and waits; approved, Claude
 * Code runs the tool with exactly the approved input; denied, Claude is told the reviewer's
 * reason and carries on without it.
 *
 *   npm install @countersign/sdk @anthropic-ai/claude-agent-sdk
 *   COUNTERSIGN_URL=http://127.0.0.1:8080 COUNTERSIGN_API_KEY=cs_... ANTHROPIC_API_KEY=sk-ant-... npx tsx agent.ts
 *
 * Unlike the other examples this one needs Claude Code (installed with the SDK) and a model:
 * packages/sdk/test/adapters/claude-agent.test.ts exercises the hook and canUseTool through
 * the SDK's own types against a real gateway, not a Claude Code session.
 */

import { query } from "@anthropic-ai/claude-agent-sdk";
import { Countersign } from "@countersign/sdk";
import { countersignPermissions } from "@countersign/sdk/claude-agent";

const cs = new Countersign({ baseUrl: process.env.COUNTERSIGN_URL ?? "http://127.0.0.1:8080", apiKey: process.env.COUNTERSIGN_API_KEY ?? "" });

// The one line: both seams, gating the tools that change things.
const permissions = countersignPermissions(cs, {
  tools: ["Bash", "Write", "Edit"],
  environment: "production",
  onSubmitted: (r) => console.log(`waiting for approval of ${r.id}`),
});

for await (const message of query({
  prompt: "The disk on this host is full. Find what is using the space under /var/log and clean it up.",
  options: { hooks: permissions.hooks, canUseTool: permissions.canUseTool },
})) {
  if (message.type === "result") console.log(message.subtype === "success" ? message.result : `stopped: ${message.subtype}`);
}
