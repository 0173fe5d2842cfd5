import { CountersignError } from "@countersign/core";
import { cancelRequest, getRequest, type RequestResource, serviceCtx } from "@countersign/services";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import {
  type CallToolRequest,
  type CallToolResult,
  type CreateTaskResult,
  RELATED_TASK_META_KEY,
  ErrorCode as RpcCode,
  type ServerNotification,
  type ServerRequest,
  type Task,
} from "@modelcontextprotocol/sdk/types.js";
import { agentActor } from "../http/auth.ts";
import { JsonRpcError, toJsonRpcError } from "./errors.ts";
import { complete, type GateParts, intake, refusal } from "./gate.ts";

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

const POLL_MS = 1000;

/**
 * MCP Tasks for gated calls: a task-augmented tools/call answers at once with a task
 * whose id is the approval request's id, and the call completes on decision without the
 * agent holding a request open. Because the id is the request's, the task outlives this
 * process: after a restart, tasks/get reads the request, and tasks/result runs an
 * approval that was not yet used (an approval is still used once).
 */
export class GatedTasks {
  /** Calls this process is completing, by request id; their results stay here for tasks/result. */
  private readonly runs = new Map<string, { cancel: AbortController; done?: CallToolResult; result: Promise<CallToolResult> }>();
  private readonly mine: string[] = [];

  constructor(private readonly parts: () => GateParts) {}

  async create(request: CallToolRequest, extra: Extra): Promise<CreateTaskResult> {
    const made = await intake(this.parts(), request, extra);
    this.mine.push(made.resource.id);
    this.start(made.resource, made.replayed, made.name, made.meta);
    return { task: await this.task(made.resource) };
  }

  private start(r: RequestResource, replayed: boolean, name: string, meta?: Record<string, unknown>) {
    if (this.runs.has(r.id)) return;
    const cancel = new AbortController();
    // A detached run: nothing reports progress to (the agent polls), and only tasks/cancel withdraws it.
    const extra = {
      signal: cancel.signal,
      requestId: `task:${r.id}`,
      _meta: {},
      sendNotification: async () => {},
      sendRequest: async () => ({}),
    } as unknown as Extra;
    const run: { cancel: AbortController; done?: CallToolResult; result: Promise<CallToolResult> } = {
      cancel,
      result: complete(this.parts(), { resource: r, replayed, name, meta }, extra)
        .catch((e: unknown): CallToolResult => {
          const err = toJsonRpcError(e);
          return { content: [{ type: "text", text: err.message }], isError: true };
        })
        .then((done) => {
          run.done = done;
          return done;
        }),
    };
    this.runs.set(r.id, run);
  }

  private async read(taskId: string): Promise<RequestResource> {
    const p = this.parts();
    try {
      return await getRequest({ ctx: serviceCtx(p.deps, agentActor(p.key), `mcp_${p.sessionId}`), input: { requestId: taskId } });
    } catch (e) {
      // Another key's request, or no request at all: the same answer, so ids cannot be probed.
      if (e instanceof CountersignError && (e.code === "not_found" || e.code === "invalid_request")) {
        throw new JsonRpcError(RpcCode.InvalidParams, `Task not found: ${taskId}`, { code: "not_found" });
      }
      throw toJsonRpcError(e);
    }
  }

  /**
   * A request this process is not completing (made before a restart, or in another
   * session): tasks/result completes it, waiting first if it is pending. Only a request
   * exactly like the one a tools/call on this server makes is taken: the tool comes from
   * the request's action (never from its metadata, which any key may write through the
   * REST API), and its environment, resource and risk are those this server's calls carry,
   * so the policy decided it as it would have decided the call.
   */
  private adopt(r: RequestResource): boolean {
    if (this.runs.has(r.id)) return true;
    if (r.status !== "approved" && r.status !== "pending") return false;
    const p = this.parts();
    const prefix = `mcp.${p.server}.`;
    if (!r.action.startsWith(prefix) || r.action.length === prefix.length) return false;
    if ((r.environment ?? undefined) !== p.config.environment || r.resource !== null || r.risk !== null) return false;
    this.start(r, true, r.action.slice(prefix.length));
    return true;
  }

