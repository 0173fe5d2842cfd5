import { type Logger, type McpServerConfig, mcpAction, mcpTimeoutMs, possibleEffects } from "@countersign/core";
import type { AuthenticatedKey, RequestResource, ServiceDeps } from "@countersign/services";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { RequestHandlerExtra, RequestOptions } from "@modelcontextprotocol/sdk/shared/protocol.js";
import {
  CallToolRequestSchema,
  type CallToolResult,
  CallToolResultSchema,
  CancelTaskRequestSchema,
  type ClientCapabilities,
  ElicitResultSchema,
  GetTaskPayloadRequestSchema,
  GetTaskRequestSchema,
  type InitializeRequest,
  type JSONRPCRequest,
  ListTasksRequestSchema,
  ListToolsRequestSchema,
  type ListToolsResult,
  ListToolsResultSchema,
  McpError,
  type Notification,
  type RequestId,
  ResultSchema,
  ErrorCode as RpcCode,
  type ServerCapabilities,
  type ServerNotification,
  type ServerRequest,
  SetLevelRequestSchema,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import type { RateLimits } from "../http/rate-limit.ts";
import type { Waiters } from "../http/waiters.ts";
import { JsonRpcError } from "./errors.ts";
import { SessionEventStore } from "./event-store.ts";
import { type GateParts, gatedCall, META } from "./gate.ts";
import { statusLink } from "./status-page.ts";
import { GatedTasks } from "./tasks.ts";
import { connectUpstream, type Upstream } from "./upstream.ts";

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

export interface SessionParts {
  deps: ServiceDeps;
  waiters: Waiters;
  log: Logger;
  key: AuthenticatedKey;
  server: string;
  /** With every `${NAME}` resolved. */
  config: McpServerConfig;
  progressMs: number;
  limits: RateLimits;
  onClosed: (session: McpSession) => void;
}

export const APPROVAL_NOTE = "[Countersign: a call to this tool waits for a person's approval before it runs.]";
export const MAYBE_APPROVAL_NOTE = "[Countersign: depending on its arguments, a call to this tool may wait for a person's approval before it runs.]";

/**
 * What the agent is shown of the upstream's tools: those the policy always denies are
 * left out, and those that need (or may need) approval say so in their description, so
 * that the model expects the wait.
 */
export function presentTools(tools: Tool[], policy: ReturnType<ServiceDeps["policy"]>, server: string, environment: string | undefined): Tool[] {
  return tools.flatMap((tool) => {
    const action = mcpAction(server, tool.name);
    if (!action) return [];
    const effects = possibleEffects(policy, { action, environment });
    if (effects.size === 1 && effects.has("deny")) return [];
    if (!effects.has("require_approval")) return [asTaskable(tool)];
    const note = effects.size === 1 ? APPROVAL_NOTE : MAYBE_APPROVAL_NOTE;
    return [{ ...asTaskable(tool), description: tool.description ? `${tool.description}\n\n${note}` : note }];
  });
}

/**
 * What the upstream is told the client can do: the agent's own capabilities, except
 * roots. A server that honours roots (server-filesystem does) replaces the directories
 * its operator allowed with the client's, so an agent could widen the sandbox the policy
 * was written for. The upstream keeps the roots its command line gives it.
 */
export function upstreamCapabilities(c: ClientCapabilities): ClientCapabilities {
  const { roots: _roots, ...rest } = c;
  return rest;
}

/**
 * What the agent is told the server can do: the upstream's capabilities, with tasks as
 * the gateway's own. A tools/call may be task-augmented: it then answers at once with a
 * task that completes on decision (tasks.ts). The gateway never asks the upstream for a
 * task, so every task the agent can see is one of these.
 */
export function advertised(c: ServerCapabilities): ServerCapabilities {
  if (!c.tools) return c;
  return { ...c, tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } } };
}

/** Any gated call can be a task (the gateway's own); a tool the upstream only runs as a task keeps saying so. */
function asTaskable(tool: Tool): Tool {
  if (tool.execution?.taskSupport === "required") return tool;
  return { ...tool, execution: { ...tool.execution, taskSupport: "optional" } };
}

