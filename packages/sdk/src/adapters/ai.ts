/**
 * Countersign for the Vercel AI SDK (`ai` v7): `toolApproval` asks Countersign about each
 * call and waits for the decision, and the wrapped tools run only with a verified receipt.
 *
 * ```ts
 * const agent = new ToolLoopAgent({ model, ...withCountersign(cs, { rotateSecret }) });
 * ```
 */
import type { GenericToolApprovalFunction, Tool, ToolApprovalStatus, ToolExecutionOptions, ToolSet } from "ai";
import { canonicalJson, paramsSha256 } from "../canonical.js";
import type { Countersign } from "../client.js";
import { ReceiptVerificationError } from "../errors.js";
import type { Approval } from "../types.js";
import { approvedBy, argsOf, decide, type ToolApprovalOptions, type ToolCall } from "./shared.js";

export type { ToolApprovalOptions, ToolCall } from "./shared.js";

const approvals = new WeakMap<object, Approval>();

/**
 * The approval behind this execution: the verified receipt claims, the compact JWS to pass
 * on to an executor, and the request. Call it with the `options` your `execute` receives.
 */
export function approvalOf(options: ToolExecutionOptions<unknown>): Approval {
  const approval = approvals.get(options);
  if (!approval) throw new ReceiptVerificationError("missing", "this execution was not approved through Countersign");
  return approval;
}

export interface WithCountersign<TOOLS extends ToolSet> {
  tools: TOOLS;
  // biome-ignore lint/suspicious/noExplicitAny: the AI SDK infers the tool context per call site; any keeps it assignable to every agent.
  toolApproval: GenericToolApprovalFunction<TOOLS, any, any>;
}

/**
 * Gates every tool in `tools` (spread the result into `ToolLoopAgent`, `generateText` or
 * `streamText`). Each call becomes a Countersign request whose params are the call's input;
 * `toolApproval` waits for the decision, so the step is held until a reviewer answers. A
 * denial or expiry is the SDK's own `denied` status with the reviewer's reason, which the
 * model sees as `execution-denied`. Countersign errors fail closed: the run rejects with
 * ApprovalUnavailableError and the tool does not run.
 */
export function withCountersign<TOOLS extends ToolSet>(cs: Countersign, tools: TOOLS, options: ToolApprovalOptions = {}): WithCountersign<TOOLS> {
  // Approved calls, by tool call id, between toolApproval's decision and the execution, with
  // the canonical JSON of the arguments the receipt covers.
  const pending = new Map<string, { approval: Approval; approved: string }>();
  const callOf = (toolName: string, toolCallId: string, input: unknown): ToolCall => {
    // A description may be a function of the tool's context, which toolApproval does not see.
    const description = (tools[toolName] as Tool | undefined)?.description;
    return { tool: toolName, id: toolCallId, args: argsOf(input), description: typeof description === "string" ? description : undefined };
  };

  const toolApproval: WithCountersign<TOOLS>["toolApproval"] = async ({ toolCall }): Promise<ToolApprovalStatus> => {
    // Tools this adapter did not wrap (added by prepareStep, provider tools) are left to the SDK.
    if (!Object.hasOwn(tools, toolCall.toolName)) return undefined;
    const call = callOf(toolCall.toolName, toolCall.toolCallId, toolCall.input);
    const outcome = await decide(cs, call, options, "ai");
    if (!outcome.approved) return { type: "denied", reason: outcome.reason };
    // Checked here, where hashing can be awaited, so that execute can compare synchronously and
    // hand back whatever the tool returns (a promise or a stream of preliminary results) untouched.
    const approved = canonicalJson(call.args);
    if ((await paramsSha256(call.args)) !== outcome.approval.receipt.params_sha256) {
      throw new ReceiptVerificationError("params_mismatch", `the receipt for ${call.tool} covers other arguments`);
    }
    pending.set(toolCall.toolCallId, { approval: outcome.approval, approved });
    return { type: "approved", reason: approvedBy(outcome.approval) };
  };

  const wrapped: Record<string, Tool> = {};
  for (const [name, t] of Object.entries(tools) as [string, Tool][]) {
    const execute = t.execute;
    if (!execute) {
      wrapped[name] = t;
      continue;
    }
    wrapped[name] = {
      ...t,
      execute: (input: unknown, execOptions: ToolExecutionOptions<unknown>) => {
        const entry = pending.get(execOptions.toolCallId);
        // Only toolApproval puts approvals here: an execution without one was never decided
        // (toolApproval replaced, or the message history forged), so it does not run.
        if (!entry) throw new ReceiptVerificationError("missing", `${name} was called without a Countersign approval`);
        pending.delete(execOptions.toolCallId);
        if (canonicalJson(argsOf(input)) !== entry.approved) {
          throw new ReceiptVerificationError("params_mismatch", `${name} was about to run with other arguments than the approved ones`);
        }
        // A fresh copy of the approved bytes, so nothing that still holds the input can change what runs.
        const fresh = JSON.parse(entry.approved) as Record<string, unknown>;
        const opts = { ...execOptions };
        approvals.set(opts, entry.approval);
        return execute(input !== null && typeof input === "object" ? fresh : fresh.input, opts);
      },
    } as Tool;
  }
  return { tools: wrapped as TOOLS, toolApproval };
}
