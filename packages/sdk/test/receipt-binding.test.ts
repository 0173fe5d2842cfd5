import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type GatewayProcess, startGateway } from "../../../test/support/gateway.ts";
import {
  Countersign,
  CountersignApiError,
  type JsonWebKeySet,
  paramsSha256,
  type ReceiptProblem,
  type ReceiptRedeemer,
  ReceiptVerificationError,
  verifyReceipt,
} from "../src/index.ts";

/** The problem a verification failed with, or "accepted". */
const problem = (p: Promise<unknown>): Promise<ReceiptProblem | "accepted" | "other"> =>
  p.then(
    () => "accepted",
    (e: unknown) => (e instanceof ReceiptVerificationError ? e.problem : "other"),
  );

/**
 * verifyReceipt's environment and resource binding, checked exactly (null included), on
 * receipts signed here with claims of our choosing: no gateway needed.
 */
describe("verifyReceipt: environment and resource", () => {
  let jwks: JsonWebKeySet;
  let sign: (claims: Record<string, unknown>) => Promise<string>;
  const params = { table: "customers" };

  beforeAll(async () => {
    const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
    jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "EdDSA", use: "sig" }] };
    const hash = await paramsSha256(params);
    sign = (claims) => {
      const body: Record<string, unknown> = {
        jti: `req_${"0".repeat(26)}`,
        action: "db.export",
        params_sha256: hash,
        resource: null,
        environment: null,
        agent: { key_id: "key_1", name: "bot" },
        on_behalf_of: null,
        approvers: [],
        rule: "r",
        ...claims,
      };
      for (const [k, v] of Object.entries(body)) if (v === undefined) delete body[k];
      return new SignJWT(body)
        .setProtectedHeader({ alg: "EdDSA", kid: "k1", typ: "countersign-receipt+jwt" })
        .setIssuer("https://cs.test")
        .setIssuedAt()
        .setExpirationTime("5m")
        .sign(privateKey);
    };
  });
  const check = (jws: string, extra: { environment?: string | null; resource?: string | null }) =>
    problem(verifyReceipt(jws, { jwks, action: "db.export", params, ...extra }));

  it("a receipt for one environment does not pass for another; the match is exact", async () => {
    const prod = await sign({ environment: "production" });
    expect(await check(prod, { environment: "production" })).toBe("accepted");
    expect(await check(prod, { environment: "staging" })).toBe("environment_mismatch");
    expect(await check(prod, { environment: "Production" })).toBe("environment_mismatch");
    expect(await check(prod, { environment: "production " })).toBe("environment_mismatch");
    expect(await check(prod, { environment: null })).toBe("environment_mismatch");
    const staging = await sign({ environment: "staging" });
    expect(await check(staging, { environment: "production" })).toBe("environment_mismatch");
    await expect(verifyReceipt(staging, { jwks, action: "db.export", params, environment: "production" })).rejects.toThrow(
      'receipt rejected (environment_mismatch): the receipt is for environment "staging", not "production"',
    );
  });

  it("null asserts that the request named no environment; omitting the option does not check it", async () => {
    const none = await sign({ environment: null });
    expect(await check(none, { environment: null })).toBe("accepted");
    expect(await check(none, { environment: "production" })).toBe("environment_mismatch");
    expect(await check(none, { environment: "" })).toBe("environment_mismatch");
    expect(await check(none, {})).toBe("accepted");
    expect(await check(await sign({ environment: "production" }), {})).toBe("accepted");
    // A receipt without the claim at all reads as null.
    const without = await sign({ environment: undefined });
    expect(await check(without, { environment: null })).toBe("accepted");
    expect(await check(without, { environment: "production" })).toBe("environment_mismatch");
  });

  it("resource is bound the same way", async () => {
    const r = await sign({ resource: "db/customers", environment: "production" });
    expect(await check(r, { resource: "db/customers", environment: "production" })).toBe("accepted");
    expect(await check(r, { resource: "db/orders", environment: "production" })).toBe("resource_mismatch");
    expect(await check(r, { resource: null })).toBe("resource_mismatch");
    expect(await check(r, { resource: "db/customers", environment: "staging" })).toBe("environment_mismatch");
    const none = await sign({ resource: null });
    expect(await check(none, { resource: null })).toBe("accepted");
    expect(await check(none, { resource: "db/customers" })).toBe("resource_mismatch");
  });

  it("a claim that is neither a string nor null is malformed claims, even when not asked about", async () => {
    expect(await check(await sign({ environment: 1 }), {})).toBe("claims");
    expect(await check(await sign({ resource: { id: 1 } }), { resource: null })).toBe("claims");
  });

  it("redeems only after every check passed, and maps the gateway's 409 to already_redeemed", async () => {
    const jws = await sign({ environment: "production" });
    const redeemReceipt = vi.fn<ReceiptRedeemer["redeemReceipt"]>();
    const client: ReceiptRedeemer = { redeemReceipt };
    expect(await problem(verifyReceipt(jws, { jwks, action: "db.export", params, environment: "staging", redeem: { client } }))).toBe("environment_mismatch");
    expect(await problem(verifyReceipt(jws, { jwks, action: "db.export", params: { table: "orders" }, redeem: { client } }))).toBe("params_mismatch");
    expect(await problem(verifyReceipt(jws, { jwks, action: "db.drop", params, redeem: { client } }))).toBe("action_mismatch");
    expect(redeemReceipt).not.toHaveBeenCalled();

    redeemReceipt.mockResolvedValueOnce({
      object: "receipt_redemption",
      jti: `req_${"0".repeat(26)}`,
      action: "db.export",
      redeemedAt: new Date().toISOString(),
    });
    await expect(verifyReceipt(jws, { jwks, action: "db.export", params, environment: "production", redeem: { client } })).resolves.toMatchObject({
      environment: "production",
    });
    expect(redeemReceipt).toHaveBeenCalledWith(`req_${"0".repeat(26)}`, { signal: undefined });

    const used = new CountersignApiError({ status: 409, code: "receipt_already_redeemed", title: "Receipt already redeemed", detail: "already redeemed at T" });
    redeemReceipt.mockRejectedValueOnce(used);
    const err = await verifyReceipt(jws, { jwks, action: "db.export", params, redeem: { client } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReceiptVerificationError);
    expect(err).toMatchObject({ problem: "already_redeemed", cause: used });

    // Anything else the gateway says is passed on as it is: still a throw, so nothing runs.
    const missing = new CountersignApiError({ status: 404, code: "not_found", title: "Not found", detail: "no request" });
    redeemReceipt.mockRejectedValueOnce(missing);
    await expect(verifyReceipt(jws, { jwks, action: "db.export", params, redeem: { client } })).rejects.toBe(missing);
  });
});