/** Countersign's own `_meta` keys are for the gateway; the upstream never sees them. */
function withoutOwnMeta<P extends { _meta?: Record<string, unknown> | undefined }>(params: P): P {
  if (!params._meta) return params;
  const own = new Set<string>(Object.values(META));
  const rest = Object.fromEntries(Object.entries(params._meta).filter(([k]) => !own.has(k)));
  return { ...params, _meta: rest };
}

/**
 * One agent's MCP session with one upstream server: the downstream side speaks
 * Streamable HTTP (sessions, SSE, resumability) through the SDK's transport, the upstream
 * side is a client of the configured server, connected with the agent's own capabilities.
 * Everything but tools/list and tools/call passes through unchanged, both ways.
 */
export class McpSession {
  readonly transport: StreamableHTTPServerTransport;
  readonly keyId: string;
  /** The upstream's name in mcp.servers. */
  readonly upstreamName: string;
  lastUsed = Date.now();
  private readonly server: Server;
  private upstream: Upstream | undefined;
  private reconnecting: Promise<Upstream> | undefined;
  /** Downstream requests in progress, newest last: the upstream's own requests and notifications go out on the newest one's stream. */
  private readonly inFlight: RequestId[] = [];

  /** Nothing in progress (a call waiting hours for approval is in progress). */
  get idle(): boolean {
    return this.inFlight.length === 0;
  }
  private closed = false;
  private readonly tasks = new GatedTasks(() => this.gateParts());

