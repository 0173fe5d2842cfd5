import { canonicalJson, paramsSha256, sha256Hex, toWireParams } from "../canonical.js";
import type { Countersign } from "../client.js";
import {
  ApprovalError,
  ApprovalTimeoutError,
  ApprovalUnavailableError,
  CountersignApiError,
  CountersignNetworkError,
  ReceiptVerificationError,
} from "../errors.js";
import type { Approval, ApprovalRequest, ApprovalRequestInput, Risk } from "../types.js";

/** One tool call, as every adapter sees it, whatever its framework calls the parts. */
export interface ToolCall {
  /** The tool's name, as the model called it. */
  tool: string;
  /** The framework's id for this call, when it has one; it makes the request idempotent. */
  id?: string | undefined;
  /** The call's arguments: the request's params, and exactly what runs once approved. */
  args: Record<string, unknown>;
  /** The tool's description, where the framework has one. */
  description?: string | undefined;
  /** Why the agent makes the call, where the framework says (the Claude Agent SDK's `decisionReason`). */
  reason?: string | undefined;
}

type PerCall<T> = T | ((call: ToolCall) => T);

/** What every adapter accepts: how a tool call becomes a Countersign request, and how long to wait. */
export interface ToolApprovalOptions {
  /**
   * Prepended to the tool name, with a dot, to make the action (`tool` by default, so
   * `rotateSecret` asks for `tool.rotateSecret`). Actions are dotted names; `""` uses tool
   * names as they are, for tools already named like `secret.rotate`.
   */
  actionPrefix?: string;
  /** Maps a call to its action instead of `actionPrefix`. */
  action?: (call: ToolCall) => string;
  /** One line for reviewers; default the tool's name and description. */
  summary?: PerCall<string>;
  /** Why; default the reason the framework gives, if any. */
  rationale?: PerCall<string | undefined>;
  resource?: PerCall<string | undefined>;
  environment?: PerCall<string | undefined>;
  risk?: PerCall<Risk | undefined>;
  /** The human the agent acts for; they can never approve it. */
  onBehalfOf?: PerCall<string | undefined>;
  metadata?: PerCall<Record<string, string> | undefined>;
  /** Seconds each request may stay pending. */
  expiresIn?: number;
  /** How long a blocking wait lasts before the call counts as not approved; default 15 minutes. */
  timeoutMs?: number;
  /** Withdraw a request whose wait timed out, so nobody approves a call no longer wanted. */
  cancelOnTimeout?: boolean;
  /** Called once each request is submitted (to log its id, say). */
  onSubmitted?: (request: ApprovalRequest, call: ToolCall) => void;
}

/** How a call came out: approved with a verified receipt, or not (and why, for the model). */
export type Outcome = { approved: true; approval: Approval } | { approved: false; reason: string; error: ApprovalError };

const pick = <T>(v: PerCall<T> | undefined, call: ToolCall): T | undefined => (typeof v === "function" ? (v as (c: ToolCall) => T)(call) : v);

/** The tool's arguments as a plain JSON object; a tool taking a bare value gets it under `input`. */
export function argsOf(input: unknown): Record<string, unknown> {
  if (input !== null && typeof input === "object" && !Array.isArray(input)) return toWireParams(input);
  return input === undefined ? {} : toWireParams({ input });
}

export function actionOf(call: ToolCall, options: ToolApprovalOptions): string {
  if (options.action) return options.action(call);
  const prefix = options.actionPrefix ?? "tool";
  return prefix ? `${prefix}.${call.tool}` : call.tool;
}

/** The request a call becomes, with an idempotency key derived from the call. */
export async function requestFor(
  call: ToolCall,
  options: ToolApprovalOptions,
  framework: string,
): Promise<{ input: ApprovalRequestInput; idempotencyKey: string | undefined }> {
  const action = actionOf(call, options);
  const summary = pick(options.summary, call) ?? (call.description ? `${call.tool}: ${call.description}` : `Run ${call.tool}`);
  const input: ApprovalRequestInput = { action, summary: summary.slice(0, 150), params: call.args };
  const optional = {
    rationale: pick(options.rationale, call) ?? call.reason,
    resource: pick(options.resource, call),
    environment: pick(options.environment, call),
    risk: pick(options.risk, call),
    onBehalfOf: pick(options.onBehalfOf, call),
    metadata: pick(options.metadata, call),
    expiresIn: options.expiresIn,
  };
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) (input as unknown as Record<string, unknown>)[k] = v;
  // The same call (framework call id, action, arguments) always maps to the same key, so a
  // retried step, a re-run node or a resumed process finds the request made the first time
  // instead of asking the reviewers twice. Without a call id there is nothing stable to derive it from.
  const idempotencyKey = call.id ? `cs_${framework}_${await sha256Hex(canonicalJson([action, call.id, call.args]))}` : undefined;
  return { input, idempotencyKey };
}

