import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";
import { childProcessesOf, connectMcp, EVERYTHING_SERVER, type McpConnection } from "../support/mcp.ts";

// The MCP gateway is another way in for the same agent key: it must not be a way around
// the API's per-key limits.
describe("the MCP gateway's limits", () => {
  let gw: GatewayProcess;
  let agentKey: string;

  beforeAll(async () => {
    gw = await startGateway({
      env: { COUNTERSIGN_RATE_LIMIT: "1", COUNTERSIGN_RATE_BURST: "2" },
      policy: `
version: 1
mcp:
  servers:
    everything: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(EVERYTHING_SERVER)}, stdio] }
rules:
  - id: allow
    match: { action: "mcp.everything.*" }
    effect: allow
default: deny
`,
    });
    agentKey = (await gw.createKey({ name: "agent", owner: "carol@example.com", scopes: ["requests"] })).key;
  });

  afterAll(async () => {
    await gw?.stop();
  });

  it("a tools/call draws on the key's intake rate, shared with POST /v1/requests", async () => {
    const c = await connectMcp(gw.url, "everything", agentKey);
    try {
      const echo = () => c.client.callTool({ name: "echo", arguments: { message: "hi" } });
      await echo();
      await echo();
      const limited = (await echo().catch((e: Error) => e)) as Error & { code?: number; data?: { code: string; retryAfter: number } };
      expect(limited).toBeInstanceOf(Error);
      expect(limited.data).toMatchObject({ code: "rate_limited", retryAfter: expect.any(Number) });
      expect(limited.message).toContain("limited to 1 requests per second");
      const api = await gw.api("/v1/requests", { method: "POST", key: agentKey, json: { action: "mcp.everything.echo", summary: "x", params: {} } });
      expect(api.status).toBe(429);
      // Listing and reading are not intakes.
      expect((await c.client.listTools()).tools.length).toBeGreaterThan(0);
    } finally {
      await c.close();
    }
  });

  it("one key may hold 16 sessions; the 17th is refused until one closes", async () => {
    const open: McpConnection[] = [];
    try {
      for (let i = 0; i < 16; i++) open.push(await connectMcp(gw.url, "everything", agentKey));
      const refused = (await connectMcp(gw.url, "everything", agentKey).catch((e: Error) => e)) as Error;
      expect(refused).toBeInstanceOf(Error);
      expect(refused.message).toContain("already has 16 open MCP sessions");
      await (open.shift() as McpConnection).close();
      open.push(await connectMcp(gw.url, "everything", agentKey));
    } finally {
      for (const c of open) await c.close();
    }
  });

  it("a variable reference in mcp.servers that the environment does not set stops the start, naming it", async () => {
    const failed = await startGateway({
      policy: `version: 1\nmcp:\n  servers:\n    gh: { command: npx, env: { GITHUB_TOKEN: "\${CS_TEST_UNSET_TOKEN}" } }\n`,
    }).catch((e: Error) => e);
    expect(failed).toBeInstanceOf(Error);
    expect((failed as Error).message).toContain(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the policy file's own ${NAME} syntax
      "mcp.servers.gh.env.GITHUB_TOKEN references ${CS_TEST_UNSET_TOKEN}, which is not set in the gateway's environment",
    );
  });

  // Last: it stops this file's gateway.
  it("a gateway that stops stops its upstream processes with it", async () => {
    const c = await connectMcp(gw.url, "everything", agentKey);
    await c.client.ping();
    const children = childProcessesOf(gw.child.pid as number, EVERYTHING_SERVER);
    expect(children.length).toBeGreaterThan(0);
    await gw.kill("SIGTERM");
    expect(gw.child.exitCode).toBe(0);
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(children.filter(alive)).toEqual([]);
  });
});
