/**
 * Countersign for the Claude Agent SDK (`@anthropic-ai/claude-agent-sdk`): a `canUseTool`
 * callback and a `PreToolUse` hook that ask Countersign about each tool call and wait for the
 * decision. Claude Code runs the tool itself, so "exactly the approved arguments" is enforced
 * by answering with `updatedInput`: the approved copy of the input.
 *
 * ```ts
 * for await (const message of query({ prompt, options: { ...countersignPermissions(cs) } })) ...
 * ```
 */
import type { CanUseTool, HookCallback, HookCallbackMatcher, HookEvent, PermissionResult, SyncHookJSONOutput } from "@anthropic-ai/claude-agent-sdk";
import { type Countersign, DEFAULT_WAIT_MS } from "../client.js";
import { ApprovalUnavailableError } from "../errors.js";
import type { Approval } from "../types.js";
import { approvedArgs, argsOf, decide, type Outcome, type ToolApprovalOptions, type ToolCall } from "./shared.js";

export type { ToolApprovalOptions, ToolCall } from "./shared.js";

export interface ClaudeAgentOptions extends ToolApprovalOptions {
  /** Only these tools ask for approval (names as Claude Code uses them: `Bash`, `Write`, `mcp__server__tool`); default every tool. */
  tools?: string[];
}

export interface CountersignPermissions {
  /** For `options.canUseTool`: called when Claude Code would ask for permission. */
  canUseTool: CanUseTool;
  /** For `options.hooks`: a PreToolUse hook, called before every tool call, whatever the permission rules say. */
  hooks: Partial<Record<HookEvent, HookCallbackMatcher[]>>;
  /** The verified approval of a tool call, by its tool use id, once approved (to log the receipt or pass it on). */
  approvalFor(toolUseId: string): Approval | undefined;
}

/**
 * Both seams Claude Code offers, sharing one idempotency key per tool use, so a call that
 * passes through the hook and then the permission prompt asks the reviewers once. Spread
 * the result into `query()`'s options, or pick `canUseTool` or `hooks` alone.
 *
 * The hook is the stronger gate: it runs for tools the permission rules would allow without
 * asking (`allowedTools`, `acceptEdits`, `bypassPermissions`), and its matcher is
 * registered with `onFailure: "block"`, so a Countersign error blocks the call.
 */
export function countersignPermissions(cs: Countersign, options: ClaudeAgentOptions = {}): CountersignPermissions {
  const approved = new Map<string, Approval>();
  const gates = (tool: string) => !options.tools || options.tools.includes(tool);

  /** The decision for one tool use, and (approved) the input Claude Code must run it with. */
  async function ask(call: ToolCall, signal: AbortSignal | undefined): Promise<{ outcome: Outcome; input?: Record<string, unknown> }> {
    const outcome = await decide(cs, call, options, "claude_agent", signal);
    if (!outcome.approved) return { outcome };
    const input = await approvedArgs<Record<string, unknown>>(outcome.approval, call.args);
    if (call.id) approved.set(call.id, outcome.approval);
    return { outcome, input };
  }

  const canUseTool: CanUseTool = async (toolName, input, opts): Promise<PermissionResult> => {
    if (!gates(toolName)) return { behavior: "allow", updatedInput: input, toolUseID: opts.toolUseID };
    const call: ToolCall = {
      tool: toolName,
      id: opts.toolUseID,
      args: argsOf(input),
      description: opts.title ?? opts.description,
      reason: opts.decisionReason,
    };
    try {
      const { outcome, input: exact } = await ask(call, opts.signal);
      if (outcome.approved) return { behavior: "allow", updatedInput: exact, toolUseID: opts.toolUseID };
      return { behavior: "deny", message: outcome.reason, toolUseID: opts.toolUseID };
    } catch (e) {
      // A permission callback cannot fail the query; deny and stop the turn, with the fix in the message.
      if (e instanceof ApprovalUnavailableError) return { behavior: "deny", message: e.message, interrupt: true, toolUseID: opts.toolUseID };
      throw e;
    }
  };

  const preToolUse: HookCallback = async (input, toolUseID, { signal }): Promise<SyncHookJSONOutput> => {
    if (input.hook_event_name !== "PreToolUse" || !gates(input.tool_name)) return {};
    const call: ToolCall = { tool: input.tool_name, id: input.tool_use_id ?? toolUseID, args: argsOf(input.tool_input) };
    // Thrown errors (ApprovalUnavailableError) block the call: the matcher says onFailure "block".
    const { outcome, input: exact } = await ask(call, signal);
    return {
      hookSpecificOutput: outcome.approved
        ? {
            hookEventName: "PreToolUse",
            permissionDecision: "allow",
            permissionDecisionReason: `Countersign ${outcome.approval.receipt.jti}`,
            updatedInput: exact,
          }
        : { hookEventName: "PreToolUse", permissionDecision: "deny", permissionDecisionReason: outcome.reason },
    };
  };

  return {
    canUseTool,
    // A hook's own timeout (seconds) must outlast the wait, or Claude Code would give up on it first.
    hooks: { PreToolUse: [{ hooks: [preToolUse], onFailure: "block", timeout: Math.ceil((options.timeoutMs ?? DEFAULT_WAIT_MS) / 1000) + 30 }] },
    approvalFor: (toolUseId) => approved.get(toolUseId),
  };
}