  private async task(r: RequestResource): Promise<Task> {
    const run = this.runs.get(r.id);
    const base = { taskId: r.id, ttl: null, createdAt: r.createdAt, lastUpdatedAt: r.updatedAt, pollInterval: POLL_MS };
    if (r.status === "pending") {
      return { ...base, status: "working", statusMessage: `Waiting for approval: ${r.approvals.received} of ${r.approvals.required} (expires ${r.expiresAt})` };
    }
    if (r.status === "cancelled" && run?.cancel.signal.aborted) return { ...base, status: "cancelled", statusMessage: "Cancelled by the agent." };
    if (r.status !== "approved") {
      return { ...base, status: "failed", statusMessage: refusal(r, this.parts().deps.policy()) };
    }
    if (!run) return { ...base, status: "working", statusMessage: `Approved; tasks/result runs the tool (request ${r.id}).` };
    if (!run.done) return { ...base, status: "working", statusMessage: `Approved; the tool is running (request ${r.id}).` };
    return { ...base, status: run.done.isError ? "failed" : "completed", ...(run.done.isError ? { statusMessage: textOf(run.done) } : {}) };
  }

  /** Read-only: it reports, and never starts a run (tasks/result does). */
  async get(taskId: string): Promise<Task> {
    return this.task(await this.read(taskId));
  }

  /** Blocks until the call is decided and, if approved, has run; then its result, as a direct call would have had it. */
  async result(taskId: string): Promise<CallToolResult> {
    const r = await this.read(taskId);
    const adopted = this.adopt(r);
    // Approved or pending but not a call on this server (made through the REST API, or on another server): not a task here.
    if (!adopted && (r.status === "approved" || r.status === "pending")) {
      throw new JsonRpcError(RpcCode.InvalidParams, `Task not found: ${taskId}`, { code: "not_found" });
    }
    const run = this.runs.get(r.id);
    if (!run) {
      // Refused, expired or cancelled, or not a call on this server: the refusal is the result, and nothing runs.
      return { content: [{ type: "text", text: refusal(r, this.parts().deps.policy()) }], isError: true, _meta: { [RELATED_TASK_META_KEY]: { taskId } } };
    }
    const done = await run.result;
    return { ...done, _meta: { ...done._meta, [RELATED_TASK_META_KEY]: { taskId } } };
  }

  async cancel(taskId: string): Promise<Task> {
    const r = await this.read(taskId);
    if (r.status !== "pending") throw new JsonRpcError(RpcCode.InvalidParams, `Cannot cancel a task in terminal status: the request is ${r.status}.`);
    const p = this.parts();
    const run = this.runs.get(r.id);
    run?.cancel.abort();
    const after = await cancelRequest({
      ctx: serviceCtx(p.deps, agentActor(p.key), `mcp_${p.sessionId}`),
      input: { requestId: r.id, body: { reason: "The MCP client cancelled the task." } },
    }).catch((e: unknown) => {
      if (e instanceof CountersignError && e.code === "request_not_pending") return this.read(taskId);
      throw toJsonRpcError(e);
    });
    const t = await this.task(after);
    return after.status === "cancelled" ? { ...t, status: "cancelled", statusMessage: "Cancelled by the agent." } : t;
  }

  /** The tasks this session created, newest first. */
  async list(): Promise<Task[]> {
    const out: Task[] = [];
    for (const id of [...this.mine].reverse()) out.push(await this.get(id));
    return out;
  }

  /** At session end: runs still waiting stop waiting (gate.ts checks `closed`); their requests stay pending, for a later tasks/result. */
  close(): void {
    this.runs.clear();
    this.mine.length = 0;
  }
}

function textOf(r: CallToolResult): string {
  return r.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
}
