import { canonicalJson, paramsSha256, toWireParams } from "./canonical.js";
import {
  type ApiErrorCode,
  ApprovalCancelledError,
  ApprovalDeniedError,
  ApprovalExpiredError,
  ApprovalTimeoutError,
  CountersignApiError,
  CountersignNetworkError,
  type Problem,
  ReceiptVerificationError,
} from "./errors.js";
import { verifyReceipt } from "./receipt.js";
import type {
  Approval,
  ApprovalRequest,
  ApprovalRequestInput,
  Evidence,
  JsonWebKeySet,
  ReceiptClaims,
  ReceiptRedemption,
  RequestList,
  RequestStatus,
  Risk,
} from "./types.js";

export const SDK_VERSION = "0.1.0";

/** How long `requestApproval` waits for a decision unless told otherwise. */
export const DEFAULT_WAIT_MS = 15 * 60_000;
/** The gateway holds a long-poll for at most this long. */
const MAX_POLL_SECONDS = 60;
/** Statuses worth retrying with the same idempotency key: the call may not have happened, or is safe to repeat. */
const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

export interface CountersignOptions {
  /** The gateway, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string | URL;
  /** An API key (`cs_...`): scope `requests` for agents, `decisions` for reviewers. */
  apiKey: string;
  /** A fetch implementation; defaults to the global one. */
  fetch?: typeof globalThis.fetch;
  /** Retries after a network failure or a 408/429/5xx, with backoff; default 4. */
  maxRetries?: number;
  /** First backoff delay in ms (doubles, with jitter, capped at 5 s); default 250. */
  retryDelayMs?: number;
  /** Timeout of one HTTP call in ms (long-polls add their wait); default 30 000. */
  timeoutMs?: number;
  /** Pin the receipt keys instead of fetching `/.well-known/jwks.json`. */
  jwks?: JsonWebKeySet;
  /** Require receipts to carry this `iss` (the gateway's COUNTERSIGN_PUBLIC_URL). */
  issuer?: string;
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
}

export interface CreateOptions extends CallOptions {
  /** Makes the submission safe to repeat; one is generated when absent. 1-255 printable ASCII characters. */
  idempotencyKey?: string | undefined;
}

export interface WaitOptions extends CallOptions {
  /** Stop waiting after this long (the request stays pending on the gateway); default 15 minutes. */
  timeoutMs?: number | undefined;
}

export interface RequestApprovalOptions extends CreateOptions {
  /** `false`: submit and return at once. `true` (default) or `{ timeoutMs }`: wait for the decision. */
  wait?: boolean | { timeoutMs?: number | undefined } | undefined;
  /** Withdraw the request when the wait times out, so nobody approves something no longer wanted. */
  cancelOnTimeout?: boolean | undefined;
  /** Called once the request is submitted (for example, to log its id while waiting). */
  onSubmitted?: ((request: ApprovalRequest) => void) | undefined;
}

/** What `cs.verifyReceipt` checks a receipt against; see VerifyReceiptOptions. */
export interface ExpectedReceipt extends CallOptions {
  action: string;
  params: unknown;
  requestId?: string;
  /** The receipt's `environment` must equal it; `null`: the request named none. Omitted: not checked. */
  environment?: string | null;
  /** The receipt's `resource` must equal it; `null`: the request named none. Omitted: not checked. */
  resource?: string | null;
  /** Redeem the single-use receipt with this client's key once it verifies; a second redemption throws `already_redeemed`. */
  redeem?: boolean;
}

/** What a settled request's receipt must cover: the submission as the agent made it. */
interface Submitted {
  action: string;
  params?: object;
  environment?: string | null | undefined;
  resource?: string | null | undefined;
}

export interface ListRequestsQuery extends CallOptions {
  status?: RequestStatus;
  action?: string;
  limit?: number;
  cursor?: string;
}

type PerCall<T, P> = T | ((params: P) => T);

export interface GuardOptions<P> {
  /** One line for reviewers; default "Run <action>". */
  summary?: PerCall<string, P>;
  resource?: PerCall<string | undefined, P>;
  environment?: PerCall<string | undefined, P>;
  risk?: PerCall<Risk | undefined, P>;
  rationale?: PerCall<string | undefined, P>;
  onBehalfOf?: PerCall<string | undefined, P>;
  metadata?: PerCall<Record<string, string> | undefined, P>;
  expiresIn?: number;
  callbackUrl?: string;
  /** How long each call waits for a decision; default 15 minutes. */
  timeoutMs?: number;
  cancelOnTimeout?: boolean;
  /** Called once each call's request is submitted, before waiting. */
  onSubmitted?: (request: ApprovalRequest) => void;
}

