/**
 * Countersign for the OpenAI Agents SDK (`@openai/agents`): tools made with `approvals.tool`
 * need approval, so a run stops with `result.interruptions`; Countersign decides them, by
 * waiting (`approvals.run`) or across a pause (`submit` before serialising the RunState,
 * `resolve` after restoring it, in this process or another), and the tool runs only with a
 * verified receipt.
 *
 * ```ts
 * const approvals = countersign(cs);
 * const agent = new Agent({ name: "ops", tools: [approvals.tool({ name: "rotate_secret", ... })] });
 * const result = await approvals.run(agent, "Rotate the leaked secret");
 * ```
 */
import {
  type Agent,
  type AgentInputItem,
  tool as agentsTool,
  type FunctionTool,
  type RunResult,
  type RunState,
  type RunToolApprovalItem,
  run,
} from "@openai/agents";
import { canonicalJson, paramsSha256 } from "../canonical.js";
import type { Countersign } from "../client.js";
import { ReceiptVerificationError } from "../errors.js";
import type { Approval, ApprovalRequest } from "../types.js";
import { argsOf, settle, submit, type ToolApprovalOptions, type ToolCall } from "./shared.js";

export type { ToolApprovalOptions, ToolCall } from "./shared.js";

/** Where the request ids live in the run context, so they travel with the serialised RunState. */
export const STATE_KEY = "countersign";

/** What `execute` gets as its third argument (the SDK does not export the type by name). */
export type ToolCallDetails = Parameters<FunctionTool["invoke"]>[2];

const approvals = new WeakMap<object, Approval>();

/**
 * The approval behind this execution: the verified receipt claims, the compact JWS to pass
 * on to an executor, and the request. Call it with the `details` your `execute` receives.
 */
export function approvalOf(details: ToolCallDetails | undefined): Approval {
  const approval = details ? approvals.get(details) : undefined;
  if (!approval) throw new ReceiptVerificationError("missing", "this execution was not approved through Countersign");
  return approval;
}

/** A pending request, as `submit` reports it: which tool call is waiting, and where reviewers find it. */
export interface Submitted {
  callId: string;
  tool: string;
  request: ApprovalRequest;
}

// biome-ignore lint/suspicious/noExplicitAny: the agent's context and output types are the caller's.
type AnyAgent = Agent<any, any>;
// biome-ignore lint/suspicious/noExplicitAny: as above.
type AnyState = RunState<any, AnyAgent>;

export interface CountersignApprovals {
  /** `tool()` from `@openai/agents`, with `needsApproval` set and `execute` gated by the receipt. */
  tool: typeof agentsTool;
  /**
   * Submits a request for each of this adapter's interruptions (once: a call that was asked
   * about before finds its request) and records the request ids in the run context, so they
   * are serialised with the state. Calls the policy settled at once (allow, deny) are
   * approved or rejected on the spot. Resolves with the requests still pending.
   */
  submit(state: AnyState, options?: { signal?: AbortSignal }): Promise<Submitted[]>;
  /**
   * Waits for the decision on each of this adapter's interruptions (submitting those not yet
   * asked about), then approves the state's item, with the verified receipt kept for
   * `execute`, or rejects it with the reviewer's reason for the model. Run the agent again
   * with the state afterwards. Resolves with the interruptions it left alone (other tools').
   */
  resolve(state: AnyState, options?: { signal?: AbortSignal }): Promise<RunToolApprovalItem[]>;
  /** `run(agent, input)`, resolving this adapter's interruptions as they come, until the run finishes or stops for another reason. */
  run<TAgent extends AnyAgent>(
    agent: TAgent,
    input: string | AgentInputItem[] | RunState<unknown, TAgent>,
    options?: { signal?: AbortSignal },
  ): Promise<RunResult<unknown, TAgent>>;
}

