import { z } from "zod";
import { parseDuration } from "./duration.ts";

/** A server's name is the middle of its actions (`mcp.<server>.<tool>`) and the last segment of its URL. */
export const MCP_SERVER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Names that hold credentials. Their values must come from the gateway's environment
 * (`${GITHUB_TOKEN}`): a policy file is reviewed, diffed and shared, so a secret written
 * into it leaks.
 */
const SECRET_NAME = /token|secret|password|passwd|credential|api[-_]?key|private[-_]?key|^authorization$|^proxy-authorization$|^cookie$|^x-api-key$/i;
// biome-ignore lint/suspicious/noTemplateCurlyInString: the policy file's own ${NAME} syntax
const SECRET_MESSAGE = 'looks like a credential: reference an environment variable (such as "${GITHUB_TOKEN}") instead of writing the value here';

const Timeout = z
  .union([z.string(), z.number()])
  .refine((v) => parseDuration(v) !== undefined, { message: 'expected a duration such as "30s" or "2m"' })
  .optional();

const Common = {
  /** The environment the server's calls are made in, for rules that match on `environment`. */
  environment: z.string().min(1).max(100).optional(),
  /** How long one upstream call may take before the agent gets an error (default 60s). */
  timeout: Timeout,
};

function secretsByReference(values: Record<string, string>, ctx: z.RefinementCtx, field: string) {
  for (const [name, value] of Object.entries(values)) {
    if (SECRET_NAME.test(name) && !/\$\{[A-Za-z_][A-Za-z0-9_]*\}/.test(value)) ctx.addIssue({ code: "custom", path: [field, name], message: SECRET_MESSAGE });
  }
}

export const McpStdioServer = z
  .strictObject({
    command: z.string().min(1),
    args: z.array(z.string()).default([]),
    env: z.record(z.string().regex(ENV_NAME, "environment variable names use letters, digits and '_'"), z.string()).default({}),
    cwd: z.string().min(1).optional(),
    ...Common,
  })
  .superRefine((s, ctx) => secretsByReference(s.env, ctx, "env"));

export const McpHttpServer = z
  .strictObject({
    url: z.url({ protocol: /^https?$/ }),
    headers: z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, "not a valid HTTP header name"), z.string()).default({}),
    ...Common,
  })
  .superRefine((s, ctx) => secretsByReference(s.headers, ctx, "headers"));

export const McpServerConfig = z.union([McpStdioServer, McpHttpServer]);
export type McpServerConfig = z.infer<typeof McpServerConfig>;
export type McpStdioServer = z.infer<typeof McpStdioServer>;
export type McpHttpServer = z.infer<typeof McpHttpServer>;

export const McpSection = z.strictObject({
  servers: z.record(z.string().regex(MCP_SERVER_NAME, "server names use lower-case letters, digits, '_' and '-'"), McpServerConfig).default({}),
});
export type McpSection = z.infer<typeof McpSection>;

export function isStdioServer(s: McpServerConfig): s is McpStdioServer {
  return "command" in s;
}

/** The upstream call timeout in milliseconds. */
export function mcpTimeoutMs(s: McpServerConfig): number {
  return (s.timeout !== undefined ? (parseDuration(s.timeout) ?? 60) : 60) * 1000;
}

export type Interpolated = { ok: true; value: string } | { ok: false; missing: string };

/** Replaces `${NAME}` with the variable's value; an unset variable is an error, never an empty string. */
export function interpolateEnv(value: string, env: Readonly<Record<string, string | undefined>>): Interpolated {
  let missing: string | undefined;
  const out = value.replace(REFERENCE, (_all, name: string) => {
    const v = env[name];
    if (v === undefined) missing ??= name;
    return v ?? "";
  });
  return missing ? { ok: false, missing } : { ok: true, value: out };
}

/** The action a tool call is asked as, or null when the tool's name cannot be one. */
export function mcpAction(server: string, tool: string): string | null {
  const action = `mcp.${server}.${tool}`;
  return /^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/i.test(action) && action.length <= 200 ? action : null;
}