// Against the real gateway: its receipts, its redeem endpoint.
const POLICY = `
version: 1
groups:
  reviewers: [alice@example.com]
rules:
  - id: reads
    match: { action: "*.read" }
    effect: allow
  - id: reviewers
    effect: require_approval
    approvers: [reviewers]
default: deny
`;

describe("@countersign/sdk receipts against the real gateway: binding and single use", () => {
  let gw: GatewayProcess;
  let agent: Countersign;
  let other: Countersign;
  let alice: Countersign;
  let jwksUrl: string;
  const params = { bucket: "backups", prefix: "2026/" };

  beforeAll(async () => {
    gw = await startGateway({ engine: "pglite", policy: POLICY, env: { COUNTERSIGN_RATE_LIMIT: "0" } });
    const fast = { retryDelayMs: 20 };
    agent = new Countersign({ baseUrl: gw.url, apiKey: (await gw.createKey({ name: "bot", owner: "owner@example.com", scopes: ["requests"] })).key, ...fast });
    other = new Countersign({
      baseUrl: gw.url,
      apiKey: (await gw.createKey({ name: "other", owner: "other@example.com", scopes: ["requests"] })).key,
      ...fast,
    });
    alice = new Countersign({
      baseUrl: gw.url,
      apiKey: (await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] })).key,
      ...fast,
    });
    jwksUrl = agent.jwksUrl;
  });
  afterAll(async () => {
    await gw?.stop();
  });

  const approve = async (environment?: string, resource?: string) =>
    agent.requestApproval({
      action: "logs.read",
      summary: "Read logs",
      params,
      ...(environment !== undefined ? { environment } : {}),
      ...(resource !== undefined ? { resource } : {}),
    });

  it("a staging receipt is refused where production is expected, by verifyReceipt and by the client", async () => {
    const a = await approve("staging", "s3://backups");
    expect(a.receipt).toMatchObject({ environment: "staging", resource: "s3://backups" });
    const base = { jwksUrl, action: "logs.read", params };
    expect(await problem(verifyReceipt(a.receiptJws, { ...base, environment: "production" }))).toBe("environment_mismatch");
    expect(await problem(verifyReceipt(a.receiptJws, { ...base, environment: null }))).toBe("environment_mismatch");
    expect(await problem(verifyReceipt(a.receiptJws, { ...base, environment: "staging", resource: "s3://other" }))).toBe("resource_mismatch");
    expect(await problem(verifyReceipt(a.receiptJws, { ...base, environment: "staging", resource: "s3://backups" }))).toBe("accepted");
    expect(await problem(agent.verifyReceipt(a.receiptJws, { action: "logs.read", params, environment: "production" }))).toBe("environment_mismatch");
    expect(await problem(agent.verifyReceipt(a.receiptJws, { action: "logs.read", params, resource: null }))).toBe("resource_mismatch");
    expect(await problem(agent.verifyReceipt(a.receiptJws, { action: "logs.read", params, environment: "staging", resource: "s3://backups" }))).toBe(
      "accepted",
    );

    // A request without them: the receipt says null, and null is what must be expected.
    const none = await approve();
    expect(none.receipt).toMatchObject({ environment: null, resource: null });
    expect(await problem(verifyReceipt(none.receiptJws, { ...base, environment: null, resource: null }))).toBe("accepted");
    expect(await problem(verifyReceipt(none.receiptJws, { ...base, environment: "production" }))).toBe("environment_mismatch");
    expect(await problem(verifyReceipt(none.receiptJws, { ...base, resource: "s3://backups" }))).toBe("resource_mismatch");
  });

  it("requestApproval and guard resolve when the receipt covers the submitted environment and resource", async () => {
    const pending = agent.requestApproval({ action: "db.export", summary: "Export", params, environment: "production", resource: "db/customers" });
    let id: string | undefined;
    for (let i = 0; i < 200 && !id; i++) {
      id = (await alice.listRequests({ status: "pending", action: "db.export" })).data[0]?.id;
      if (!id) await new Promise((r) => setTimeout(r, 50));
    }
    await alice.decide(id as string, { decision: "approve" });
    await expect(pending).resolves.toMatchObject({ receipt: { environment: "production", resource: "db/customers" } });
    const guarded = agent.guard("logs.read", async (p: typeof params) => p.prefix, { environment: "staging", resource: (p) => `s3://${p.bucket}` });
    await expect(guarded(params)).resolves.toBe("2026/");
  });

  it("cs.redeemReceipt: the first call redeems, the second is 409 receipt_already_redeemed", async () => {
    const a = await approve("production");
    const redemption = await agent.redeemReceipt(a.request.id);
    expect(redemption).toEqual({ object: "receipt_redemption", jti: a.request.id, action: "logs.read", redeemedAt: expect.any(String) });
    const again = await agent.redeemReceipt(a.request.id).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(CountersignApiError);
    expect(again).toMatchObject({ status: 409, code: "receipt_already_redeemed" });
  });

  it("verifyReceipt({ redeem }) succeeds once; the second verification throws already_redeemed", async () => {
    const a = await approve("production", "s3://backups");
    const opts = { jwksUrl, action: "logs.read", params, environment: "production", resource: "s3://backups", redeem: { client: agent } };
    await expect(verifyReceipt(a.receiptJws, opts)).resolves.toMatchObject({ jti: a.request.id });
    const err = await verifyReceipt(a.receiptJws, opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReceiptVerificationError);
    expect(err).toMatchObject({ problem: "already_redeemed" });
    expect((err as Error).message).toMatch(/^receipt rejected \(already_redeemed\): this receipt was already redeemed at /);
    // Without redeem, the receipt still verifies: single use is opt-in, per executor.
    await expect(verifyReceipt(a.receiptJws, { ...opts, redeem: undefined })).resolves.toMatchObject({ jti: a.request.id });
  });

  it("cs.verifyReceipt(..., { redeem: true }) redeems with the client's own key", async () => {
    const a = await approve();
    const expected = { action: "logs.read", params, environment: null, resource: null, redeem: true };
    await expect(agent.verifyReceipt(a.receiptJws, expected)).resolves.toMatchObject({ jti: a.request.id });
    expect(await problem(agent.verifyReceipt(a.receiptJws, expected))).toBe("already_redeemed");
  });

  it("a receipt that fails verification is not used up, and another key cannot redeem it", async () => {
    const a = await approve("staging");
    const opts = { jwksUrl, action: "logs.read", params, redeem: { client: agent } };
    expect(await problem(verifyReceipt(a.receiptJws, { ...opts, environment: "production" }))).toBe("environment_mismatch");
    expect(await problem(verifyReceipt(a.receiptJws, { ...opts, environment: "staging", params: { ...params, prefix: "" } }))).toBe("params_mismatch");
    // Another agent's client is told the request does not exist, and that burns nothing.
    const foreign = await verifyReceipt(a.receiptJws, { ...opts, environment: "staging", redeem: { client: other } }).catch((e: unknown) => e);
    expect(foreign).toBeInstanceOf(CountersignApiError);
    expect(foreign).toMatchObject({ status: 404, code: "not_found" });
    await expect(verifyReceipt(a.receiptJws, { ...opts, environment: "staging" })).resolves.toMatchObject({ environment: "staging" });
    expect(await problem(verifyReceipt(a.receiptJws, { ...opts, environment: "staging" }))).toBe("already_redeemed");
  });

  it("concurrent verifications with redeem: exactly one resolves", async () => {
    const a = await approve("production");
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, () =>
        verifyReceipt(a.receiptJws, { jwksUrl, action: "logs.read", params, environment: "production", redeem: { client: agent } }),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(rejected.map((r) => (r.reason as ReceiptVerificationError).problem)).toEqual(Array(5).fill("already_redeemed"));
  });
});
