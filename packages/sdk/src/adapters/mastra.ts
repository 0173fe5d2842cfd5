/**
 * Countersign for Mastra (`@mastra/core`): tools made with `approvals.createTool` have
 * `requireApproval`, so a run suspends before calling them; Countersign decides, and the run
 * goes on with `approveToolCallGenerate` or `declineToolCallGenerate` (with the reviewer's
 * reason), by waiting (`approvals.generate`) or after a pause (`submit`, then `resolve`
 * with the run id, from a Mastra whose storage holds the run's snapshot).
 *
 * ```ts
 * const approvals = countersign(cs);
 * const rotateSecret = approvals.createTool({ id: "rotate-secret", ... }); // instead of createTool()
 * const output = await approvals.generate(agent, "Rotate the leaked secret");
 * ```
 */
import type { Agent } from "@mastra/core/agent";
import { createTool } from "@mastra/core/tools";
import type { Countersign } from "../client.js";
import { ReceiptVerificationError } from "../errors.js";
import type { Approval, ApprovalRequest } from "../types.js";
import { approvedArgs, argsOf, settle, submit, type ToolApprovalOptions, type ToolCall } from "./shared.js";

export type { ToolApprovalOptions, ToolCall } from "./shared.js";

const approvals = new WeakMap<object, Approval>();

/**
 * The approval behind this execution: the verified receipt claims, the compact JWS to pass
 * on to an executor, and the request. Call it with the `context` your `execute` receives.
 */
export function approvalOf(context: object | undefined): Approval {
  const approval = context ? approvals.get(context) : undefined;
  if (!approval) throw new ReceiptVerificationError("missing", "this execution was not approved through Countersign");
  return approval;
}

/** A suspended tool call, as Mastra reports it in `output.suspendPayload`. */
export interface SuspendedCall {
  runId: string;
  toolCallId: string;
  toolName: string;
  args: unknown;
}

// biome-ignore lint/suspicious/noExplicitAny: the agent's tools and output types are the caller's.
type AnyAgent = Agent<any, any, any>;
/** The options of `agent.generate()` (memory, requestContext, ...), passed through as given. */
type GenerateOptions = Record<string, unknown> & { abortSignal?: AbortSignal };
type Output = Awaited<ReturnType<AnyAgent["generate"]>>;
// generate() is overloaded on structured output; the adapter passes options through untouched.
type Generate = (messages: unknown, options?: GenerateOptions) => Promise<Output>;

export interface CountersignApprovals {
  /** `createTool()` from `@mastra/core/tools`, with `requireApproval` set and `execute` gated by the receipt. */
  createTool: typeof createTool;
  /** The suspended call in an output, if it is one of this adapter's tools waiting for approval. */
  suspended(output: Output): SuspendedCall | undefined;
  /** Submits (or finds again, for the same call) the request for a suspended call, without waiting. */
  submit(call: SuspendedCall, options?: { signal?: AbortSignal }): Promise<ApprovalRequest>;
  /** Waits for the decision on a suspended call, then approves it (the tool runs) or declines it with the reason; resolves with the run's next output. */
  resolve(agent: AnyAgent, call: SuspendedCall, options?: { signal?: AbortSignal }): Promise<Output>;
  /** `agent.generate(...)`, resolving this adapter's suspended calls as they come. */
  generate(agent: AnyAgent, messages: Parameters<AnyAgent["generate"]>[0], options?: GenerateOptions): Promise<Output>;
}

export function countersign(cs: Countersign, options: ToolApprovalOptions = {}): CountersignApprovals {
  // Tool ids this adapter made (with descriptions), and approvals waiting for execute(), by tool call id.
  const gated = new Map<string, string | undefined>();
  const decided = new Map<string, Approval>();

  const callOf = (call: SuspendedCall): ToolCall => ({
    tool: call.toolName,
    id: call.toolCallId,
    args: argsOf(call.args),
    description: gated.get(call.toolName),
  });

  const gatedCreateTool = ((toolOptions: Parameters<typeof createTool>[0]) => {
    const execute = toolOptions.execute as ((input: unknown, context: object) => unknown) | undefined;
    if (!execute) throw new TypeError("countersign: a tool without execute has nothing to gate");
    const made = createTool({
      ...toolOptions,
      requireApproval: true,
      execute: async (input: unknown, context: { agent?: { toolCallId?: string } }) => {
        const callId = context?.agent?.toolCallId;
        const approval = callId ? decided.get(callId) : undefined;
        // Only resolve() records approvals: a call approved any other way (approveToolCall by
        // hand) was never decided by Countersign, so the tool does not run.
        if (!callId || !approval) throw new ReceiptVerificationError("missing", `${toolOptions.id} was approved without Countersign`);
        decided.delete(callId);
        const args = await approvedArgs<unknown>(approval, input);
        const withApproval = { ...context };
        approvals.set(withApproval, approval);
        return execute(args, withApproval);
      },
    } as Parameters<typeof createTool>[0]);
    gated.set(toolOptions.id, toolOptions.description);
    return made;
  }) as typeof createTool;

  const api: CountersignApprovals = {
    createTool: gatedCreateTool,

    suspended(output) {
      const payload = output.suspendPayload as Partial<SuspendedCall> | undefined;
      if (output.finishReason !== "suspended" || !output.runId || !payload?.toolCallId || !payload.toolName) return undefined;
      // Mastra names the call by the key the agent registered the tool under: register gated tools under their id.
      if (!gated.has(payload.toolName)) return undefined;
      return { runId: output.runId, toolCallId: payload.toolCallId, toolName: payload.toolName, args: payload.args };
    },

    submit(call, { signal } = {}) {
      return submit(cs, callOf(call), options, "mastra", signal);
    },

    async resolve(agent, call, { signal } = {}) {
      const toolCall = callOf(call);
      const request = await submit(cs, toolCall, options, "mastra", signal);
      const outcome = await settle(cs, request.id, toolCall, options, signal);
      if (outcome.approved) {
        decided.set(call.toolCallId, outcome.approval);
        return agent.approveToolCallGenerate({ runId: call.runId, toolCallId: call.toolCallId });
      }
      return agent.declineToolCallGenerate({ runId: call.runId, toolCallId: call.toolCallId, reason: outcome.reason });
    },

    async generate(agent, messages, generateOptions) {
      let output = await (agent.generate as Generate).call(agent, messages, generateOptions);
      for (let call = api.suspended(output); call; call = api.suspended(output)) {
        output = await api.resolve(agent, call, generateOptions?.abortSignal ? { signal: generateOptions.abortSignal } : {});
      }
      return output;
    },
  };
  return api;
}
