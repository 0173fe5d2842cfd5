import { interpolateEnv, isStdioServer, type McpServerConfig } from "@countersign/core";

// Kept apart from the MCP modules that load the SDK: the gateway checks the policy's mcp
// section at start, and loads the SDK only when the section names a server.

/** A `${NAME}` in the policy's mcp section that names no variable of the gateway's environment. */
export class McpConfigError extends Error {
  override name = "McpConfigError";
}

/** The upstream's settings with every `${NAME}` resolved; throws McpConfigError naming the first unset one. */
export function resolveUpstream(name: string, config: McpServerConfig, env: NodeJS.ProcessEnv): McpServerConfig {
  const resolve = (value: string, where: string) => {
    const r = interpolateEnv(value, env);
    if (!r.ok) throw new McpConfigError(`mcp.servers.${name}.${where} references \${${r.missing}}, which is not set in the gateway's environment`);
    return r.value;
  };
  const map = (values: Record<string, string>, field: string) => Object.fromEntries(Object.entries(values).map(([k, v]) => [k, resolve(v, `${field}.${k}`)]));
  if (isStdioServer(config)) {
    return { ...config, command: resolve(config.command, "command"), args: config.args.map((a, i) => resolve(a, `args[${i}]`)), env: map(config.env, "env") };
  }
  return { ...config, url: resolve(config.url, "url"), headers: map(config.headers, "headers") };
}
