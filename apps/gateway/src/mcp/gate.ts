import { createHash } from "node:crypto";
import { CountersignError, type McpServerConfig, mcpAction } from "@countersign/core";
import {
  type AuthenticatedKey,
  cancelRequest,
  createRequest,
  getRequest,
  type RequestResource,
  redeemReceipt,
  type ServiceDeps,
  serviceCtx,
} from "@countersign/services";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { CallToolRequest, CallToolResult, ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import { ErrorCode as RpcCode } from "@modelcontextprotocol/sdk/types.js";
import { agentActor } from "../http/auth.ts";
import type { Waiters } from "../http/waiters.ts";
import { JsonRpcError, toJsonRpcError } from "./errors.ts";

/** `_meta` keys Countersign reads on a call and writes on its result. */
export const META = {
  idempotencyKey: "countersign.dev/idempotencyKey",
  rationale: "countersign.dev/rationale",
  requestId: "countersign.dev/requestId",
  receipt: "countersign.dev/receipt",
  status: "countersign.dev/status",
} as const;

/** The header that names the person an agent acts for (the request's onBehalfOf). */
export const ON_BEHALF_OF_HEADER = "countersign-on-behalf-of";

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

export interface GateParts {
  deps: ServiceDeps;
  waiters: Waiters;
  key: AuthenticatedKey;
  server: string;
  config: McpServerConfig;
  sessionId: string;
  /** How often a waiting call reports progress, which keeps the client's request timeout from firing. */
  progressMs: number;
  /**
   * Called once when a call starts waiting for a decision (the session tells the person at
   * the keyboard where to follow it); the function it returns is called when the wait ends.
   */
  onWait?: (r: RequestResource, extra: Extra) => () => void;
  /** True once the session has ended: a call still waiting stops waiting (its request stays pending). */
  closed: () => boolean;
  /** Counts one intake against the key's rate limit (shared with POST /v1/requests), or throws rate_limited. */
  limitIntake: () => void;
  /** Resolves once the upstream can take a call (it is started again if it crashed); throws if it cannot. */
  ready: () => Promise<void>;
  /** Sends the call upstream, with exactly these arguments. */
  forward: (params: CallToolRequest["params"], extra: Extra) => Promise<CallToolResult>;
}

const PRINTABLE = /^[\x21-\x7e]{1,255}$/;

/**
 * The call's idempotency key: the agent's own (`_meta`), or one derived from the session
 * and the JSON-RPC id, which the MCP spec makes unique within a session. A retry of the
 * same call thus finds the request it made, decided or not, rather than asking again.
 */
export function idempotencyKeyOf(sessionId: string, requestId: string | number, meta: Record<string, unknown> | undefined): string {
  const given = meta?.[META.idempotencyKey];
  if (given !== undefined) {
    if (typeof given !== "string" || !PRINTABLE.test(given)) {
      throw new JsonRpcError(RpcCode.InvalidParams, `_meta["${META.idempotencyKey}"] must be 1-255 printable ASCII characters.`, { code: "invalid_request" });
    }
    return given;
  }
  // The id's type is part of the key (1 and "1" are different requests), and a hashed id is marked as such.
  const kind = typeof requestId === "number" ? "n" : "s";
  const derived = `mcp:${sessionId}:${kind}:${String(requestId)}`;
  return PRINTABLE.test(derived) ? derived : `mcp:${sessionId}:${kind}h:${createHash("sha256").update(String(requestId)).digest("hex")}`;
}

function toolError(text: string, r?: RequestResource): CallToolResult {
  return { content: [{ type: "text", text }], isError: true, ...(r ? { _meta: { [META.requestId]: r.id, [META.status]: r.status } } : {}) };
}

/** Why the call did not run, in words for the model and the person reading its transcript. */
export function refusal(r: RequestResource, policy: ReturnType<ServiceDeps["policy"]>): string {
  const ruleDescription = policy.rules.find((x) => x.id === r.policy.ruleId)?.description;
  if (r.status === "denied" && r.resolution === "policy") {
    const rule = r.policy.ruleId ? `rule "${r.policy.ruleId}"${ruleDescription ? ` (${ruleDescription})` : ""}` : "its default (no rule matched)";
    return `Countersign's policy denies ${r.action}: ${rule}. The tool was not called.`;
  }
  if (r.status === "denied") {
    const no = r.decisions.find((d) => d.decision === "deny");
    return `Denied by ${no?.reviewer ?? "a reviewer"}${no?.reason ? `: ${no.reason}` : " (no reason given)"}. The tool was not called (request ${r.id}).`;
  }
  if (r.status === "expired") return `No one decided in time: the approval request ${r.id} expired at ${r.expiresAt}. The tool was not called.`;
  if (r.status === "cancelled") return `The approval request ${r.id} was cancelled. The tool was not called.`;
  return `The approval request ${r.id} is ${r.status}. The tool was not called.`;
}

/** What an intake made: the request, and whether it already existed (an idempotent retry). */
export interface Intake {
  resource: RequestResource;
  replayed: boolean;
  name: string;
  /** The call's own `_meta`, which goes upstream with it (less Countersign's keys). */
  meta: Record<string, unknown> | undefined;
}

/**
 * A tools/call as an approval request, exactly like POST /v1/requests: the same
 * validation, policy and audit. Returns at once, whatever the policy said.
 */
export async function intake(parts: GateParts, request: CallToolRequest, extra: Extra): Promise<Intake> {
  const { server, config } = parts;
  const { name, arguments: args, _meta: meta } = request.params;
  const action = mcpAction(server, name);
  if (!action) {
    throw new JsonRpcError(RpcCode.InvalidParams, `The tool name "${name}" cannot be gated: Countersign's actions use letters, digits, '_', '-' and '.'.`, {
      code: "invalid_request",
    });
  }
  try {
    parts.limitIntake();
  } catch (e) {
    throw toJsonRpcError(e);
  }
  const header = extra.requestInfo?.headers?.[ON_BEHALF_OF_HEADER];
  const rationale = meta?.[META.rationale];
  const body = {
    action,
    summary: `${name} on MCP server "${server}"`.slice(0, 150),
    params: args ?? {},
    ...(config.environment ? { environment: config.environment } : {}),
    ...(typeof rationale === "string" && rationale.trim() ? { rationale: rationale.slice(0, 2000) } : {}),
    ...(typeof header === "string" ? { onBehalfOf: header } : {}),
    // Nothing session-specific: a retry from a new session (after a restart) is the same body, so its idempotency key finds the same request.
    metadata: { "mcp.server": server, "mcp.tool": name.slice(0, 500) },
  };
  try {
    const created = await createRequest({
      ctx: agentCtx(parts),
      input: { body, idempotencyKey: idempotencyKeyOf(parts.sessionId, extra.requestId, meta), redeemIfAllowed: true },
    });
    return { ...created, name, meta };
  } catch (e) {
    throw toJsonRpcError(inMcpTerms(e));
  }
}

/** Where each field of the request comes from in a tools/call, so a refusal names what the agent sent. */
const FIELD_SOURCES: [RegExp, string][] = [
  [/^params(?=\.|$)/, "arguments"],
  [/^onBehalfOf$/, `the ${ON_BEHALF_OF_HEADER} header`],
  [/^rationale$/, `_meta["${META.rationale}"]`],
  [/^Idempotency-Key$/, `_meta["${META.idempotencyKey}"]`],
];

/** An intake's validation error, reworded for a tools/call: "the request body" is the HTTP API's. */
function inMcpTerms(e: unknown): unknown {
  if (!(e instanceof CountersignError) || e.code !== "invalid_request" || !e.errors?.length) return e;
  const errors = e.errors.map((f) => ({ ...f, path: FIELD_SOURCES.reduce((p, [re, to]) => p.replace(re, to), f.path) }));
  const why = errors.map((f) => `${f.path || "the call"}: ${f.message}`).join("; ");
  return new CountersignError("invalid_request", `Countersign cannot take this tool call: ${why}.`, { errors, cause: e });
}

const agentCtx = (parts: GateParts) => serviceCtx(parts.deps, agentActor(parts.key), `mcp_${parts.sessionId}`);

/**
 * The rest of a gated call: wait for the decision if there is none yet, then either the
 * refusal as a tool error or the tool's own result. The upstream gets the approved
 * request's params, which are the arguments as stored and hashed into the receipt, not
 * the message's own copy. An approval is used once: a call the policy allowed just now
 * was redeemed as it was made, any other approval is redeemed here, just before it runs.
 */
export async function complete(parts: GateParts, made: Intake, extra: Extra): Promise<CallToolResult> {
  let r = made.resource;
  if (r.status === "pending") r = await awaitDecision(parts, r, extra);
  if (r.status !== "approved") {
    return toolError(refusal(r, parts.deps.policy()), r);
  }
  // Not redeemed while the upstream cannot take the call: the approval would be spent on nothing.
  await parts.ready();
  if (made.replayed || r.resolution !== "policy") {
    try {
      await redeemReceipt({ ctx: agentCtx(parts), input: { jti: r.id } });
    } catch (e) {
      if (e instanceof CountersignError && e.code === "receipt_already_redeemed") {
        return toolError(`This call was approved (request ${r.id}) and has already been sent to the tool once; make a new call to run it again.`, r);
      }
      throw toJsonRpcError(e);
    }
  }
  const result = await parts.forward({ name: made.name, arguments: r.params as Record<string, unknown>, ...(made.meta ? { _meta: made.meta } : {}) }, extra);
  return { ...result, _meta: { ...result._meta, [META.requestId]: r.id, [META.receipt]: r.receipt } };
}

/** One tools/call through Countersign, answered when it is decided (and, if approved, run). */
export async function gatedCall(parts: GateParts, request: CallToolRequest, extra: Extra): Promise<CallToolResult> {
  return complete(parts, await intake(parts, request, extra), extra);
}

async function awaitDecision(parts: GateParts, first: RequestResource, extra: Extra): Promise<RequestResource> {
  const ctx = agentCtx(parts);
  const token = extra._meta?.progressToken;
  const id = first.id;
  const waited = parts.onWait?.(first, extra);
  try {
    return await waitLoop(parts, id, extra, token, ctx);
  } finally {
    waited?.();
  }
}

async function waitLoop(
  parts: GateParts,
  id: string,
  extra: Extra,
  token: string | number | undefined,
  ctx: ReturnType<typeof agentCtx>,
): Promise<RequestResource> {
  const { waiters, key } = parts;
  for (let tick = 1; ; tick++) {
    const woken = waiters.register(id, parts.progressMs, extra.signal);
    // Read after registering, so that a decision committed in between is not missed.
    const r = await waiters.read(id, key.id, () => getRequest({ ctx, input: { requestId: id } }));
    if (r.status !== "pending") return r;
    if (token !== undefined) {
      await extra.sendNotification({
        method: "notifications/progress",
        params: {
          progressToken: token,
          progress: tick,
          message: `Waiting for approval: ${r.approvals.received} of ${r.approvals.required} (request ${id}, expires ${r.expiresAt})`,
        },
      });
    }
    await woken;
    if (extra.signal.aborted) {
      // The client gave up on the call: withdraw the request, so that no one approves what will not run.
      await cancelRequest({ ctx, input: { requestId: id, body: { reason: "The MCP client cancelled the tool call." } } }).catch(() => {});
      throw new JsonRpcError(-32000, "The call was cancelled.", { code: "request_not_pending", requestId: id });
    }
    if (parts.closed()) {
      throw new JsonRpcError(-32000, `The MCP session ended; request ${id} stays pending (tasks/result in a new session picks it up).`, {
        code: "not_found",
        requestId: id,
      });
    }
    if (waiters.closing) {
      throw new JsonRpcError(
        -32000,
        `The gateway is restarting. Call again with the same arguments and _meta["${META.idempotencyKey}"] to pick up request ${id}.`,
        {
          code: "service_unavailable",
          requestId: id,
          retryAfter: 1,
        },
      );
    }
  }
}
