import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type CallToolResult, CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../support/api-helpers.ts";
import { tempDir } from "../support/db.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";
import { connectMcp, FILESYSTEM_SERVER } from "../support/mcp.ts";

// A person may take minutes to approve. The SDK client gives up on a request after 60 s
// unless progress resets its timer; the gateway's progress (every 15 s by default) must
// keep a call alive for as long as the approval takes.
describe("a tool call waiting two minutes for approval", () => {
  let gw: GatewayProcess;
  const root = tempDir("cs-mcp-wait-");
  let agentKey: string;
  let bobKey: string;

  beforeAll(async () => {
    mkdirSync(join(root.dir, "docs"));
    gw = await startGateway({
      policy: `
version: 1
mcp:
  servers:
    fs: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(FILESYSTEM_SERVER)}, ${JSON.stringify(root.dir)}] }
rules:
  - id: writes
    match: { action: mcp.fs.write_file }
    effect: require_approval
    approvers: [bob@example.com]
default: deny
`,
    });
    agentKey = (await gw.createKey({ name: "agent", owner: "carol@example.com", scopes: ["requests"] })).key;
    bobKey = (await gw.createKey({ name: "bob", owner: "bob@example.com", scopes: ["decisions"] })).key;
  });

  afterAll(async () => {
    await gw?.stop();
    root.remove();
  });

  it("is kept alive by progress and returns the tool's result when approved; without progress the client's 60 s timeout ends it", async () => {
    const kept = await connectMcp(gw.url, "fs", agentKey);
    const bare = await connectMcp(gw.url, "fs", agentKey);
    const path = join(root.dir, "docs", "slow.md");
    const started = Date.now();
    const progress: number[] = [];
    const alive = kept.client.request(
      { method: "tools/call", params: { name: "write_file", arguments: { path, content: "worth the wait\n" } } },
      CallToolResultSchema,
      { onprogress: (p) => progress.push(p.progress), resetTimeoutOnProgress: true },
    ) as Promise<CallToolResult>;
    // The same call from a client that ignores progress: the SDK's default 60 s timeout ends it.
    const timedOut = bare.client
      .request({ method: "tools/call", params: { name: "write_file", arguments: { path: `${path}.bare`, content: "x" } } }, CallToolResultSchema)
      .then(
        () => "answered",
        (e: Error) => e.message,
      );
    const list = async () =>
      ((await (await gw.api("/v1/requests?status=pending", { key: bobKey })).json()) as { data: { id: string; params: { path: string } }[] }).data;
    const id = (await eventually(async () => (await list()).find((r) => r.params.path === path))).id;
    expect(await timedOut).toMatch(/timed out/i);
    while (Date.now() - started < 125_000) await new Promise((r) => setTimeout(r, 1000));
    expect((await gw.api(`/v1/requests/${id}/decisions`, { method: "POST", key: bobKey, json: { decision: "approve" } })).status).toBe(201);
    const r = await alive;
    expect(r.isError).toBeFalsy();
    expect(readFileSync(path, "utf8")).toBe("worth the wait\n");
    // Progress every 15 s over more than two minutes.
    expect(progress.length).toBeGreaterThanOrEqual(8);
    await kept.close();
    await bare.close();
  }, 200_000);
});
