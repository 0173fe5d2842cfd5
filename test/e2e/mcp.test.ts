import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Client, Client as SdkClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  type CallToolResult,
  CallToolResultSchema,
  CancelTaskResultSchema,
  CreateMessageRequestSchema,
  CreateTaskResultSchema,
  ElicitationCompleteNotificationSchema,
  ElicitRequestSchema,
  GetTaskResultSchema,
  ListRootsRequestSchema,
  ListTasksResultSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { createLocalJWKSet, jwtVerify } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { canonicalSha256 } from "../../packages/core/src/index.ts";
import { blocksText, type FakeSlack, startFakeSlack } from "../fakes/fake-slack.ts";
import { blockActionsPayload, sendSigned, slackUser } from "../fakes/slack-sign.ts";
import { eventually, runCli, sleep } from "../support/api-helpers.ts";
import { CLI_MAIN } from "../support/build.ts";
import { engines, tempDir } from "../support/db.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";
import { childProcessesOf, connectMcp, EVERYTHING_SERVER, FILESYSTEM_SERVER, type McpConnection, startEverythingHttp } from "../support/mcp.ts";

const SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
const TOKEN = "xoxb-1111-2222-countersign-mcp";
const OPS = "C0MCPOPS1";
const ALICE = slackUser("U0ALICE01", "alice");
const CAROL = slackUser("U0CAROL01", "carol");

const META_REQUEST = "countersign.dev/requestId";
const META_RECEIPT = "countersign.dev/receipt";
const META_IDEMPOTENCY = "countersign.dev/idempotencyKey";

const text = (r: CallToolResult) => r.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");

