import type { CanUseTool, HookCallback, PermissionResult, PreToolUseHookInput, SyncHookJSONOutput } from "@anthropic-ai/claude-agent-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countersignPermissions } from "../../src/adapters/claude-agent.ts";
import { ApprovalUnavailableError, Countersign } from "../../src/index.ts";
import { type AdapterHarness, closedUrl, startHarness } from "./support.ts";

// A Claude Agent SDK run needs the Claude Code binary and a model, so these tests drive the
// two seams the SDK defines, `canUseTool` and a `PreToolUse` hook, as Claude Code calls them
// (typed by the SDK's own declarations), against the real gateway process.

/** What Claude Code passes to canUseTool for one tool use. */
function permissionCall(toolUseID: string, extra: Partial<Parameters<CanUseTool>[2]> = {}): Parameters<CanUseTool>[2] {
  return { signal: new AbortController().signal, toolUseID, requestId: `ctl_${toolUseID}`, ...extra };
}

/** What Claude Code passes to a PreToolUse hook. */
function preToolUse(tool: string, input: Record<string, unknown>, toolUseId: string): PreToolUseHookInput {
  return {
    hook_event_name: "PreToolUse",
    session_id: "s-1",
    transcript_path: "/tmp/t.jsonl",
    cwd: "/tmp",
    tool_name: tool,
    tool_input: input,
    tool_use_id: toolUseId,
  };
}

async function runHook(hook: HookCallback, input: PreToolUseHookInput): Promise<SyncHookJSONOutput> {
  return (await hook(input, input.tool_use_id, { signal: new AbortController().signal })) as SyncHookJSONOutput;
}

