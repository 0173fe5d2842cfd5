import { execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { ClientCapabilities } from "@modelcontextprotocol/sdk/types.js";
import { ROOT } from "./gateway.ts";
import { freePort } from "./net.ts";

/** The real upstream servers, from npm, run with this Node. */
export const FILESYSTEM_SERVER = join(ROOT, "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
export const EVERYTHING_SERVER = join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");

export interface McpConnection {
  client: Client;
  transport: StreamableHTTPClientTransport;
  close(): Promise<void>;
}

/** The official SDK client, connected to the gateway's `/mcp/<server>` with an agent key. */
export async function connectMcp(
  gatewayUrl: string,
  server: string,
  key: string,
  o: { capabilities?: ClientCapabilities; headers?: Record<string, string>; name?: string } = {},
): Promise<McpConnection> {
  const client = new Client({ name: o.name ?? "countersign-e2e", version: "1.0.0" }, { capabilities: o.capabilities ?? {} });
  const transport = new StreamableHTTPClientTransport(new URL(`${gatewayUrl}/mcp/${server}`), {
    requestInit: { headers: { authorization: `Bearer ${key}`, ...o.headers } },
  });
  await client.connect(transport);
  return {
    client,
    transport,
    async close() {
      await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

/** server-everything over Streamable HTTP, on a port of its own; resolves once it listens. */
export async function startEverythingHttp(): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [EVERYTHING_SERVER, "streamableHttp"], {
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "ignore", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server-everything did not start")), 30_000);
    child.stderr?.on("data", (c: Buffer) => {
      if (c.toString().includes("listening")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => reject(new Error(`server-everything exited with ${code}`)));
  });
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** The processes the gateway started whose command line contains `needle` (its upstream servers). */
export function childProcessesOf(pid: number, needle: string): number[] {
  let out = "";
  try {
    out = execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(pid)], { encoding: "utf8" });
  } catch {
    return [];
  }
  return out
    .split("\n")
    .filter((l) => l.includes(needle))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}