  private constructor(
    private readonly parts: SessionParts,
    private readonly init: InitializeRequest,
    first: Upstream,
    readonly id: string,
  ) {
    this.keyId = parts.key.id;
    this.upstreamName = parts.server;
    this.upstream = first;
    const { client } = first;
    const capabilities = advertised(client.getServerCapabilities() ?? {});
    this.server = new Server(client.getServerVersion() ?? { name: parts.server, version: "0.0.0" }, {
      capabilities,
      ...(client.getInstructions() ? { instructions: client.getInstructions() } : {}),
    });
    this.transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => id,
      eventStore: new SessionEventStore(),
      onsessionclosed: () => void this.close(),
    });
    this.transport.onclose = () => void this.close();
    this.wire(capabilities);
  }

  static async open(parts: SessionParts, init: InitializeRequest, sessionId: string): Promise<McpSession> {
    let session: McpSession | undefined;
    const upstream = await McpSession.connect(parts, init, () => session);
    session = new McpSession(parts, init, upstream, sessionId);
    await session.server.connect(session.transport);
    return session;
  }

  private static connect(parts: SessionParts, init: InitializeRequest, self: () => McpSession | undefined): Promise<Upstream> {
    return connectUpstream(
      parts.server,
      parts.config,
      { info: init.params.clientInfo, capabilities: upstreamCapabilities(init.params.capabilities) },
      {
        onRequest: (request, extra) => {
          const s = self();
          if (!s) throw new JsonRpcError(-32000, "The MCP session is not ready.");
          return s.toClient(request, extra);
        },
        onNotification: async (n) => {
          await self()?.notifyClient(n);
        },
        onLost: (why) => self()?.lost(why),
      },
      parts.log,
    );
  }

  private lost(why: string) {
    this.parts.log.warn(`MCP server "${this.parts.server}" went away (${why}); it is started again for the next call`, {
      mcpServer: this.parts.server,
      session: this.id,
    });
    this.upstream = undefined;
  }

  /** The upstream connection, made again if the last one was lost (a crashed process is restarted). */
  private async client() {
    if (this.closed) throw new JsonRpcError(-32000, "The MCP session is closed.", { code: "not_found" });
    if (this.upstream) return this.upstream.client;
    this.reconnecting ??= McpSession.connect(this.parts, this.init, () => this).finally(() => {
      this.reconnecting = undefined;
    });
    let up: Upstream;
    try {
      up = await this.reconnecting;
    } catch (e) {
      throw new JsonRpcError(-32000, (e as Error).message, { code: "service_unavailable", retryAfter: 5 });
    }
    // The session ended while the upstream started: stop it, or its process outlives the session.
    if (this.closed) {
      await up.close();
      throw new JsonRpcError(-32000, "The MCP session is closed.", { code: "not_found" });
    }
    this.upstream = up;
    return up.client;
  }

  /**
   * Sends a request upstream, relaying its progress to the agent (the SDK gives the
   * upstream a token of its own); a lost connection or a timeout becomes an error the
   * agent can read. Progress is relayed in order and before the result, which would
   * otherwise close the stream it goes out on.
   */
  private async toUpstream<T>(extra: Extra, send: (client: Upstream["client"], options: RequestOptions) => Promise<T>): Promise<T> {
    const client = await this.client();
    const token = extra._meta?.progressToken;
    let relayed = Promise.resolve();
    const options: RequestOptions = {
      signal: extra.signal,
      timeout: mcpTimeoutMs(this.parts.config),
      resetTimeoutOnProgress: true,
      ...(token !== undefined
        ? {
            onprogress: (p) => {
              relayed = relayed
                .then(() => extra.sendNotification({ method: "notifications/progress", params: { ...p, progressToken: token } }))
                .catch(() => {});
            },
          }
        : {}),
    };
    try {
      return await send(client, options);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (code === -32000 && /Connection closed/i.test((e as Error).message)) {
        throw new JsonRpcError(-32603, `The MCP server "${this.parts.server}" stopped during the call; it is started again for the next call.`, {
          code: "upstream_failed",
        });
      }
      if (code === -32001 && /timed out/i.test((e as Error).message)) {
        throw new JsonRpcError(-32001, `The MCP server "${this.parts.server}" did not answer within ${mcpTimeoutMs(this.parts.config) / 1000}s.`, {
          code: "upstream_timeout",
        });
      }
      // The upstream's own error, as it sent it (an McpError's message carries an "MCP error N:" prefix the SDK would add again).
      if (e instanceof McpError) throw new JsonRpcError(e.code, e.message.replace(/^MCP error -?\d+: /, ""), e.data as Record<string, unknown> | undefined);
      throw e;
    } finally {
      await relayed;
    }
  }

  private tracked<T>(extra: Extra, run: () => Promise<T>): Promise<T> {
    this.lastUsed = Date.now();
    this.inFlight.push(extra.requestId);
    return run().finally(() => {
      const at = this.inFlight.lastIndexOf(extra.requestId);
      if (at >= 0) this.inFlight.splice(at, 1);
      this.lastUsed = Date.now();
    });
  }

  private wire(capabilities: ReturnType<Upstream["client"]["getServerCapabilities"]> & object) {
    const { server, parts } = this;
    if (capabilities.tools) {
      server.setRequestHandler(ListToolsRequestSchema, (request, extra) =>
        this.tracked(extra, async () => {
          const page: ListToolsResult = await this.toUpstream(extra, (c, o) =>
            c.request({ method: "tools/list", params: request.params }, ListToolsResultSchema, o),
          );
          return { ...page, tools: presentTools(page.tools, parts.deps.policy(), parts.server, parts.config.environment) };
        }),
      );
      server.setRequestHandler(CallToolRequestSchema, (request, extra) =>
        // The SDK checks the answer: a task for a task-augmented call, a tool result otherwise.
        this.tracked(
          extra,
          (): Promise<never> => (request.params.task ? this.tasks.create(request, extra) : gatedCall(this.gateParts(), request, extra)) as Promise<never>,
        ),
      );
      server.setRequestHandler(GetTaskRequestSchema, (request) => this.tasks.get(request.params.taskId));
      server.setRequestHandler(GetTaskPayloadRequestSchema, (request, extra) => this.tracked(extra, () => this.tasks.result(request.params.taskId)) as never);
      server.setRequestHandler(CancelTaskRequestSchema, (request) => this.tasks.cancel(request.params.taskId));
      server.setRequestHandler(ListTasksRequestSchema, async () => ({ tasks: await this.tasks.list() }));
    }
    // The SDK would answer logging/setLevel itself; the level is the upstream's to apply.
    if (capabilities.logging) {
      server.setRequestHandler(SetLevelRequestSchema, (request, extra) =>
        this.tracked(extra, () => this.toUpstream(extra, (c, o) => c.request({ method: request.method, params: request.params }, ResultSchema, o))),
      );
    }
    server.fallbackRequestHandler = (request: JSONRPCRequest, extra: Extra) => {
      // Tool calls and tasks are the gateway's own; without a tools capability they are refused, never passed on ungated.
      if (/^(tools|tasks)\//.test(request.method)) {
        return Promise.reject(new JsonRpcError(RpcCode.MethodNotFound, `Method not found: ${request.method}`));
      }
      return this.tracked(extra, () =>
        this.toUpstream(extra, (c, o) => c.request({ method: request.method, params: request.params } as never, ResultSchema, o)),
      ) as never;
    };
    // The client's notifications the spec defines are handled here (initialized, cancelled,
    // progress) or not passed on (roots, which the upstream is not told of). Anything else is
    // dropped: an upstream that acted on a made-up notification would act ungated.
    server.fallbackNotificationHandler = async (n: Notification) => {
      parts.log.debug("dropped a notification from the MCP client", { method: n.method, mcpServer: parts.server });
    };
  }

  private gateParts(): GateParts {
    const { parts } = this;
    return {
      deps: parts.deps,
      waiters: parts.waiters,
      key: parts.key,
      server: parts.server,
      config: parts.config,
      sessionId: this.id,
      progressMs: parts.progressMs,
      ready: async () => {
        await this.client();
      },
      onWait: (r, extra) => this.followLink(r, extra),
      limitIntake: () => parts.limits.takeIntake(parts.key.id),
      closed: () => this.closed,
      forward: (params, ex) =>
        this.toUpstream(ex, (c, o) => c.request({ method: "tools/call", params: withoutOwnMeta(params) }, CallToolResultSchema, o) as Promise<CallToolResult>),
    };
  }

  /**
   * Where the agent's client supports URL-mode elicitation, the person at the keyboard is
   * sent a link to the request's status page while the call waits (the elicitation's id is
   * the request's). The call does not wait for their answer: it waits for the decision,
   * and then the client is told the elicitation is complete.
   */
  private followLink(r: RequestResource, extra: Extra): () => void {
    // A task's run has no request of the agent's to relate the elicitation to (the agent polls instead).
    if (String(extra.requestId).startsWith("task:") || !this.server.getClientCapabilities()?.elicitation?.url) return () => {};
    const stop = new AbortController();
    void statusLink(this.parts.deps, r)
      .then((url) =>
        this.server.request(
          {
            method: "elicitation/create",
            params: {
              mode: "url",
              elicitationId: r.id,
              url,
              message: `This call (${r.action}) waits for a person's approval. Open the link to follow request ${r.id}.`,
            },
          },
          ElicitResultSchema,
          { relatedRequestId: extra.requestId, signal: stop.signal, timeout: 2_147_483_647 },
        ),
      )
      .catch(() => {});
    return () => {
      void this.server
        .notification({ method: "notifications/elicitation/complete", params: { elicitationId: r.id } }, { relatedRequestId: extra.requestId })
        .catch(() => {})
        .finally(() => stop.abort());
    };
  }

  /** A request from the upstream (sampling, elicitation, roots), asked of the agent on the stream of its newest call. */
  private toClient(request: JSONRPCRequest, extra: RequestHandlerExtra<never, never>) {
    const related = this.inFlight.at(-1);
    return this.server.request({ method: request.method, params: request.params } as never, ResultSchema, {
      signal: extra.signal,
      ...(related !== undefined ? { relatedRequestId: related } : {}),
    });
  }

  private async notifyClient(n: Notification) {
    if (this.closed) return;
    const related = this.inFlight.at(-1);
    await this.server.notification(n as never, related !== undefined ? { relatedRequestId: related } : undefined).catch((e: Error) => {
      this.parts.log.debug("could not pass a notification to the MCP client", { method: n.method, err: e.message });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Out of the registry at once: the key's session count drops when the agent ends the session, not when the upstream has exited.
    this.parts.onClosed(this);
    this.tasks.close();
    const upstream = this.upstream;
    this.upstream = undefined;
    await upstream?.close();
    await this.server.close().catch(() => {});
  }
}