describe("@countersign/sdk/claude-agent with the Claude Agent SDK's canUseTool and PreToolUse contract", () => {
  let h: AdapterHarness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("canUseTool, allowed by policy: one intake call, allow with exactly the input, the receipt kept", async () => {
    const perms = countersignPermissions(h.cs);
    const input = { file_path: "/srv/report.txt" };
    const result = await perms.canUseTool("readFile", input, permissionCall("toolu_allow_1", { title: "Claude wants to read report.txt" }));
    expect(result).toEqual({ behavior: "allow", updatedInput: input, toolUseID: "toolu_allow_1" } satisfies PermissionResult);
    const [req, ...more] = await h.requestsFor("tool.readFile");
    expect(more).toEqual([]);
    expect(req).toMatchObject({ status: "approved", resolution: "policy", summary: "readFile: Claude wants to read report.txt" });
    expect(perms.approvalFor("toolu_allow_1")?.receipt.jti).toBe(req?.id);
  });

  it("canUseTool waits until a reviewer approves through the API, with the decision reason as rationale", async () => {
    const perms = countersignPermissions(h.cs, { environment: "production" });
    const input = { command: "kubectl rollout restart deploy/api" };
    const pending = perms.canUseTool("Bash", input, permissionCall("toolu_approve_1", { decisionReason: "Bash is not in allowedTools" }));
    const req = await h.pendingFor("tool.Bash");
    expect(req).toMatchObject({ params: input, rationale: "Bash is not in allowedTools", environment: "production" });
    let settled = false;
    void pending.then(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(settled).toBe(false);
    await h.decide(req.id, "approve");
    expect(await pending).toEqual({ behavior: "allow", updatedInput: input, toolUseID: "toolu_approve_1" });
    const approval = perms.approvalFor("toolu_approve_1");
    await h.cs.verifyReceipt(approval?.receiptJws, { action: "tool.Bash", params: input, requestId: req.id, environment: "production" });
  });

  it("canUseTool denied by a reviewer: deny with the reviewer's reason as the message Claude sees", async () => {
    const perms = countersignPermissions(h.cs);
    const pending = perms.canUseTool("Write", { file_path: "/etc/hosts", content: "x" }, permissionCall("toolu_deny_1"));
    const req = await h.pendingFor("tool.Write");
    await h.decide(req.id, "deny", "not on production hosts");
    const result = await pending;
    expect(result).toMatchObject({ behavior: "deny", toolUseID: "toolu_deny_1" });
    expect((result as { message: string }).message).toContain("not on production hosts");
    expect(perms.approvalFor("toolu_deny_1")).toBeUndefined();
  });

  it("the PreToolUse hook: allow with updatedInput once approved, deny with the rule when the policy denies", async () => {
    const perms = countersignPermissions(h.cs);
    const [hook] = perms.hooks.PreToolUse?.[0]?.hooks ?? [];
    expect(perms.hooks.PreToolUse?.[0]).toMatchObject({ onFailure: "block", timeout: 15 * 60 + 30 });
    const input = { command: "rm -rf /srv/cache" };
    const waiting = runHook(hook as HookCallback, preToolUse("Bash", input, "toolu_hook_1"));
    const req = await h.pendingFor("tool.Bash");
    expect(req.params).toEqual(input);
    await h.decide(req.id, "approve");
    expect(await waiting).toEqual({
      hookSpecificOutput: { hookEventName: "PreToolUse", permissionDecision: "allow", permissionDecisionReason: `Countersign ${req.id}`, updatedInput: input },
    });

    const denied = await runHook(hook as HookCallback, preToolUse("dropTable", { table: "users" }, "toolu_hook_2"));
    expect(denied.hookSpecificOutput).toMatchObject({ hookEventName: "PreToolUse", permissionDecision: "deny" });
    expect(JSON.stringify(denied)).toContain("never-drop");
  });

  it("the hook and then canUseTool for the same tool use ask the reviewers once", async () => {
    const perms = countersignPermissions(h.cs);
    const [hook] = perms.hooks.PreToolUse?.[0]?.hooks ?? [];
    const input = { command: "terraform apply" };
    const viaHook = runHook(hook as HookCallback, preToolUse("Terraform", input, "toolu_both_1"));
    const req = await h.pendingFor("tool.Terraform");
    await h.decide(req.id, "approve");
    await viaHook;
    expect(await perms.canUseTool("Terraform", input, permissionCall("toolu_both_1"))).toMatchObject({ behavior: "allow" });
    expect(await h.requestsFor("tool.Terraform")).toHaveLength(1);
  });

  it("tools outside `tools` are not gated", async () => {
    const perms = countersignPermissions(h.cs, { tools: ["Bash"] });
    expect(await perms.canUseTool("Grep", { pattern: "x" }, permissionCall("toolu_free_1"))).toEqual({
      behavior: "allow",
      updatedInput: { pattern: "x" },
      toolUseID: "toolu_free_1",
    });
    expect(await h.requestsFor("tool.Grep")).toEqual([]);
  });

  it("fails closed when Countersign is unreachable: canUseTool denies and interrupts, the hook throws the typed error", async () => {
    const perms = countersignPermissions(new Countersign({ baseUrl: await closedUrl(), apiKey: h.agentKey, maxRetries: 1, retryDelayMs: 10 }));
    const result = await perms.canUseTool("Bash", { command: "ls" }, permissionCall("toolu_down_1"));
    expect(result).toMatchObject({ behavior: "deny", interrupt: true });
    expect((result as { message: string }).message).toMatch(/Check that the gateway is running/);
    const [hook] = perms.hooks.PreToolUse?.[0]?.hooks ?? [];
    const err = await runHook(hook as HookCallback, preToolUse("Bash", { command: "ls" }, "toolu_down_2")).catch((e) => e);
    expect(err).toBeInstanceOf(ApprovalUnavailableError);
    expect(err).toMatchObject({ reason: "unreachable", tool: "Bash" });

    const bad = countersignPermissions(new Countersign({ baseUrl: h.gw.url, apiKey: "cs_not_a_key", maxRetries: 0 }));
    const refused = await bad.canUseTool("Bash", { command: "ls" }, permissionCall("toolu_bad_1"));
    expect(refused).toMatchObject({ behavior: "deny", interrupt: true });
    expect((refused as { message: string }).message).toMatch(/COUNTERSIGN_API_KEY/);
  });
});
