/**
 * Countersign for LangChain.js agents (`createAgent` from `langchain` v1, on LangGraph): a
 * middleware whose `wrapToolCall` asks Countersign about each tool call and either waits
 * for the decision or pauses the graph with `interrupt()`, to be resumed with
 * `new Command({ resume })` once reviewers decide, in this process or another.
 *
 * ```ts
 * const agent = createAgent({ model, tools, middleware: [countersignMiddleware(cs)] });
 * ```
 */
import { ToolMessage } from "@langchain/core/messages";
import { interrupt } from "@langchain/langgraph";
import { createMiddleware } from "langchain";
import type { Countersign } from "../client.js";
import { ReceiptVerificationError } from "../errors.js";
import type { Approval } from "../types.js";
import { approvedArgs, argsOf, decide, type Outcome, settle, submit, type ToolApprovalOptions, type ToolCall } from "./shared.js";

export type { ToolApprovalOptions, ToolCall } from "./shared.js";

export interface CountersignMiddlewareOptions extends ToolApprovalOptions {
  /**
   * `"wait"` (default): hold the tool call until the decision. `"interrupt"`: pause the run
   * with `interrupt()` (the agent needs a checkpointer), so the process can stop and a later
   * one resume it with `new Command({ resume: {} })` once reviewers decided; the resume value
   * is not trusted, the decision is read from Countersign.
   */
  mode?: "wait" | "interrupt";
  /** Only these tools ask for approval; default every tool. */
  tools?: string[];
}

/** What `interrupt()` carries while a call waits for reviewers; it is saved with the checkpoint. */
export interface CountersignInterrupt {
  countersign: { requestId: string; action: string; tool: string; toolCallId: string | undefined; summary: string };
}

// Approvals by tool call id, from the middleware's decision until the tool has run.
const running = new Map<string, Approval>();

/**
 * The approval behind this execution: the verified receipt claims, the compact JWS to pass
 * on to an executor, and the request. Call it with the `config` your tool receives.
 */
export function approvalOf(config: { toolCall?: { id?: string | undefined } | undefined } | undefined): Approval {
  const id = config?.toolCall?.id;
  const approval = id ? running.get(id) : undefined;
  if (!approval) throw new ReceiptVerificationError("missing", "this execution was not approved through Countersign");
  return approval;
}

export function countersignMiddleware(cs: Countersign, options: CountersignMiddlewareOptions = {}) {
  return createMiddleware({
    name: "CountersignMiddleware",
    wrapToolCall: async (request, handler) => {
      const { toolCall } = request;
      if (options.tools && !options.tools.includes(toolCall.name)) return handler(request);
      const call: ToolCall = {
        tool: toolCall.name,
        id: toolCall.id,
        args: argsOf(toolCall.args),
        description: typeof request.tool?.description === "string" ? request.tool.description : undefined,
      };
      const signal = request.runtime?.signal;
      let outcome: Outcome;
      if (options.mode === "interrupt") {
        // On resume LangGraph runs this again from the top: the same call submits the same
        // body with the same idempotency key, so it finds the request made before the pause.
        const req = await submit(cs, call, options, "langchain", signal);
        if (req.status === "pending") {
          const payload: CountersignInterrupt = {
            countersign: { requestId: req.id, action: req.action, tool: call.tool, toolCallId: call.id, summary: req.summary },
          };
          // Throws the first time (the run pauses, the payload is checkpointed); returns once resumed.
          interrupt(payload);
        }
        outcome = await settle(cs, req.id, call, options, signal);
      } else {
        outcome = await decide(cs, call, options, "langchain", signal);
      }
      if (!outcome.approved) {
        // What humanInTheLoopMiddleware returns for a rejection: an error ToolMessage the model reads.
        return new ToolMessage({ content: outcome.reason, name: toolCall.name, tool_call_id: toolCall.id ?? "", status: "error" });
      }
      const args = await approvedArgs<Record<string, unknown>>(outcome.approval, toolCall.args);
      if (toolCall.id) running.set(toolCall.id, outcome.approval);
      try {
        return await handler({ ...request, toolCall: { ...toolCall, args } });
      } finally {
        if (toolCall.id) running.delete(toolCall.id);
      }
    },
  });
}
