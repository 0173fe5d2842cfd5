import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { exportJWK, generateKeyPair } from "jose";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GatewayProcess, startGateway } from "../../../test/support/gateway.ts";
import {
  ApprovalCancelledError,
  ApprovalDeniedError,
  ApprovalExpiredError,
  type ApprovalRequest,
  ApprovalTimeoutError,
  Countersign,
  CountersignApiError,
  CountersignNetworkError,
  paramsSha256,
  ReceiptVerificationError,
  verifyReceipt,
  verifyWebhook,
  WebhookVerificationError,
} from "../src/index.ts";

// Every test here runs against the real gateway process: no mocks of the server.

const ISSUER = "https://countersign.test";
const POLICY = `
version: 1
groups:
  reviewers: [alice@example.com, bob@example.com, owner@example.com]
rules:
  - id: reads
    match: { action: "*.read" }
    effect: allow
  - id: never-drop
    match: { action: db.drop }
    effect: deny
  - id: deadline
    match: { action: ops.deadline }
    effect: require_approval
    approvers: [reviewers]
    onExpire: deny
  - id: reviewers
    effect: require_approval
    approvers: [reviewers]
default: deny
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("@countersign/sdk against the real gateway", () => {
  let gw: GatewayProcess;
  let agent: Countersign;
  let alice: Countersign;
  let ownerReviewer: Countersign;
  let agentKey: string;
  let webhookSecret: string;
  let expiring: Promise<unknown>;
  let deadline: Promise<unknown>;

  beforeAll(async () => {
    gw = await startGateway({ engine: "pglite", policy: POLICY, env: { COUNTERSIGN_PUBLIC_URL: ISSUER } });
    const a = await gw.createKey({ name: "export-bot", owner: "owner@example.com", scopes: ["requests"] });
    agentKey = a.key;
    webhookSecret = a.webhookSecret as string;
    const fast = { retryDelayMs: 20 };
    agent = new Countersign({ baseUrl: gw.url, apiKey: agentKey, ...fast });
    alice = new Countersign({
      baseUrl: gw.url,
      apiKey: (await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] })).key,
      ...fast,
    });
    ownerReviewer = new Countersign({
      baseUrl: gw.url,
      apiKey: (await gw.createKey({ name: "owner", owner: "owner@example.com", scopes: ["decisions"] })).key,
    });
    // Nobody decides these; they settle at expiry while the rest of the file runs.
    expiring = agent.requestApproval({ action: "ops.expire", summary: "Nobody will answer", expiresIn: 10 }, { wait: { timeoutMs: 40_000 } }).catch((e) => e);
    deadline = agent.requestApproval({ action: "ops.deadline", summary: "Denied at expiry", expiresIn: 10 }, { wait: { timeoutMs: 40_000 } }).catch((e) => e);
  });
  afterAll(async () => {
    await gw?.stop();
  });

  /** The pending request for `action`, as a reviewer finds it. */
  async function pendingFor(action: string): Promise<ApprovalRequest> {
    for (let i = 0; i < 200; i++) {
      const page = await alice.listRequests({ status: "pending", action });
      if (page.data[0]) return page.data[0];
      await sleep(50);
    }
    throw new Error(`no pending request for ${action}`);
  }

  describe("requestApproval", () => {
    it("waits (long-poll) until a reviewer approves, then resolves with the request and its verified receipt", async () => {
      const params = { table: "customers", format: "csv", columns: ["id", "email"] };
      const waiting = agent.requestApproval({ action: "db.export", summary: "Export customers", params, environment: "production", risk: "high" });
      const req = await pendingFor("db.export");
      expect(req.params).toEqual(params);
      await sleep(300);
      await alice.decide(req.id, { decision: "approve", reason: "ticket OPS-42" });
      const approval = await waiting;
      expect(approval.request).toMatchObject({ id: req.id, status: "approved", resolution: "quorum" });
      expect(approval.receipt).toMatchObject({
        jti: req.id,
        action: "db.export",
        params_sha256: await paramsSha256(params),
        environment: "production",
        agent: { name: "export-bot" },
        approvers: [{ principal: "alice@example.com", surface: "api" }],
        rule: "reviewers",
        iss: ISSUER,
      });
      expect(approval.receipt.exp).toBeGreaterThan(approval.receipt.iat);
      expect(approval.receiptJws).toBe(approval.request.receipt);
    });

    it("resolves at once when the policy allows", async () => {
      const approval = await agent.requestApproval({ action: "report.read", summary: "Read a report", params: { id: 7 } });
      expect(approval.request.resolution).toBe("policy");
      expect(approval.receipt).toMatchObject({ rule: "reads", approvers: [] });
    });

    it("throws ApprovalDeniedError with the reviewers' reasons", async () => {
      const waiting = agent.requestApproval({ action: "iam.role.attach", summary: "Attach admin role", params: { role: "admin" } }).catch((e) => e);
      const req = await pendingFor("iam.role.attach");
      await alice.decide(req.id, { decision: "deny", reason: "not without a ticket" });
      const err = await waiting;
      expect(err).toBeInstanceOf(ApprovalDeniedError);
      expect(err).toMatchObject({
        requestId: req.id,
        deniedBy: "reviewers",
        reasons: [{ reviewer: "alice@example.com", reason: "not without a ticket", surface: "api" }],
      });
      expect(err.message).toContain("not without a ticket");
      expect(err.request.status).toBe("denied");
    });

    it("throws ApprovalDeniedError (deniedBy policy) when a rule denies", async () => {
      const err = await agent.requestApproval({ action: "db.drop", summary: "Drop the database" }).catch((e) => e);
      expect(err).toBeInstanceOf(ApprovalDeniedError);
      expect(err).toMatchObject({ deniedBy: "policy", reasons: [] });
      expect(err.message).toContain("never-drop");
    });

    it("throws ApprovalCancelledError when the request is withdrawn", async () => {
      const waiting = agent.requestApproval({ action: "ops.cancel-me", summary: "Will be withdrawn" }).catch((e) => e);
      const req = await pendingFor("ops.cancel-me");
      await agent.cancel(req.id, { reason: "changed my mind" });
      expect(await waiting).toBeInstanceOf(ApprovalCancelledError);
    });

    it("throws ApprovalTimeoutError when nobody decides in time, and the wait can be resumed", async () => {
      const err = await agent
        .requestApproval({ action: "ops.slow", summary: "Slow reviewers", params: { n: 1 } }, { wait: { timeoutMs: 1_200 } })
        .catch((e) => e);
      expect(err).toBeInstanceOf(ApprovalTimeoutError);
      expect(err.requestId).toMatch(/^req_/);
      expect(err.request?.status).toBe("pending");
      const resumed = agent.awaitApproval(err.requestId, { action: "ops.slow", params: { n: 1 } }, { timeoutMs: 20_000 });
      await alice.decide(err.requestId, { decision: "approve" });
      await expect(resumed).resolves.toMatchObject({ request: { id: err.requestId, status: "approved" } });
    });

    it("withdraws the request on timeout with cancelOnTimeout", async () => {
      const err = await agent
        .requestApproval({ action: "ops.give-up", summary: "Give up" }, { wait: { timeoutMs: 800 }, cancelOnTimeout: true })
        .catch((e) => e);
      expect(err).toBeInstanceOf(ApprovalTimeoutError);
      expect((await agent.getRequest(err.requestId)).status).toBe("cancelled");
    });

    it("with wait: false returns the pending request at once", async () => {
      const r = await agent.requestApproval({ action: "ops.later", summary: "Decide later" }, { wait: false });
      expect(r.status).toBe("pending");
      await agent.cancel(r.id);
    });

    it("settles ApprovalExpiredError, and ApprovalDeniedError (deniedBy timeout) under onExpire: deny", async () => {
      const [e1, e2] = await Promise.all([expiring, deadline]);
      expect(e1).toBeInstanceOf(ApprovalExpiredError);
      expect(e2).toBeInstanceOf(ApprovalDeniedError);
      expect(e2).toMatchObject({ deniedBy: "timeout" });
    });
  });

  describe("idempotency and retries", () => {
    it("retries a submission whose response was lost with the same key, so exactly one request exists", async () => {
      const keys: string[] = [];
      let firstId: string | undefined;
      const flaky: typeof fetch = async (input, init) => {
        if (init?.method === "POST" && String(input).endsWith("/v1/requests")) {
          keys.push(new Headers(init.headers).get("idempotency-key") as string);
          const res = await fetch(input, init);
          if (keys.length === 1) {
            // The gateway committed the request; the connection drops before the answer arrives.
            firstId = ((await res.json()) as { id: string }).id;
            throw new TypeError("fetch failed", { cause: Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }) });
          }
          return res;
        }
        return fetch(input, init);
      };
      const cs = new Countersign({ baseUrl: gw.url, apiKey: agentKey, fetch: flaky, retryDelayMs: 10 });
      const r = await cs.createRequest({ action: "ops.retry", summary: "Retried submit", params: { n: 1 } });
      expect(keys).toHaveLength(2);
      expect(keys[0]).toMatch(/^cs_sdk_/);
      expect(keys[1]).toBe(keys[0]);
      expect(r.id).toBe(firstId);
      expect((await alice.listRequests({ action: "ops.retry" })).data).toHaveLength(1);
    });

    it("retries 503 and 429 answers, honouring Retry-After", async () => {
      let n = 0;
      const busy: typeof fetch = async (input, init) => {
        if (init?.method === "POST" && n++ < 2) {
          const problem = {
            type: "x",
            title: "Service unavailable",
            status: 503,
            code: "service_unavailable",
            detail: "busy",
            requestId: "rq_x",
            instance: "/v1/requests",
          };
          return new Response(JSON.stringify(problem), {
            status: n === 1 ? 503 : 429,
            headers: { "content-type": "application/problem+json", "retry-after": "0" },
          });
        }
        return fetch(input, init);
      };
      const cs = new Countersign({ baseUrl: gw.url, apiKey: agentKey, fetch: busy, retryDelayMs: 10 });
      await expect(cs.createRequest({ action: "ops.busy", summary: "Busy gateway" })).resolves.toMatchObject({ status: "pending" });
      expect(n).toBe(3);
    });

    it("an explicit Idempotency-Key replays the original request", async () => {
      const a = await agent.createRequest({ action: "ops.idem", summary: "Once" }, { idempotencyKey: "deploy-2026-11-21" });
      const b = await agent.createRequest({ action: "ops.idem", summary: "Once" }, { idempotencyKey: "deploy-2026-11-21" });
      expect(b.id).toBe(a.id);
      const conflict = await agent.createRequest({ action: "ops.idem", summary: "Twice" }, { idempotencyKey: "deploy-2026-11-21" }).catch((e) => e);
      expect(conflict).toMatchObject({ status: 422, code: "idempotency_conflict" });
    });

    it("gives up with CountersignNetworkError when the gateway cannot be reached", async () => {
      const closed = createServer();
      await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
      const port = (closed.address() as { port: number }).port;
      await new Promise<void>((r) => closed.close(() => r()));
      const cs = new Countersign({ baseUrl: `http://127.0.0.1:${port}`, apiKey: agentKey, maxRetries: 2, retryDelayMs: 5 });
      const err = await cs.createRequest({ action: "ops.down", summary: "Nobody home" }).catch((e) => e);
      expect(err).toBeInstanceOf(CountersignNetworkError);
      expect(err.message).toMatch(/ECONNREFUSED|fetch failed/);
    });
  });

  describe("typed API errors mirror problem+json", () => {
    it("invalid input: 400 invalid_request with per-field errors and the request id", async () => {
      const err = await agent.createRequest({ action: "not dotted", summary: "" }).catch((e) => e);
      expect(err).toBeInstanceOf(CountersignApiError);
      expect(err).toMatchObject({ status: 400, code: "invalid_request" });
      expect(err.requestId).toMatch(/^rq_/);
      expect(err.errors.map((e: { path: string }) => e.path).sort()).toEqual(["action", "summary"]);
    });

    it("401, 403, self-approval, 404 and 409", async () => {
      const bad = new Countersign({ baseUrl: gw.url, apiKey: "cs_AAAAAAAAAAAA_bogusbogusbogusbogusbogusbogusbogus" });
      await expect(bad.createRequest({ action: "a.b", summary: "x" })).rejects.toMatchObject({ status: 401, code: "unauthorized" });

      const r = await agent.createRequest({ action: "ops.errors", summary: "Error cases" });
      await expect(agent.decide(r.id, { decision: "approve" })).rejects.toMatchObject({ status: 403, code: "forbidden" });
      await expect(ownerReviewer.decide(r.id, { decision: "approve" })).rejects.toMatchObject({ status: 403, code: "self_approval_forbidden" });
      await expect(agent.getRequest(`req_${"0".repeat(26)}`)).rejects.toMatchObject({ status: 404, code: "not_found" });
      await alice.decide(r.id, { decision: "approve" });
      await expect(alice.decide(r.id, { decision: "approve" })).rejects.toMatchObject({ status: 409, code: "request_not_pending" });
    });
  });

  describe("guard", () => {
    it("runs the function only after approval, once, with exactly the approved params", async () => {
      const runs: { params: unknown; at: number }[] = [];
      const exportData = agent.guard(
        "data.export",
        async (p: { table: string; limit: number }, approval) => {
          runs.push({ params: p, at: Date.now() });
          return { rows: p.limit, receipt: approval.receipt.jti };
        },
        { summary: (p) => `Export ${p.table}`, environment: "production", risk: "high", timeoutMs: 20_000 },
      );
      const arg = { table: "customers", limit: 100 };
      const running = exportData(arg);
      const req = await pendingFor("data.export");
      expect(req).toMatchObject({ summary: "Export customers", environment: "production", risk: "high", params: { table: "customers", limit: 100 } });
      arg.table = "secrets"; // what the caller does afterwards cannot reach the action
      await sleep(300);
      expect(runs).toHaveLength(0);
      const approvedAt = Date.now();
      await alice.decide(req.id, { decision: "approve" });
      await expect(running).resolves.toEqual({ rows: 100, receipt: req.id });
      expect(runs).toHaveLength(1);
      expect(runs[0]?.params).toEqual({ table: "customers", limit: 100 });
      expect(runs[0]?.params).not.toBe(arg);
      expect(runs[0]?.at).toBeGreaterThanOrEqual(approvedAt);
    });

    it("never runs the function when denied", async () => {
      let ran = false;
      const rotate = agent.guard("secret.rotate", async () => {
        ran = true;
      });
      const running = rotate({ secret: "db-password" }).catch((e) => e);
      const req = await pendingFor("secret.rotate");
      await alice.decide(req.id, { decision: "deny", reason: "freeze week" });
      const err = await running;
      expect(err).toBeInstanceOf(ApprovalDeniedError);
      expect(err.reasons[0].reason).toBe("freeze week");
      expect(ran).toBe(false);
    });

    it("refuses to run when what was approved differs from the call's params (params_sha256)", async () => {
      // Something between the agent and the gateway rewrites the submitted params.
      const tampering: typeof fetch = async (input, init) => {
        if (init?.method === "POST" && String(input).endsWith("/v1/requests") && typeof init.body === "string") {
          const body = JSON.parse(init.body);
          body.params.table = "everything";
          return fetch(input, { ...init, body: JSON.stringify(body) });
        }
        return fetch(input, init);
      };
      const cs = new Countersign({ baseUrl: gw.url, apiKey: agentKey, fetch: tampering });
      let ran = false;
      const guarded = cs.guard("data.copy", async () => {
        ran = true;
      });
      const running = guarded({ table: "invoices" }).catch((e) => e);
      const req = await pendingFor("data.copy");
      expect(req.params).toEqual({ table: "everything" });
      await alice.decide(req.id, { decision: "approve" });
      const err = await running;
      expect(err).toBeInstanceOf(ReceiptVerificationError);
      expect(err.problem).toBe("params_mismatch");
      expect(ran).toBe(false);
    });
  });

  describe("verifyReceipt", () => {
    let receipt: string;
    let requestId: string;
    const params = { bucket: "backups", prefix: "2026/" };
    beforeAll(async () => {
      const a = await agent.requestApproval({ action: "logs.read", summary: "Read logs", params });
      receipt = a.receiptJws;
      requestId = a.request.id;
    });

    it("accepts a genuine receipt (JWKS URL or key set), and checks issuer and request", async () => {
      const jwksUrl = `${gw.url}/.well-known/jwks.json`;
      await expect(verifyReceipt(receipt, { jwksUrl, action: "logs.read", params, requestId, issuer: ISSUER })).resolves.toMatchObject({ jti: requestId });
      const jwks = await (await fetch(jwksUrl)).json();
      await expect(verifyReceipt(receipt, { jwks, action: "logs.read", params: { prefix: "2026/", bucket: "backups" } })).resolves.toMatchObject({
        action: "logs.read",
      });
    });

    it("rejects the wrong action, params, request, issuer, a forged signature, another key and an expired receipt", async () => {
      const jwks = await (await fetch(`${gw.url}/.well-known/jwks.json`)).json();
      const base = { jwks, action: "logs.read", params };
      const problem = (p: Promise<unknown>) =>
        p.then(
          () => "accepted",
          (e: ReceiptVerificationError) => e.problem,
        );
      expect(await problem(verifyReceipt(receipt, { ...base, action: "logs.delete" }))).toBe("action_mismatch");
      expect(await problem(verifyReceipt(receipt, { ...base, params: { ...params, prefix: "" } }))).toBe("params_mismatch");
      expect(await problem(verifyReceipt(receipt, { ...base, requestId: `req_${"1".repeat(26)}` }))).toBe("request_mismatch");
      expect(await problem(verifyReceipt(receipt, { ...base, issuer: "https://evil.test" }))).toBe("claims");
      const [h, p, s] = receipt.split(".") as [string, string, string];
      const forged = `${h}.${p}.${s.startsWith("A") ? "B" : "A"}${s.slice(1)}`;
      expect(await problem(verifyReceipt(forged, base))).toBe("signature");
      const other = await exportJWK((await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true })).publicKey);
      const kid = (jwks.keys[0] as { kid: string }).kid;
      expect(await problem(verifyReceipt(receipt, { ...base, jwks: { keys: [{ ...other, kid, alg: "EdDSA" }] } }))).toBe("signature");
      expect(await problem(verifyReceipt(receipt, { ...base, currentDate: new Date(Date.now() + 86_400_000) }))).toBe("expired");
      expect(await problem(verifyReceipt(null, base))).toBe("missing");
      expect(await problem(verifyReceipt("not.a.jws", base))).toBe("malformed");
    });
  });

  describe("verifyWebhook", () => {
    let server: Server;
    let url: string;
    const got: { body: string; headers: IncomingHttpHeaders }[] = [];
    beforeAll(async () => {
      server = createServer((req, res) => {
        let body = "";
        req.setEncoding("utf8");
        req.on("data", (c) => {
          body += c;
        });
        req.on("end", () => {
          got.push({ body, headers: req.headers });
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it("verifies a real callback and rejects tampering, a wrong secret and a stale timestamp", async () => {
      const approval = await agent.requestApproval({ action: "audit.read", summary: "Read audit", callbackUrl: url });
      for (let i = 0; i < 100 && got.length === 0; i++) await sleep(50);
      const cb = got[0] as { body: string; headers: IncomingHttpHeaders };
      const event = verifyWebhook(cb.body, cb.headers, webhookSecret);
      expect(event).toMatchObject({ type: "request.approved", data: { id: approval.request.id, status: "approved" } });
      expect(verifyWebhook(new TextEncoder().encode(cb.body), new Headers(cb.headers as Record<string, string>), webhookSecret).data.id).toBe(
        approval.request.id,
      );

      expect(() => verifyWebhook(cb.body.replace('"approved"', '"denied"'), cb.headers, webhookSecret)).toThrow(WebhookVerificationError);
      expect(() => verifyWebhook(cb.body, cb.headers, `whsec_${Buffer.from("another secret, 24 bytes!").toString("base64")}`)).toThrow(
        WebhookVerificationError,
      );
      expect(() => verifyWebhook(cb.body, { ...cb.headers, "webhook-signature": undefined }, webhookSecret)).toThrow(/missing webhook-signature/);
      const stale = new Date(Date.now() - 10 * 60_000);
      const staleHeaders = {
        "webhook-id": "msg_1",
        "webhook-timestamp": String(Math.floor(stale.getTime() / 1000)),
        "webhook-signature": new Webhook(webhookSecret).sign("msg_1", stale, cb.body),
      };
      expect(() => verifyWebhook(cb.body, staleHeaders, webhookSecret)).toThrow(WebhookVerificationError);
    });
  });

  it("keeps waiting across a gateway restart and resolves once approved", async () => {
    const waiting = agent.requestApproval({ action: "ops.restart", summary: "Survives a restart" }, { wait: { timeoutMs: 50_000 } });
    const req = await pendingFor("ops.restart");
    await gw.restart();
    // Decide only once the restarted process answers (decisions are deliberately not retried).
    const up = () =>
      fetch(`${gw.url}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
    for (let i = 0; i < 200 && !(await up()); i++) await sleep(50);
    await alice.decide(req.id, { decision: "approve" });
    await expect(waiting).resolves.toMatchObject({ request: { id: req.id, status: "approved" } });
  });
});