export type GuardedFunction<P, R> = (params: P, call?: CreateOptions) => Promise<Awaited<R>>;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

function combine(signals: (AbortSignal | undefined)[]): AbortSignal | undefined {
  const list = signals.filter((s): s is AbortSignal => s !== undefined);
  if (list.length <= 1) return list[0];
  if (typeof AbortSignal.any === "function") return AbortSignal.any(list);
  // Node before 20.3 has no AbortSignal.any.
  const c = new AbortController();
  for (const s of list) {
    if (s.aborted) {
      c.abort(s.reason);
      break;
    }
    s.addEventListener("abort", () => c.abort(s.reason), { once: true });
  }
  return c.signal;
}

function newIdempotencyKey(): string {
  return `cs_sdk_${globalThis.crypto.randomUUID()}`;
}

function retryAfterSeconds(res: Response): number | undefined {
  const v = res.headers.get("retry-after");
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v);
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, (t - Date.now()) / 1000);
}

async function toApiError(res: Response): Promise<CountersignApiError> {
  const text = await res.text().catch(() => "");
  const retryAfter = retryAfterSeconds(res);
  const requestId = res.headers.get("x-request-id") ?? undefined;
  let p: Partial<Problem> | undefined;
  try {
    p = JSON.parse(text) as Partial<Problem>;
  } catch {
    p = undefined;
  }
  if (p && typeof p.code === "string" && typeof p.status === "number") {
    return new CountersignApiError({
      status: res.status,
      code: p.code as ApiErrorCode,
      title: p.title ?? res.statusText,
      detail: p.detail ?? p.title ?? res.statusText,
      requestId: p.requestId ?? requestId,
      errors: Array.isArray(p.errors) ? p.errors : undefined,
      retryAfter,
    });
  }
  return new CountersignApiError({
    status: res.status,
    code: "unexpected_response",
    title: res.statusText,
    detail: `HTTP ${res.status} without a problem+json body${text ? `: ${text.slice(0, 200)}` : ""}`,
    requestId,
    retryAfter,
  });
}

function isRetryable(e: unknown): boolean {
  return e instanceof CountersignNetworkError || (e instanceof CountersignApiError && RETRYABLE_STATUS.has(e.status));
}

/**
 * The Countersign client. Ask before acting:
 *
 * ```ts
 * const cs = new Countersign({ baseUrl: "http://127.0.0.1:8080", apiKey: agentKey }); // the agent key, from your secret store
 * const { receipt } = await cs.requestApproval({ action: "db.export", summary: "Export customers", params: { table: "customers" } });
 * ```
 */
export class Countersign {
  readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly fetchImpl: typeof globalThis.fetch | undefined;
  private readonly maxRetries: number;
  private readonly retryDelayMs: number;
  private readonly timeoutMs: number;
  private readonly jwks: JsonWebKeySet | undefined;
  private readonly issuer: string | undefined;

  constructor(options: CountersignOptions) {
    if (!options?.baseUrl) throw new TypeError("Countersign: baseUrl is required");
    if (!options.apiKey) throw new TypeError("Countersign: apiKey is required");
    this.baseUrl = String(options.baseUrl).replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.fetchImpl = options.fetch;
    this.maxRetries = options.maxRetries ?? 4;
    this.retryDelayMs = options.retryDelayMs ?? 250;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.jwks = options.jwks;
    this.issuer = options.issuer;
  }

  /** Where the gateway publishes its receipt keys. */
  get jwksUrl(): string {
    return `${this.baseUrl}/.well-known/jwks.json`;
  }

  private backoff(attempt: number): number {
    const base = Math.min(5_000, this.retryDelayMs * 2 ** attempt);
    return Math.round(base * (0.5 + Math.random() * 0.5));
  }