/** Countersign errors that leave no decision become ApprovalUnavailableError; approval outcomes and receipt failures pass through. */
export function failClosed(cs: Countersign, call: ToolCall, e: unknown): never {
  if (e instanceof CountersignApiError || e instanceof CountersignNetworkError) throw new ApprovalUnavailableError(call.tool, e, cs.baseUrl);
  throw e;
}

function outcomeOf(cs: Countersign, call: ToolCall, e: unknown): Outcome {
  if (e instanceof ApprovalError) return { approved: false, reason: reasonFor(e), error: e };
  return failClosed(cs, call, e);
}

/** What the model is told when a call was not approved: who said no and why, or that nobody decided. */
export function reasonFor(e: ApprovalError): string {
  if (e instanceof ApprovalTimeoutError) return `Not approved: nobody decided on ${e.requestId} within ${e.timeoutMs} ms, so the tool did not run.`;
  return `Not approved: ${e.message}. The tool did not run.`;
}

/** Blocking: submits the call and waits for its decision (policy `allow` and `deny` settle on the first call). */
export async function decide(cs: Countersign, call: ToolCall, options: ToolApprovalOptions, framework: string, signal?: AbortSignal): Promise<Outcome> {
  const { input, idempotencyKey } = await requestFor(call, options, framework);
  try {
    const approval = await cs.requestApproval(input, {
      idempotencyKey,
      signal,
      wait: { timeoutMs: options.timeoutMs },
      cancelOnTimeout: options.cancelOnTimeout,
      onSubmitted: options.onSubmitted ? (r) => options.onSubmitted?.(r, call) : undefined,
    });
    return { approved: true, approval };
  } catch (e) {
    return outcomeOf(cs, call, e);
  }
}

/** Non-blocking: submits the call (or finds the request the same call made before) and returns it. */
export async function submit(cs: Countersign, call: ToolCall, options: ToolApprovalOptions, framework: string, signal?: AbortSignal): Promise<ApprovalRequest> {
  const { input, idempotencyKey } = await requestFor(call, options, framework);
  try {
    const request = await cs.createRequest(input, { idempotencyKey, signal });
    options.onSubmitted?.(request, call);
    return request;
  } catch (e) {
    return failClosed(cs, call, e);
  }
}

/** Resuming: waits for the decision on a request made earlier (perhaps by another process) and checks its receipt covers this call. */
export async function settle(cs: Countersign, requestId: string, call: ToolCall, options: ToolApprovalOptions, signal?: AbortSignal): Promise<Outcome> {
  const { input } = await requestFor(call, options, "");
  try {
    const approval = await cs.awaitApproval(
      requestId,
      { action: input.action, params: call.args, environment: input.environment ?? null, resource: input.resource ?? null },
      { timeoutMs: options.timeoutMs, cancelOnTimeout: options.cancelOnTimeout, signal },
    );
    return { approved: true, approval };
  } catch (e) {
    return outcomeOf(cs, call, e);
  }
}

/**
 * The arguments a tool may run with: a fresh copy of `args`, after checking once more that
 * they are exactly what the verified receipt covers, so nothing changed them between the
 * decision and the call.
 */
export async function approvedArgs<T>(approval: Approval, args: unknown): Promise<T> {
  const copy = JSON.parse(canonicalJson(argsOf(args)));
  if ((await paramsSha256(copy)) !== approval.receipt.params_sha256) {
    throw new ReceiptVerificationError("params_mismatch", "the arguments about to run differ from the approved ones");
  }
  return (args !== null && typeof args === "object" ? copy : copy.input) as T;
}

/** A short line for the framework's own "approved" record. */
export function approvedBy(approval: Approval): string {
  const who = approval.receipt.approvers.map((a) => `${a.principal} (${a.surface})`).join(", ");
  return who
    ? `Approved by ${who}; receipt ${approval.receipt.jti}`
    : `Allowed by policy${approval.receipt.rule ? ` rule ${approval.receipt.rule}` : ""}; receipt ${approval.receipt.jti}`;
}
