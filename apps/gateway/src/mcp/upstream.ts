import { isStdioServer, type Logger, type McpServerConfig } from "@countersign/core";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { getDefaultEnvironment, StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type {
  ClientCapabilities,
  Implementation,
  JSONRPCRequest,
  Notification,
  Result,
  ServerNotification,
  ServerRequest,
} from "@modelcontextprotocol/sdk/types.js";

export interface UpstreamHooks {
  /** A request from the upstream to the client (sampling, elicitation, roots). */
  onRequest: (request: JSONRPCRequest, extra: RequestHandlerExtra<ServerRequest, ServerNotification>) => Promise<Result>;
  onNotification: (notification: Notification) => Promise<void>;
  /** The connection ended without close() being called: the process exited, or the HTTP session was lost. */
  onLost: (why: string) => void;
}

export interface Upstream {
  client: Client;
  close(): Promise<void>;
}

/**
 * Connects to one upstream MCP server as the downstream client would: with its
 * capabilities and its name, so that the upstream offers it the same features. A stdio
 * server is a child process of the gateway; its stderr goes to the log.
 */
export async function connectUpstream(
  name: string,
  config: McpServerConfig,
  as: { info: Implementation; capabilities: ClientCapabilities },
  hooks: UpstreamHooks,
  log: Logger,
): Promise<Upstream> {
  const client = new Client(as.info, { capabilities: as.capabilities });
  client.fallbackRequestHandler = hooks.onRequest as typeof client.fallbackRequestHandler;
  client.fallbackNotificationHandler = hooks.onNotification;
  let closing = false;
  let transport: StdioClientTransport | StreamableHTTPClientTransport;
  if (isStdioServer(config)) {
    const stdio = new StdioClientTransport({
      command: config.command,
      args: config.args,
      // Only the SDK's safe defaults (PATH, HOME, ...) and what the policy names: never the gateway's own secrets.
      env: { ...getDefaultEnvironment(), ...config.env },
      ...(config.cwd ? { cwd: config.cwd } : {}),
      stderr: "pipe",
    });
    let tail = "";
    stdio.stderr?.on("data", (chunk: Buffer) => {
      const lines = (tail + chunk.toString("utf8")).split("\n");
      tail = lines.pop() ?? "";
      for (const line of lines) if (line.trim()) log.debug(`mcp ${name}: ${line}`, { mcpServer: name });
    });
    transport = stdio;
  } else {
    transport = new StreamableHTTPClientTransport(new URL(config.url), { requestInit: { headers: config.headers } });
  }
  client.onclose = () => {
    if (!closing) hooks.onLost(isStdioServer(config) ? "the server's process exited" : "the connection to the server closed");
  };
  try {
    await client.connect(transport, { timeout: 30_000 });
  } catch (e) {
    closing = true;
    await client.close().catch(() => {});
    throw new Error(describeConnectError(name, config, e), { cause: e });
  }
  return {
    client,
    async close() {
      closing = true;
      await client.close().catch(() => {});
    },
  };
}

function describeConnectError(name: string, config: McpServerConfig, e: unknown): string {
  const why = (e as Error)?.message ?? String(e);
  const code = (e as NodeJS.ErrnoException)?.code;
  if (isStdioServer(config)) {
    if (code === "ENOENT") return `the MCP server "${name}" could not be started: command "${config.command}" was not found (mcp.servers.${name}.command)`;
    return `the MCP server "${name}" (${config.command}) did not start: ${why}`;
  }
  return `the MCP server "${name}" at ${new URL(config.url).origin} could not be reached: ${why}`;
}