describe.each(engines())("the MCP gateway (%s)", (engine) => {
  let gw: GatewayProcess;
  let slack: FakeSlack;
  let http: Awaited<ReturnType<typeof startEverythingHttp>>;
  const root = tempDir("cs-mcp-fs-");
  let agentKey: string;
  let otherAgentKey: string;
  let bobKey: string;
  let adminKey: string;
  const open: McpConnection[] = [];

  const connect = async (server: string, o: Parameters<typeof connectMcp>[3] & { key?: string } = {}) => {
    const c = await connectMcp(gw.url, server, o.key ?? agentKey, o);
    open.push(c);
    return c;
  };
  const call = (client: Client, name: string, args: Record<string, unknown>, opts: { meta?: Record<string, unknown>; timeout?: number } = {}) =>
    client.request({ method: "tools/call", params: { name, arguments: args, ...(opts.meta ? { _meta: opts.meta } : {}) } }, CallToolResultSchema, {
      timeout: opts.timeout ?? 60_000,
    }) as Promise<CallToolResult>;

  const request = async (id: string) =>
    (await (await gw.api(`/v1/requests/${id}`, { key: adminKey })).json()) as { status: string; params: unknown; resolution: string; redeemedAt?: string };

  /** The pending request a waiting call made, once it exists, found by its action and path. */
  const pendingFor = (action: string, path: string) =>
    eventually(async () => {
      const list = (await (await gw.api(`/v1/requests?status=pending&action=${encodeURIComponent(action)}`, { key: adminKey })).json()) as {
        data: { id: string; params: { path?: string } }[];
      };
      return list.data.find((r) => r.params.path === path);
    });
  const eventTypes = async (id: string) =>
    ((await (await gw.api(`/v1/requests/${id}/evidence`, { key: adminKey })).json()) as { entries: { event: { type: string } }[] }).entries.map(
      (e) => e.event.type,
    );

  const approveByApi = (id: string, decision: "approve" | "deny" = "approve", reason?: string) =>
    gw.api(`/v1/requests/${id}/decisions`, { method: "POST", key: bobKey, json: { decision, ...(reason ? { reason } : {}) } });

  beforeAll(async () => {
    mkdirSync(join(root.dir, "docs"));
    mkdirSync(join(root.dir, "secrets"));
    writeFileSync(join(root.dir, "docs", "readme.md"), "# hello from the filesystem server\n");
    writeFileSync(join(root.dir, "secrets", "key.txt"), "do-not-read\n");
    slack = await startFakeSlack({
      token: TOKEN,
      users: [
        { id: ALICE.id, name: "alice", email: "alice@example.com" },
        { id: CAROL.id, name: "carol", email: "carol@example.com" },
      ],
    });
    http = await startEverythingHttp();
    const node = JSON.stringify(process.execPath);
    gw = await startGateway({
      engine,
      env: { SLACK_BOT_TOKEN: TOKEN, SLACK_SIGNING_SECRET: SECRET, SLACK_API_URL: slack.url, COUNTERSIGN_MCP_PROGRESS_MS: "500" },
      policy: `
version: 1
channels:
  ops: { slack: { channel: ${OPS} } }
mcp:
  servers:
    fs: { command: ${node}, args: [${JSON.stringify(FILESYSTEM_SERVER)}, ${JSON.stringify(root.dir)}] }
    everything: { command: ${node}, args: [${JSON.stringify(EVERYTHING_SERVER)}, stdio] }
    slow: { command: ${node}, args: [${JSON.stringify(EVERYTHING_SERVER)}, stdio], timeout: 2s }
    remote: { url: ${http.url} }
    broken: { command: /nonexistent/mcp-server }
rules:
  - id: no-secrets
    description: secrets never leave the box
    match: { action: "mcp.fs.*", params: { path: "${root.dir}/secrets/**" } }
    effect: deny
  - id: no-moves
    match: { action: mcp.fs.move_file }
    effect: deny
  - id: quick-dirs
    match: { action: mcp.fs.create_directory }
    effect: require_approval
    approvers: [alice@example.com, bob@example.com]
    expiresIn: 2s
    notify: [ops]
  - id: fs-writes
    match: { action: ["mcp.fs.write_file", "mcp.fs.edit_file"] }
    effect: require_approval
    approvers: [alice@example.com, bob@example.com, carol@example.com]
    notify: [ops]
  - id: fs-reads
    match: { action: "mcp.fs.*" }
    effect: allow
  - id: everything
    match: { action: ["mcp.everything.*", "mcp.slow.*", "mcp.remote.*"] }
    effect: allow
default: deny
`,
    });
    // carol owns the agent's key: she is the requester of every call it makes.
    agentKey = (await gw.createKey({ name: "claude-code", owner: "carol@example.com", scopes: ["requests"] })).key;
    otherAgentKey = (await gw.createKey({ name: "other-agent", owner: "dave@example.com", scopes: ["requests"] })).key;
    bobKey = (await gw.createKey({ name: "bob", owner: "bob@example.com", scopes: ["decisions"] })).key;
    adminKey = (await gw.createKey({ name: "admin", owner: "admin@example.com", scopes: ["admin"] })).key;
  });

  afterEach(async () => {
    for (const c of open.splice(0)) await c.close().catch(() => {});
  });

  afterAll(async () => {
    for (const c of open) await c.close().catch(() => {});
    await gw?.stop();
    await http?.stop();
    await slack?.close();
    root.remove();
  });

  it("lists the upstream's tools, without those the policy always denies, and marks those that wait for approval", async () => {
    const { client } = await connect("fs");
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    expect(names).toContain("read_text_file");
    expect(names).not.toContain("move_file");
    const write = tools.find((t) => t.name === "write_file");
    const read = tools.find((t) => t.name === "read_text_file");
    expect(write?.description).toMatch(/Countersign: .*may wait for a person's approval/);
    expect(read?.description).not.toMatch(/Countersign/);
    expect(client.getServerVersion()?.name).toMatch(/filesystem/i);
    const metrics = await (await gw.api("/metrics", { key: adminKey })).text();
    expect(metrics).toMatch(/^countersign_mcp_sessions\{server="fs"\} [1-9]/m);
    expect(metrics).toMatch(/^countersign_mcp_sessions\{server="broken"\} 0$/m);
  });

  it("an allowed read runs at once and returns the upstream's result, with a receipt bound to its arguments", async () => {
    const { client } = await connect("fs");
    const path = join(root.dir, "docs", "readme.md");
    const r = await call(client, "read_text_file", { path });
    expect(r.isError).toBeFalsy();
    expect(text(r)).toContain("hello from the filesystem server");
    const id = r._meta?.[META_REQUEST] as string;
    const receipt = r._meta?.[META_RECEIPT] as string;
    expect(await request(id)).toMatchObject({ status: "approved", resolution: "policy", params: { path } });
    const jwks = createLocalJWKSet((await (await gw.api("/.well-known/jwks.json")).json()) as Parameters<typeof createLocalJWKSet>[0]);
    const { payload } = await jwtVerify(receipt, jwks);
    expect(payload).toMatchObject({ jti: id, action: "mcp.fs.read_text_file", params_sha256: canonicalSha256({ path }) });
  });

  it("the Countersign-On-Behalf-Of header names the person the agent acts for; a malformed one is refused", async () => {
    const path = join(root.dir, "docs", "readme.md");
    const { client } = await connect("fs", { headers: { "Countersign-On-Behalf-Of": "Dave@Example.com" } });
    const r = await call(client, "read_text_file", { path });
    expect(await request(r._meta?.[META_REQUEST] as string)).toMatchObject({ onBehalfOf: "dave@example.com" });
    const bad = await connect("fs", { headers: { "Countersign-On-Behalf-Of": "not an address" } });
    const err = (await call(bad.client, "read_text_file", { path }).catch((e: Error) => e)) as Error & { code?: number; data?: { code: string } };
    expect(err.code).toBe(-32602);
    expect(err.data?.code).toBe("invalid_request");
    expect(err.message).toContain("Countersign cannot take this tool call: the countersign-on-behalf-of header: expected an email address");
  });

  it("a call the policy denies never reaches the tool, and the error names the rule and its reason", async () => {
    const { client } = await connect("fs");
    const r = await call(client, "read_text_file", { path: join(root.dir, "docs", "..", "secrets", "key.txt") });
    expect(r.isError).toBe(true);
    expect(text(r)).toContain('rule "no-secrets" (secrets never leave the box)');
    expect(text(r)).not.toContain("do-not-read");
    const moved = await call(client, "move_file", { source: join(root.dir, "docs", "readme.md"), destination: join(root.dir, "x.md") });
    expect(moved.isError).toBe(true);
    expect(text(moved)).toContain('rule "no-moves"');
    expect(readFileSync(join(root.dir, "docs", "readme.md"), "utf8")).toContain("hello");
  });

  it("a write waits for approval, with progress, and runs with exactly the approved arguments once approved through the API", async () => {
    const { client } = await connect("fs");
    const path = join(root.dir, "docs", "api.md");
    const progress: string[] = [];
    const pending = client.request(
      { method: "tools/call", params: { name: "write_file", arguments: { path, content: "approved via the API\n" } } },
      CallToolResultSchema,
      { onprogress: (p) => progress.push(p.message ?? ""), timeout: 60_000 },
    );
    const req = await pendingFor("mcp.fs.write_file", path);
    expect(req.params).toEqual({ path, content: "approved via the API\n" });
    await eventually(async () => progress.length >= 2);
    expect(progress[0]).toContain(`Waiting for approval: 0 of 1 (request ${req.id}`);
    expect(() => readFileSync(path)).toThrow();
    expect((await approveByApi(req.id)).status).toBe(201);
    const r = (await pending) as CallToolResult;
    expect(r.isError).toBeFalsy();
    expect(text(r)).toContain("Successfully wrote");
    expect(r._meta?.[META_REQUEST]).toBe(req.id);
    expect(readFileSync(path, "utf8")).toBe("approved via the API\n");
    expect((await request(req.id)).status).toBe("approved");
    expect(await eventTypes(req.id)).toEqual(["request.created", "decision.recorded", "request.approved", "receipt.redeemed"]);
  });

  it("a write approved with one Slack click returns the upstream's real result; the requester's own click is refused", async () => {
    const { client } = await connect("fs");
    const path = join(root.dir, "docs", "slack.md");
    const pending = call(client, "write_file", { path, content: "approved in Slack\n" });
    const req = await pendingFor("mcp.fs.write_file", path);
    const posted = await slack.waitFor("chat.postMessage", (x) => x.args.channel === OPS && blocksText(x.args.blocks).includes(req.id));
    expect(blocksText(posted.args.blocks)).toContain("approved in Slack");
    const click = (user: typeof ALICE) =>
      sendSigned(
        `${gw.url}/slack/events`,
        blockActionsPayload({
          user,
          channel: OPS,
          messageTs: posted.response.ts as string,
          blocks: posted.args.blocks as unknown[],
          actionId: "countersign.approve",
          value: req.id,
        }),
        { secret: SECRET },
      );
    // carol owns the agent's key: approving her own agent's call is refused, and the call keeps waiting.
    expect((await click(CAROL)).status).toBe(200);
    const refused = await slack.waitFor("chat.postEphemeral", (x) => x.args.user === CAROL.id);
    expect(String(refused.args.text)).toMatch(/can't decide/i);
    await sleep(300);
    expect((await request(req.id)).status).toBe("pending");
    expect((await click(ALICE)).status).toBe(200);
    const r = await pending;
    expect(r.isError).toBeFalsy();
    expect(text(r)).toContain("Successfully wrote");
    expect(readFileSync(path, "utf8")).toBe("approved in Slack\n");
  });

  it("a call a reviewer denies returns a tool error with the reviewer's reason, and the tool is not called", async () => {
    const { client } = await connect("fs");
    const path = join(root.dir, "docs", "denied.md");
    const pending = call(client, "write_file", { path, content: "no\n" });
    const req = await pendingFor("mcp.fs.write_file", path);
    await approveByApi(req.id, "deny", "not during the freeze");
    const r = await pending;
    expect(r.isError).toBe(true);
    expect(text(r)).toContain("Denied by bob@example.com: not during the freeze");
    expect(() => readFileSync(path)).toThrow();
  });

  it("a call no one decides in time returns a tool error saying it expired", async () => {
    const { client } = await connect("fs");
    const r = await call(client, "create_directory", { path: join(root.dir, "never") });
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/expired/);
    expect(() => readFileSync(join(root.dir, "never"))).toThrow();
  });

  it("a cancelled call cancels its approval request", async () => {
    const { client } = await connect("fs");
    const abort = new AbortController();
    const path = join(root.dir, "c.md");
    const pending = client
      .request({ method: "tools/call", params: { name: "write_file", arguments: { path, content: "x" } } }, CallToolResultSchema, {
        signal: abort.signal,
      })
      .catch((e: Error) => e);
    const req = await pendingFor("mcp.fs.write_file", path);
    abort.abort("changed my mind");
    expect(await pending).toBeInstanceOf(Error);
    await eventually(async () => (await request(req.id)).status === "cancelled");
  });

  it("passes resources, prompts, completions and logging through unchanged", async () => {
    const { client } = await connect("everything");
    const { resources } = await client.listResources();
    expect(resources.length).toBeGreaterThan(0);
    const first = resources[0] as { uri: string };
    const read = await client.readResource({ uri: first.uri });
    expect(read.contents[0]?.uri).toBe(first.uri);
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.length).toBeGreaterThan(0);
    const { prompts } = await client.listPrompts();
    const simple = prompts.find((p) => !p.arguments?.some((a) => a.required));
    expect(simple).toBeDefined();
    const prompt = await client.getPrompt({ name: (simple as { name: string }).name });
    expect(prompt.messages.length).toBeGreaterThan(0);
    await client.setLoggingLevel("debug");
    expect(await client.ping()).toEqual({});
  });

  it("passes the upstream's own notifications to the agent: resource updates and log messages", async () => {
    const { client } = await connect("everything");
    const updated: string[] = [];
    const logged: unknown[] = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
      updated.push(n.params.uri);
    });
    client.setNotificationHandler(LoggingMessageNotificationSchema, async (n) => {
      logged.push(n.params.data);
    });
    const { resources } = await client.listResources();
    const uri = (resources[0] as { uri: string }).uri;
    await client.subscribeResource({ uri });
    await call(client, "toggle-subscriber-updates", {});
    await call(client, "toggle-simulated-logging", {});
    await eventually(async () => updated.includes(uri) && logged.length > 0, 15_000);
  });

  it("passes a sampling request from the upstream to the agent, and its answer back", async () => {
    const { client } = await connect("everything", { capabilities: { sampling: {} } });
    client.setRequestHandler(CreateMessageRequestSchema, async () => ({
      role: "assistant",
      model: "test-model",
      content: { type: "text", text: "the agent's own model says hi" },
    }));
    const r = await call(client, "trigger-sampling-request", { prompt: "say hi" });
    expect(JSON.stringify(r.content)).toContain("the agent's own model says hi");
  });

  it("relays the upstream's progress for a long call, and reaches a Streamable HTTP upstream", async () => {
    const { client } = await connect("everything");
    const steps: number[] = [];
    const r = (await client.request(
      { method: "tools/call", params: { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 3 } } },
      CallToolResultSchema,
      { onprogress: (p) => steps.push(p.progress) },
    )) as CallToolResult;
    expect(text(r)).toContain("Long running operation completed");
    // The SDK client runs a progress handler a microtask late and drops the call's handler
    // when the result arrives: a last progress read in the same chunk as the result is lost
    // by the client (as it would be from the upstream directly). The earlier ones must arrive, in order.
    expect(steps.length).toBeGreaterThanOrEqual(2);
    expect(steps).toEqual([1, 2, 3].slice(0, steps.length));
    const remote = await connect("remote");
    const sum = await call(remote.client, "get-sum", { a: 2, b: 40 });
    expect(text(sum)).toContain("42");
  });

  it("an upstream that crashes mid-call gives the agent an error, and is started again for the next call", async () => {
    const { client } = await connect("everything");
    const before = childProcessesOf(gw.child.pid as number, EVERYTHING_SERVER);
    const pending = call(client, "trigger-long-running-operation", { duration: 20, steps: 20 }).catch((e: Error) => e);
    await sleep(500);
    const mine = childProcessesOf(gw.child.pid as number, EVERYTHING_SERVER).filter((p) => before.includes(p));
    for (const pid of mine) process.kill(pid, "SIGKILL");
    const err = await pending;
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/stopped during the call; it is started again/);
    const again = await call(client, "echo", { message: "back" });
    expect(text(again)).toContain("back");
  });

  it("an upstream that does not answer in time gives the agent a timeout error", async () => {
    const { client } = await connect("slow");
    const err = await call(client, "trigger-long-running-operation", { duration: 10, steps: 1 }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/did not answer within 2s/);
  });

  it("refuses, with a JSON-RPC error, an unknown server, a missing or wrong key, malformed JSON, an oversized message and another key's session", async () => {
    const init = {
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "x", version: "1" } },
    };
    const post = (server: string, body: string, key?: string, headers: Record<string, string> = {}) =>
      fetch(`${gw.url}/mcp/${server}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          ...(key ? { authorization: `Bearer ${key}` } : {}),
          ...headers,
        },
        body,
      });
    const expectRpc = async (res: Response, status: number, code: string) => {
      expect(res.status).toBe(status);
      const body = (await res.json()) as { jsonrpc: string; error: { code: number; message: string; data: { code: string } } };
      expect(body.jsonrpc).toBe("2.0");
      expect(body.error.data.code).toBe(code);
      return body.error;
    };
    expect((await expectRpc(await post("nope", JSON.stringify(init), agentKey), 404, "not_found")).message).toContain('No MCP server named "nope"');
    await expectRpc(await post("fs", JSON.stringify(init)), 401, "unauthorized");
    // Without a key, not even which servers exist.
    expect((await expectRpc(await post("nope", JSON.stringify(init)), 401, "unauthorized")).message).not.toContain("configured");
    await expectRpc(await post("fs", JSON.stringify(init), "cs_live_wrong"), 401, "unauthorized");
    await expectRpc(await post("fs", JSON.stringify(init), bobKey), 403, "forbidden");
    const malformed = await expectRpc(await post("fs", '{"jsonrpc":"2.0","id":1,', agentKey), 400, "invalid_request");
    await expectRpc(await post("fs", JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/list" }), agentKey), 400, "invalid_request");
    const put = await fetch(`${gw.url}/mcp/fs`, { method: "PUT", headers: { authorization: `Bearer ${agentKey}` } });
    expect(put.status).toBe(405);
    expect(put.headers.get("allow")).toBe("GET, POST, DELETE");
    expect(malformed.code).toBe(-32700);
    await expectRpc(await post("fs", JSON.stringify({ ...init, id: 2, id2: 1, x: "a".repeat(1_100_000) }), agentKey), 413, "payload_too_large");
    const { transport } = await connect("fs");
    await expectRpc(
      await post("fs", JSON.stringify({ jsonrpc: "2.0", id: 5, method: "tools/list" }), otherAgentKey, {
        "mcp-session-id": transport.sessionId as string,
        "mcp-protocol-version": "2025-11-25",
      }),
      404,
      "not_found",
    );
    // An initialize the SDK's transport refuses (it must accept SSE) leaves no session and no upstream process behind.
    const sessions = async () =>
      Number(/^countersign_mcp_sessions\{server="fs"\} (\d+)$/m.exec(await (await gw.api("/metrics", { key: adminKey })).text())?.[1]);
    const before = await sessions();
    const notAccepted = await post("fs", JSON.stringify(init), agentKey, { accept: "application/json" });
    expect(notAccepted.status).toBe(406);
    expect(await sessions()).toBe(before);
    const broken = await expectRpc(await post("broken", JSON.stringify(init), agentKey), 502, "upstream_failed");
    expect(broken.message).toContain('command "/nonexistent/mcp-server" was not found');
  });

  it("an oversized argument in a tool call is refused without running the tool", async () => {
    const { client } = await connect("fs");
    const path = join(root.dir, "docs", "big.md");
    const err = await call(client, "write_file", { path, content: "x".repeat(1_100_000) }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(() => readFileSync(path)).toThrow();
    // Arguments Countersign cannot store as sent are refused, naming the argument.
    const nul = (await call(client, "write_file", { path, content: "a\u0000b" }).catch((e: Error) => e)) as Error & { code?: number };
    expect(nul.code).toBe(-32602);
    expect(nul.message).toContain("arguments.content: must not contain NUL characters");
    expect(() => readFileSync(path)).toThrow();
  });

  it("an agent's roots never widen an upstream's sandbox: the directories its command line names stay the only ones", async () => {
    const { client } = await connect("fs", { capabilities: { roots: { listChanged: true } } });
    let asked = false;
    client.setRequestHandler(ListRootsRequestSchema, async () => {
      asked = true;
      return { roots: [{ uri: "file:///etc", name: "etc" }] };
    });
    await sleep(800);
    const r = await call(client, "read_text_file", { path: "/etc/hostname" });
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/outside allowed directories/i);
    expect(asked).toBe(false);
  });

  it("passes the upstream's own JSON-RPC errors through as it sent them", async () => {
    const { client } = await connect("everything");
    const viaGateway = (await client.getPrompt({ name: "no-such-prompt" }).catch((e: Error) => e)) as Error & { code?: number };
    const direct = new SdkClient({ name: "direct", version: "1.0.0" });
    await direct.connect(new StdioClientTransport({ command: process.execPath, args: [EVERYTHING_SERVER, "stdio"], stderr: "ignore" }));
    const straight = (await direct.getPrompt({ name: "no-such-prompt" }).catch((e: Error) => e)) as Error & { code?: number };
    await direct.close();
    expect(straight.code).toBe(-32602);
    expect({ code: viaGateway.code, message: viaGateway.message }).toEqual({ code: straight.code, message: straight.message });
  });

  it("countersign mcp stdio bridges a stdio-only client to the gateway", async () => {
    const client = new SdkClient({ name: "stdio-only", version: "1.0.0" });
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI_MAIN, "mcp", "stdio", "--server", "everything", "--url", gw.url],
      env: { PATH: process.env.PATH ?? "", COUNTERSIGN_API_KEY: agentKey },
      stderr: "pipe",
    });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain("echo");
      const r = (await client.callTool({ name: "echo", arguments: { message: "over stdio" } })) as CallToolResult;
      expect(text(r)).toContain("over stdio");
      expect(r._meta?.[META_REQUEST]).toMatch(/^req_/);
    } finally {
      await client.close();
    }
    const noKey = await runCli(["mcp", "stdio", "--server", "everything", "--url", gw.url], { PATH: process.env.PATH ?? "" });
    expect(noKey.code).not.toBe(0);
    expect(noKey.stderr).toContain("COUNTERSIGN_API_KEY is not set");
    // A refused key comes back to the client as the gateway's JSON-RPC error, not a hang.
    const refused = new SdkClient({ name: "stdio-only", version: "1.0.0" });
    const bad = new StdioClientTransport({
      command: process.execPath,
      args: [CLI_MAIN, "mcp", "stdio", "--server", "everything", "--url", gw.url],
      env: { PATH: process.env.PATH ?? "", COUNTERSIGN_API_KEY: "cs_live_wrong" },
      stderr: "pipe",
    });
    const e = await refused.connect(bad).catch((x: Error) => x);
    expect(String((e as Error).message)).toMatch(/API key/);
    await refused.close();
  });

  it("a client that supports URL elicitation is sent a link to the request's status page while the call waits", async () => {
    const { client } = await connect("fs", { capabilities: { elicitation: { url: {} } } });
    let asked: { mode?: string; url?: string; elicitationId?: string; message?: string } | undefined;
    const completed: string[] = [];
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked = req.params as typeof asked;
      return { action: "accept" };
    });
    client.setNotificationHandler(ElicitationCompleteNotificationSchema, async (n) => {
      completed.push(n.params.elicitationId);
    });
    const path = join(root.dir, "docs", "elicited.md");
    const pending = call(client, "write_file", { path, content: "<b>followed</b>" });
    const req = await pendingFor("mcp.fs.write_file", path);
    await eventually(async () => asked);
    expect(asked).toMatchObject({ mode: "url", elicitationId: req.id, message: expect.stringContaining(req.id) });
    // The link names the gateway's public URL (COUNTERSIGN_PUBLIC_URL, here the default http://localhost:<port>).
    const link = new URL(asked?.url as string);
    expect(link.origin).toBe(`http://localhost:${gw.port}`);
    expect(link.pathname).toMatch(/^\/approval-status\/[\w-]+\.[\w-]+\.[\w-]+$/);
    const url = `${gw.url}${link.pathname}`;
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).toContain("Waiting for approval");
    expect(html).toContain("mcp.fs.write_file");
    // Params are shown escaped, never as markup.
    expect(html).toContain("&#60;b&#62;followed&#60;/b&#62;");
    expect(html).not.toContain("<b>followed</b>");
    const forged = `${url.slice(0, -4)}${url.endsWith("AAAA") ? "BBBB" : "AAAA"}`;
    expect((await fetch(forged)).status).toBe(404);
    // A checkpoint is signed by the same key, but it is not a status link.
    const checkpoint = await eventually(async () => {
      const list = (await (await gw.api("/v1/audit/checkpoints", { key: adminKey })).json()) as { data: { jws: string }[] };
      return list.data[0];
    });
    expect((await fetch(`${gw.url}/approval-status/${checkpoint.jws}`)).status).toBe(404);
    await approveByApi(req.id);
    expect((await pending).isError).toBeFalsy();
    await eventually(async () => completed.includes(req.id));
    expect(await (await fetch(url)).text()).toContain("Approved");
  });

  it("a task-augmented call answers at once with a task (the request's id) that completes on decision", async () => {
    const { client } = await connect("fs");
    expect(client.getServerCapabilities()?.tasks).toMatchObject({ requests: { tools: { call: {} } }, cancel: {}, list: {} });
    const path = join(root.dir, "docs", "task.md");
    const created = await client.request(
      { method: "tools/call", params: { name: "write_file", arguments: { path, content: "written by a task\n" }, task: { ttl: 60_000 } } },
      CreateTaskResultSchema,
    );
    const taskId = created.task.taskId;
    expect(taskId).toMatch(/^req_/);
    expect(created.task.status).toBe("working");
    const got = await client.request({ method: "tasks/get", params: { taskId } }, GetTaskResultSchema);
    expect(got).toMatchObject({ taskId, status: "working", statusMessage: expect.stringContaining("Waiting for approval: 0 of 1") });
    expect((await client.request({ method: "tasks/list", params: {} }, ListTasksResultSchema)).tasks.map((t) => t.taskId)).toContain(taskId);
    // Another agent's key cannot see it.
    const other = await connect("fs", { key: otherAgentKey });
    const hidden = await other.client.request({ method: "tasks/get", params: { taskId } }, GetTaskResultSchema).catch((e: Error) => e);
    expect((hidden as Error).message).toContain("Task not found");
    expect(() => readFileSync(path)).toThrow();
    expect((await approveByApi(taskId)).status).toBe(201);
    const result = (await client.request({ method: "tasks/result", params: { taskId } }, CallToolResultSchema)) as CallToolResult;
    expect(text(result)).toContain("Successfully wrote");
    expect(result._meta?.[META_RECEIPT]).toEqual(expect.any(String));
    expect(readFileSync(path, "utf8")).toBe("written by a task\n");
    expect((await client.request({ method: "tasks/get", params: { taskId } }, GetTaskResultSchema)).status).toBe("completed");
  });

  it("tasks/result runs only a request that is a call on this server, and the tool its action names (never its metadata)", async () => {
    // Reproduction: a request made through the REST API, allowed by the reads rule, whose
    // metadata names another tool. Adopting it as a task must not run write_file.
    const path = join(root.dir, "docs", "adopted.md");
    const forged = await gw.api("/v1/requests", {
      method: "POST",
      key: agentKey,
      json: {
        action: "mcp.fs.list_directory",
        summary: "x",
        params: { path: join(root.dir, "docs"), content: "pwned" },
        metadata: { "mcp.tool": "write_file" },
      },
    });
    expect(forged.status).toBe(201);
    const forgedId = ((await forged.json()) as { id: string }).id;
    const { client } = await connect("fs");
    const got = await client.request({ method: "tasks/get", params: { taskId: forgedId } }, GetTaskResultSchema);
    expect(got.status).toBe("working");
    const r = (await client.request({ method: "tasks/result", params: { taskId: forgedId } }, CallToolResultSchema)) as CallToolResult;
    expect(text(r)).toContain("readme.md");
    expect(() => readFileSync(path)).toThrow();
    // A request for another server's tool is not a task of this one.
    const other = await gw.api("/v1/requests", {
      method: "POST",
      key: agentKey,
      json: { action: "mcp.everything.echo", summary: "x", params: { message: "hi" } },
    });
    const otherId = ((await other.json()) as { id: string }).id;
    const notHere = await client.request({ method: "tasks/result", params: { taskId: otherId } }, CallToolResultSchema).catch((e: Error) => e);
    expect((notHere as Error).message).toContain("Task not found");
  });

  it("a task a reviewer denies fails with the reason; a cancelled task cancels its request", async () => {
    const { client } = await connect("fs");
    const path = join(root.dir, "docs", "task-denied.md");
    const denied = await client.request(
      { method: "tools/call", params: { name: "write_file", arguments: { path, content: "no" }, task: {} } },
      CreateTaskResultSchema,
    );
    await approveByApi(denied.task.taskId, "deny", "wrong file");
    const failed = await eventually(async () => {
      const t = await client.request({ method: "tasks/get", params: { taskId: denied.task.taskId } }, GetTaskResultSchema);
      return t.status === "failed" ? t : undefined;
    });
    expect(failed.statusMessage).toContain("Denied by bob@example.com: wrong file");
    const result = (await client.request({ method: "tasks/result", params: { taskId: denied.task.taskId } }, CallToolResultSchema)) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(text(result)).toContain("wrong file");
    expect(() => readFileSync(path)).toThrow();

    const later = await client.request(
      { method: "tools/call", params: { name: "write_file", arguments: { path, content: "later" }, task: {} } },
      CreateTaskResultSchema,
    );
    const cancelled = await client.request({ method: "tasks/cancel", params: { taskId: later.task.taskId } }, CancelTaskResultSchema);
    expect(cancelled.status).toBe("cancelled");
    expect((await request(later.task.taskId)).status).toBe("cancelled");
    const again = await client.request({ method: "tasks/cancel", params: { taskId: later.task.taskId } }, CancelTaskResultSchema).catch((e: Error) => e);
    expect((again as Error).message).toContain("terminal");
  });

  it("a decision made while the gateway restarts is not lost: the retry with the same idempotency key gets the result, once", async () => {
    const path = join(root.dir, "docs", "restart.md");
    const args = { path, content: "survived a restart\n" };
    const meta = { [META_IDEMPOTENCY]: "agent-run-7:write-restart" };
    const first = await connect("fs");
    const waiting = call(first.client, "write_file", args, { meta }).catch((e: Error) => e);
    const req = await pendingFor("mcp.fs.write_file", path);
    await gw.restart();
    // The client's stream broke with the process; it gives up on the call (its own timeout would, later).
    await first.client.close();
    expect(await waiting).toBeInstanceOf(Error);
    expect((await approveByApi(req.id)).status).toBe(201);
    const again = await connect("fs");
    const r = await call(again.client, "write_file", args, { meta });
    expect(r._meta?.[META_REQUEST]).toBe(req.id);
    expect(text(r)).toContain("Successfully wrote");
    expect(readFileSync(path, "utf8")).toBe("survived a restart\n");
    // The approval was used: the same call again does not run the tool a second time.
    writeFileSync(path, "changed since\n");
    const replay = await call(again.client, "write_file", args, { meta });
    expect(replay.isError).toBe(true);
    expect(text(replay)).toContain("has already been sent to the tool once");
    expect(readFileSync(path, "utf8")).toBe("changed since\n");
    // A task outlives the process too: its id is the request's.
    const taskPath = join(root.dir, "docs", "task-restart.md");
    const task = await again.client.request(
      { method: "tools/call", params: { name: "write_file", arguments: { path: taskPath, content: "task after restart\n" }, task: {} } },
      CreateTaskResultSchema,
    );
    await gw.restart();
    expect((await approveByApi(task.task.taskId)).status).toBe(201);
    const third = await connect("fs");
    const done = (await third.client.request({ method: "tasks/result", params: { taskId: task.task.taskId } }, CallToolResultSchema)) as CallToolResult;
    expect(text(done)).toContain("Successfully wrote");
    expect(readFileSync(taskPath, "utf8")).toBe("task after restart\n");
  });
});
