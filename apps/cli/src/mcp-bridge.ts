import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { CliError } from "./errors.ts";

/** The JSON-RPC error the gateway answered with (401, 404, 413...), or one that says what went wrong on the way. */
function errorFor(e: unknown, id: string | number): JSONRPCMessage {
  const text = (e as Error)?.message ?? String(e);
  const body = /(\{.*\})\s*$/s.exec(text)?.[1];
  if (body) {
    try {
      const parsed = JSON.parse(body) as { error?: { code: number; message: string; data?: unknown } };
      if (parsed.error) return { jsonrpc: "2.0", id, error: parsed.error };
    } catch {
      // not the gateway's JSON-RPC error; described below
    }
  }
  const code = e instanceof StreamableHTTPError ? e.code : undefined;
  return { jsonrpc: "2.0", id, error: { code: -32000, message: `The Countersign gateway could not be reached${code ? ` (HTTP ${code})` : ""}: ${text}` } };
}

/**
 * `countersign mcp stdio --server <name>`: for MCP clients that only start stdio servers.
 * Messages go unchanged between this process's stdin/stdout and the gateway's
 * `/mcp/<name>` (Streamable HTTP), so the client gets exactly what an HTTP client would.
 * Resolves when the client closes stdin.
 */
export async function runStdioBridge(o: { server: string; url?: string }): Promise<void> {
  const key = process.env.COUNTERSIGN_API_KEY;
  if (!key) throw new CliError("COUNTERSIGN_API_KEY is not set: set it to an agent API key with the requests scope (countersign keys create --scope requests)");
  const base = o.url ?? process.env.COUNTERSIGN_URL ?? "http://localhost:8080";
  let endpoint: URL;
  try {
    endpoint = new URL(`${base.replace(/\/$/, "")}/mcp/${encodeURIComponent(o.server)}`);
  } catch {
    throw new CliError(`--url "${base}" is not a URL, such as http://localhost:8080`);
  }
  if (!/^https?:$/.test(endpoint.protocol)) throw new CliError(`--url "${base}" must be an http or https URL`);
  const http = new StreamableHTTPClientTransport(endpoint, { requestInit: { headers: { authorization: `Bearer ${key}` } } });
  const stdio = new StdioServerTransport();
  // The initialize request's id: only its answer fixes the protocol version (a tool's result is the upstream's to word).
  let initializeId: string | number | undefined;
  stdio.onmessage = (m) => {
    if ("method" in m && m.method === "initialize" && "id" in m) initializeId = m.id;
    http.send(m).catch(async (e: unknown) => {
      if ("id" in m && "method" in m) await stdio.send(errorFor(e, m.id)).catch(() => {});
      else process.stderr.write(`countersign mcp stdio: ${(e as Error).message}\n`);
    });
  };
  http.onmessage = (m) => {
    // The gateway's answer to initialize fixes the protocol version every later HTTP request must name.
    const result = "result" in m && "id" in m && m.id === initializeId ? (m.result as { protocolVersion?: unknown }) : undefined;
    if (typeof result?.protocolVersion === "string") http.setProtocolVersion(result.protocolVersion);
    void stdio.send(m).catch(() => {});
  };
  http.onerror = (e) => process.stderr.write(`countersign mcp stdio: ${e.message}\n`);
  await http.start();
  await stdio.start();
  await new Promise<void>((done) => {
    stdio.onclose = () => done();
    process.stdin.once("end", () => done());
  });
  // The session ends with the client: the gateway stops its upstream for it.
  await http.terminateSession().catch(() => {});
  await http.close().catch(() => {});
  await stdio.close().catch(() => {});
}
