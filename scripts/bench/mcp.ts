import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { type Engine, freshPostgres } from "./lib/db.ts";
import { ROOT, startBenchGateway } from "./lib/gateway.ts";
import { log } from "./lib/setup.ts";
import { type LatencySummary, latency, round } from "./lib/stats.ts";

const EVERYTHING = join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");

export interface McpOptions {
  engine: Engine;
  pgUrl: string | undefined;
  calls: number;
  warmup: number;
}

export interface McpResult {
  engine: Engine;
  calls: number;
  /** server-everything's echo over stdio, straight from the SDK client. */
  direct: LatencySummary;
  /** The same call through the gateway's /mcp/everything (Streamable HTTP), the policy allowing it, the upstream over stdio. */
  gateway: LatencySummary;
  addedP50Ms: number;
  addedP99Ms: number;
  /** A ping through the gateway (answered by the gateway itself): the Streamable HTTP round trip and key check, no intake. */
  gatewayPing: LatencySummary;
  /** Calls that did not return the echo. */
  failures: number;
}

async function timeCalls(client: Client, n: number, warmup: number): Promise<{ ms: number[]; failures: number }> {
  const ms: number[] = [];
  let failures = 0;
  for (let i = 0; i < warmup + n; i++) {
    const message = `bench ${i}`;
    const t0 = performance.now();
    const r = await client.request({ method: "tools/call", params: { name: "echo", arguments: { message } } }, CallToolResultSchema);
    const dt = performance.now() - t0;
    const ok = JSON.stringify(r.content).includes(message) && !r.isError;
    if (i >= warmup) {
      ms.push(dt);
      if (!ok) failures++;
    }
  }
  return { ms, failures };
}

/**
 * What the gateway adds to an allowed tool call: the same echo, sequentially, straight to
 * server-everything over stdio and through the gateway (intake, policy, receipt, audit,
 * redemption; then the same upstream over stdio).
 */
export async function benchMcp(o: McpOptions): Promise<McpResult> {
  log(`mcp/${o.engine}: direct stdio baseline, ${o.calls} sequential calls`);
  const direct = new Client({ name: "bench-direct", version: "1" });
  await direct.connect(new StdioClientTransport({ command: process.execPath, args: [EVERYTHING, "stdio"], stderr: "ignore" }));
  const straight = await timeCalls(direct, o.calls, o.warmup);
  await direct.close();

  const fresh = o.engine === "postgres" ? await freshPostgres(o.pgUrl as string) : undefined;
  const gw = await startBenchGateway({
    ...(fresh ? { databaseUrl: fresh.url } : {}),
    policy: `version: 1
mcp:
  servers:
    everything: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(EVERYTHING)}, stdio] }
rules:
  - id: allow-everything
    match: { action: "mcp.everything.*" }
    effect: allow
default: deny
`,
    nodeArgs: (process.env.BENCH_GATEWAY_NODE_ARGS ?? "").split(" ").filter(Boolean),
  });
  try {
    const agent = await gw.createKey({ name: "bench-mcp", owner: "owner@bench.example", scopes: ["requests"] });
    log(`mcp/${o.engine}: through the gateway, ${o.calls} sequential calls`);
    const client = new Client({ name: "bench-gateway", version: "1" });
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp/everything`), {
      requestInit: { headers: { authorization: `Bearer ${agent.key}` } },
    });
    await client.connect(transport);
    const through = await timeCalls(client, o.calls, o.warmup);
    const pings: number[] = [];
    for (let i = 0; i < o.warmup + o.calls; i++) {
      const t0 = performance.now();
      await client.ping();
      if (i >= o.warmup) pings.push(performance.now() - t0);
    }
    await transport.terminateSession().catch(() => {});
    await client.close();
    const d = latency(straight.ms);
    const g = latency(through.ms);
    return {
      engine: o.engine,
      calls: o.calls,
      direct: d,
      gateway: g,
      addedP50Ms: round(g.p50 - d.p50, 2),
      addedP99Ms: round(g.p99 - d.p99, 2),
      gatewayPing: latency(pings),
      failures: straight.failures + through.failures,
    };
  } finally {
    await gw.stop();
    await fresh?.drop();
  }
}