export function countersign(cs: Countersign, options: ToolApprovalOptions = {}): CountersignApprovals {
  // The tools this adapter made (name to description), and approvals decided by resolve()
  // waiting for execute(), by call id.
  const gated = new Map<string, string | undefined>();
  const decided = new Map<string, Approval>();

  const callOf = (item: RunToolApprovalItem): ToolCall | undefined => {
    const raw = item.rawItem as { callId?: string; arguments?: string };
    if (!item.name || !gated.has(item.name) || !raw.callId) return undefined;
    let args: unknown;
    try {
      args = JSON.parse(item.arguments ?? "{}");
    } catch {
      // The model sent arguments that are not JSON; the tool would reject them too.
      args = { arguments: item.arguments };
    }
    return { tool: item.name, id: raw.callId, args: argsOf(args), description: gated.get(item.name) };
  };

  /** The run context's record of request ids, created when the context is a plain object. */
  const idsIn = (state: AnyState): Record<string, string> | undefined => {
    const context = state._context.context as Record<string, unknown> | undefined | null;
    if (context === null || typeof context !== "object") return undefined;
    const ids = context[STATE_KEY];
    if (ids && typeof ids === "object") return ids as Record<string, string>;
    const fresh: Record<string, string> = {};
    context[STATE_KEY] = fresh;
    return fresh;
  };

  async function decideItem(state: AnyState, item: RunToolApprovalItem, call: ToolCall, signal?: AbortSignal): Promise<void> {
    const ids = idsIn(state);
    const id = ids?.[call.id as string] ?? (await submit(cs, call, options, "openai_agents", signal)).id;
    if (ids) ids[call.id as string] = id;
    const outcome = await settle(cs, id, call, options, signal);
    if (outcome.approved) {
      decided.set(call.id as string, outcome.approval);
      state.approve(item);
    } else {
      state.reject(item, { message: outcome.reason });
    }
  }

  const gatedTool = ((toolOptions: Parameters<typeof agentsTool>[0]) => {
    const execute = toolOptions.execute as (input: unknown, context?: unknown, details?: ToolCallDetails) => unknown;
    const made: FunctionTool = agentsTool({
      ...toolOptions,
      // Static, so the SDK treats it as a durable manual approval that survives serialisation.
      needsApproval: true,
      execute: async (input: unknown, context?: unknown, details?: ToolCallDetails) => {
        const callId = details?.toolCall?.callId;
        const approval = callId ? decided.get(callId) : undefined;
        // Only resolve() records approvals: an item approved any other way (state.approve by
        // hand, an edited state) was never decided by Countersign, so the tool does not run.
        if (!callId || !approval) throw new ReceiptVerificationError("missing", `${made.name} was approved without Countersign`);
        decided.delete(callId);
        const args = argsOf(input);
        if ((await paramsSha256(args)) !== approval.receipt.params_sha256) {
          throw new ReceiptVerificationError("params_mismatch", `${made.name} was about to run with other arguments than the approved ones`);
        }
        const fresh = JSON.parse(canonicalJson(args)) as Record<string, unknown>;
        const withApproval = { ...details };
        approvals.set(withApproval, approval);
        return execute(input !== null && typeof input === "object" ? fresh : fresh.input, context, withApproval);
      },
    } as Parameters<typeof agentsTool>[0]);
    gated.set(made.name, made.description);
    return made;
  }) as typeof agentsTool;

  return {
    tool: gatedTool,

    async submit(state, { signal } = {}) {
      const pending: Submitted[] = [];
      for (const item of state.getInterruptions()) {
        const call = callOf(item);
        if (!call) continue;
        const ids = idsIn(state);
        const request = await submit(cs, call, options, "openai_agents", signal);
        if (ids) ids[call.id as string] = request.id;
        if (request.status === "pending") pending.push({ callId: call.id as string, tool: call.tool, request });
        // Settled by policy: decide now, so the resumed run need not ask again.
        else await decideItem(state, item, call, signal);
      }
      return pending;
    },

    async resolve(state, { signal } = {}) {
      const others: RunToolApprovalItem[] = [];
      for (const item of state.getInterruptions()) {
        const call = callOf(item);
        if (call) await decideItem(state, item, call, signal);
        else others.push(item);
      }
      return others;
    },

    async run(agent, input, { signal } = {}) {
      let result = await run(agent, input, signal ? { signal } : {});
      while (result.interruptions.length > 0) {
        const others = await this.resolve(result.state, { signal });
        if (others.length > 0) break;
        result = await run(agent, result.state, signal ? { signal } : {});
      }
      return result as RunResult<unknown, typeof agent>;
    },
  };
}