  /** One HTTP call; network failures become CountersignNetworkError, error statuses CountersignApiError. */
  private async once<T>(
    method: string,
    path: string,
    init: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal | undefined; timeoutMs?: number },
  ): Promise<T> {
    const url = `${this.baseUrl}${path}`;
    const headers: Record<string, string> = {
      accept: "application/json",
      authorization: `Bearer ${this.apiKey}`,
      "user-agent": `countersign-sdk/${SDK_VERSION}`,
      ...init.headers,
    };
    if (init.body !== undefined) headers["content-type"] = "application/json";
    const signal = combine([init.signal, AbortSignal.timeout(init.timeoutMs ?? this.timeoutMs)]);
    let res: Response;
    let text: string;
    try {
      res = await (this.fetchImpl ?? globalThis.fetch)(url, {
        method,
        headers,
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
        ...(signal ? { signal } : {}),
      });
      if (!res.ok) throw await toApiError(res);
      text = await res.text();
    } catch (e) {
      if (init.signal?.aborted) throw init.signal.reason;
      if (e instanceof CountersignApiError) throw e;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (e as Error).message;
      throw new CountersignNetworkError(`${method} ${url} failed: ${why}`, { cause: e });
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CountersignApiError({
        status: res.status,
        code: "unexpected_response",
        title: res.statusText,
        detail: "the response is not JSON",
        requestId: res.headers.get("x-request-id") ?? undefined,
      });
    }
  }

  /** A call that is safe to repeat (reads, or writes carrying an idempotency key), retried with backoff. */
  private async call<T>(
    method: string,
    path: string,
    init: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal | undefined } = {},
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once<T>(method, path, init);
      } catch (e) {
        if (!isRetryable(e) || attempt >= this.maxRetries) throw e;
        const hinted = e instanceof CountersignApiError && e.retryAfter !== undefined ? e.retryAfter * 1000 : 0;
        await sleep(Math.max(hinted, this.backoff(attempt)), init.signal);
      }
    }
  }

  /**
   * Submits a request without waiting. Always sends an Idempotency-Key (generated when
   * absent), so a retry after a network failure returns the same request instead of a second one.
   */
  async createRequest(input: ApprovalRequestInput, options: CreateOptions = {}): Promise<ApprovalRequest> {
    const body = { ...input, params: toWireParams(input.params) };
    const key = options.idempotencyKey ?? newIdempotencyKey();
    return this.call<ApprovalRequest>("POST", "/v1/requests", { body, headers: { "idempotency-key": key }, signal: options.signal });
  }

  /** Reads a request; with `waitSeconds` (1-60) the gateway holds the call until it changes state. */
  async getRequest(id: string, options: CallOptions & { waitSeconds?: number } = {}): Promise<ApprovalRequest> {
    const path = `/v1/requests/${encodeURIComponent(id)}${options.waitSeconds ? `?wait=${options.waitSeconds}` : ""}`;
    if (!options.waitSeconds) return this.call<ApprovalRequest>("GET", path, { signal: options.signal });
    return this.once<ApprovalRequest>("GET", path, { signal: options.signal, timeoutMs: options.waitSeconds * 1000 + this.timeoutMs });
  }

  /**
   * A request's audit evidence (`GET /v1/requests/:id/evidence`): its events with inclusion
   * proofs into the signed checkpoints that seal them. Check it with `verifyEvidence`.
   */
  async evidence(id: string, options: CallOptions = {}): Promise<Evidence> {
    return this.call<Evidence>("GET", `/v1/requests/${encodeURIComponent(id)}/evidence`, { signal: options.signal });
  }

  /** Lists requests (keys with the `decisions` or `admin` scope), newest first. */
  async listRequests(query: ListRequestsQuery = {}): Promise<RequestList> {
    const qs = new URLSearchParams();
    if (query.status) qs.set("status", query.status);
    if (query.action) qs.set("action", query.action);
    if (query.limit !== undefined) qs.set("limit", String(query.limit));
    if (query.cursor) qs.set("cursor", query.cursor);
    const s = qs.toString();
    return this.call<RequestList>("GET", `/v1/requests${s ? `?${s}` : ""}`, { signal: query.signal });
  }

  /**
   * Long-polls until the request leaves `pending`, and resolves with it in its terminal
   * state (whatever that is). Network failures and gateway restarts are retried until the
   * timeout; then ApprovalTimeoutError.
   */
  async waitForDecision(id: string, options: WaitOptions = {}): Promise<ApprovalRequest> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_MS;
    const deadline = Date.now() + timeoutMs;
    let last: ApprovalRequest | undefined;
    for (let failures = 0; ; ) {
      const left = deadline - Date.now();
      if (left <= 0) throw new ApprovalTimeoutError(id, timeoutMs, last);
      try {
        last = await this.getRequest(id, { waitSeconds: Math.min(MAX_POLL_SECONDS, Math.ceil(left / 1000)), signal: options.signal });
        failures = 0;
      } catch (e) {
        if (!isRetryable(e)) throw e;
        const hinted = e instanceof CountersignApiError && e.retryAfter !== undefined ? e.retryAfter * 1000 : 0;
        await sleep(Math.min(Math.max(0, deadline - Date.now()), Math.max(hinted, this.backoff(failures++))), options.signal);
        continue;
      }
      if (last.status !== "pending") return last;
    }
  }

  /**
   * Waits for a request made earlier (for example after an ApprovalTimeoutError) and
   * settles it as `requestApproval` does: the verified approval, or a typed error.
   */
  async awaitApproval(id: string, expected: Submitted, options: WaitOptions & { cancelOnTimeout?: boolean | undefined } = {}): Promise<Approval> {
    let final: ApprovalRequest;
    try {
      final = await this.waitForDecision(id, options);
    } catch (e) {
      if (!(e instanceof ApprovalTimeoutError) || !options.cancelOnTimeout) throw e;
      try {
        await this.cancel(id, { reason: "the requester stopped waiting" }, options);
      } catch (ce) {
        // Decided in the meantime: settle what actually happened rather than report a timeout.
        if (!(ce instanceof CountersignApiError && ce.code === "request_not_pending")) throw e;
        return this.settle(await this.getRequest(id, options), expected);
      }
      throw e;
    }
    return this.settle(final, expected);
  }

  /**
   * Asks for approval and, by default, waits for the decision. Resolves with the approved
   * request and its verified receipt; throws ApprovalDeniedError (with the reviewers'
   * reasons), ApprovalExpiredError, ApprovalCancelledError or ApprovalTimeoutError.
   * With `wait: false` it returns the submitted request at once.
   */
  requestApproval(input: ApprovalRequestInput, options: RequestApprovalOptions & { wait: false }): Promise<ApprovalRequest>;
  requestApproval(
    input: ApprovalRequestInput,
    options?: RequestApprovalOptions & { wait?: true | { timeoutMs?: number | undefined } | undefined },
  ): Promise<Approval>;
  requestApproval(input: ApprovalRequestInput, options?: RequestApprovalOptions): Promise<Approval | ApprovalRequest>;
  async requestApproval(input: ApprovalRequestInput, options: RequestApprovalOptions = {}): Promise<Approval | ApprovalRequest> {
    const params = toWireParams(input.params);
    const created = await this.createRequest({ ...input, params }, options);
    options.onSubmitted?.(created);
    if (options.wait === false) return created;
    // The receipt must cover what was submitted, including where (an absent environment or resource is null in the receipt).
    const submitted: Submitted = { action: input.action, params, environment: input.environment ?? null, resource: input.resource ?? null };
    if (created.status !== "pending") return this.settle(created, submitted);
    const timeoutMs = typeof options.wait === "object" ? options.wait.timeoutMs : undefined;
    return this.awaitApproval(created.id, submitted, { timeoutMs, signal: options.signal, cancelOnTimeout: options.cancelOnTimeout });
  }

  /** Turns a terminal request into an Approval (receipt verified) or the matching typed error. */
  private async settle(r: ApprovalRequest, expected: Submitted): Promise<Approval> {
    switch (r.status) {
      case "approved": {
        const receipt = await this.verifyReceipt(r.receipt, {
          action: expected.action,
          params: expected.params ?? {},
          requestId: r.id,
          ...(expected.environment !== undefined ? { environment: expected.environment } : {}),
          ...(expected.resource !== undefined ? { resource: expected.resource } : {}),
        });
        return { request: r, receipt, receiptJws: r.receipt as string };
      }
      case "denied":
        throw new ApprovalDeniedError(r);
      case "expired":
        throw new ApprovalExpiredError(r);
      case "cancelled":
        throw new ApprovalCancelledError(r);
      default:
        throw new ApprovalTimeoutError(r.id, 0, r);
    }
  }

  /**
   * Verifies a receipt against this gateway's keys (or the pinned `jwks`). With
   * `redeem: true` it then redeems the single-use receipt with this client's key.
   */
  verifyReceipt(jws: string | null | undefined, expected: ExpectedReceipt): Promise<ReceiptClaims> {
    const { redeem, signal, ...checks } = expected;
    return verifyReceipt(jws, {
      ...(this.jwks ? { jwks: this.jwks } : { jwksUrl: this.jwksUrl }),
      ...(this.issuer ? { issuer: this.issuer } : {}),
      ...checks,
      ...(redeem ? { redeem: { client: this, signal } } : {}),
    });
  }

  /**
   * Uses up an approved request's receipt (`POST /v1/receipts/:jti/redeem`), with the agent
   * key that made the request. Resolves the first time; afterwards it throws
   * CountersignApiError `receipt_already_redeemed` (409). Another key's receipt is `not_found`,
   * one whose request is not approved `request_not_approved`. Verify the receipt first
   * (`verifyReceipt(jws, { ..., redeem: true })` does both).
   */
  async redeemReceipt(jti: string, options: CallOptions = {}): Promise<ReceiptRedemption> {
    // Not retried: if an answer was lost, a retry could only report the receipt as already redeemed.
    return this.once<ReceiptRedemption>("POST", `/v1/receipts/${encodeURIComponent(jti)}/redeem`, { signal: options.signal });
  }

  /** Records a reviewer's decision (a key with the `decisions` scope, acting as its owner). */
  async decide(id: string, decision: { decision: "approve" | "deny"; reason?: string }, options: CallOptions = {}): Promise<ApprovalRequest> {
    // Not retried: a vote that may have been recorded must not be cast again blindly.
    return this.once<ApprovalRequest>("POST", `/v1/requests/${encodeURIComponent(id)}/decisions`, { body: decision, signal: options.signal });
  }

  /** Withdraws a pending request (the key that made it, or an admin key). */
  async cancel(id: string, body: { reason?: string } = {}, options: CallOptions = {}): Promise<ApprovalRequest> {
    return this.once<ApprovalRequest>("POST", `/v1/requests/${encodeURIComponent(id)}/cancel`, { body, signal: options.signal });
  }

  /**
   * Wraps an async function so that every call first asks for approval, with the call's
   * argument as `params`, and runs `fn` only once approved, and only with the exact
   * params the verified receipt covers (a fresh copy, re-hashed against `params_sha256`).
   */
  guard<P extends object, R>(action: string, fn: (params: P, approval: Approval) => R | Promise<R>, options: GuardOptions<P> = {}): GuardedFunction<P, R> {
    return async (params: P, call: CreateOptions = {}): Promise<Awaited<R>> => {
      const snapshot = toWireParams(params);
      const pick = <T>(v: PerCall<T, P> | undefined): T | undefined => (typeof v === "function" ? (v as (p: P) => T)(snapshot as P) : v);
      const input: ApprovalRequestInput = { action, summary: (pick(options.summary) ?? `Run ${action}`).slice(0, 150), params: snapshot };
      const optional = {
        resource: pick(options.resource),
        environment: pick(options.environment),
        risk: pick(options.risk),
        rationale: pick(options.rationale),
        onBehalfOf: pick(options.onBehalfOf),
        metadata: pick(options.metadata),
        expiresIn: options.expiresIn,
        callbackUrl: options.callbackUrl,
      };
      for (const [k, v] of Object.entries(optional)) if (v !== undefined) (input as unknown as Record<string, unknown>)[k] = v;

      const approval = await this.requestApproval(input, {
        wait: { timeoutMs: options.timeoutMs },
        idempotencyKey: call.idempotencyKey,
        signal: call.signal,
        cancelOnTimeout: options.cancelOnTimeout,
        onSubmitted: options.onSubmitted,
      });
      // Run with a fresh copy of exactly the approved bytes, so nothing the caller still
      // holds (and might mutate) reaches the action, and check it once more against the receipt.
      const approved = JSON.parse(canonicalJson(snapshot)) as P;
      if ((await paramsSha256(approved)) !== approval.receipt.params_sha256) {
        throw new ReceiptVerificationError("params_mismatch", "the params about to run differ from the approved ones");
      }
      return await fn(approved, approval);
    };
  }
}
