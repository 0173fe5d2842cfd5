import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectProblem } from "../support/api-helpers.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

const POLICY = `
version: 1
rules:
  - id: reads
    match: { action: "*.read" }
    effect: allow
  - id: anyone
    effect: require_approval
    approvers: ["*"]
default: deny
`;

// Small limits, so a test can run into each of them.
const WAIT_RATE = 0.5;
const WAIT_BURST = 3;
const WAIT_MAX_OPEN = 2;
const UNAUTH_RATE = 0.5;
const UNAUTH_BURST = 3;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `name{labels} value` samples of a Prometheus exposition. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** A 429 problem+json with code rate_limited and a Retry-After in whole seconds; returns the seconds. */
async function expectRateLimited(res: Response): Promise<number> {
  const retryAfter = res.headers.get("retry-after");
  await expectProblem(res, 429, "rate_limited");
  expect(retryAfter).toMatch(/^[1-9]\d*$/);
  return Number(retryAfter);
}

describe("rate limits: long-poll opens, open long-polls and unauthenticated calls", () => {
  let gw: GatewayProcess;
  let poller = "";
  let waiter = "";
  let bystander = "";
  let admin = "";

  beforeAll(async () => {
    gw = await startGateway({
      engine: "pglite",
      policy: POLICY,
      env: {
        COUNTERSIGN_WAIT_RATE_LIMIT: String(WAIT_RATE),
        COUNTERSIGN_WAIT_RATE_BURST: String(WAIT_BURST),
        COUNTERSIGN_WAIT_MAX_OPEN: String(WAIT_MAX_OPEN),
        COUNTERSIGN_UNAUTH_RATE_LIMIT: String(UNAUTH_RATE),
        COUNTERSIGN_UNAUTH_RATE_BURST: String(UNAUTH_BURST),
      },
    });
    [poller, waiter, bystander, admin] = (
      await Promise.all([
        gw.createKey({ name: "poller", owner: "poller@example.com", scopes: ["requests"] }),
        gw.createKey({ name: "waiter", owner: "waiter@example.com", scopes: ["requests"] }),
        gw.createKey({ name: "bystander", owner: "bystander@example.com", scopes: ["requests"] }),
        gw.createKey({ name: "root", owner: "root@example.com", scopes: ["admin"] }),
      ])
    ).map((k) => k.key) as [string, string, string, string];
    // Every key used here has succeeded once before the unauthenticated allowance runs out.
    for (const key of [poller, waiter, bystander, admin]) expect((await gw.api("/v1/requests/req_00000000000000000000000000", { key })).status).toBe(404);
  });
  afterAll(async () => {
    if (gw) expect(gw.logs.join("")).not.toContain("unhandled error");
    await gw?.stop();
  });

  const metrics = async () => {
    const res = await gw.api("/metrics", { key: admin });
    expect(res.status).toBe(200);
    return res.text();
  };
  const refusals = async (limit: string) => sample(await metrics(), "countersign_rate_limited_total", { limit }) ?? 0;
  const submit = async (key: string, action: string) => {
    const res = await gw.api("/v1/requests", { method: "POST", key, json: { action, summary: "rate limits" } });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  };

  it("long-poll opens beyond a key's rate get 429 with Retry-After; intake, plain reads and other keys are unaffected", async () => {
    const before = await refusals("wait");
    const id = await submit(poller, "logs.read"); // approved at once: each long-poll answers immediately
    for (let i = 0; i < WAIT_BURST; i++) expect((await gw.api(`/v1/requests/${id}?wait=5`, { key: poller })).status).toBe(200);
    const retryAfter = await expectRateLimited(await gw.api(`/v1/requests/${id}?wait=5`, { key: poller }));
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil(1 / WAIT_RATE));
    expect(await refusals("wait")).toBe(before + 1);

    // The same key still submits (intake has its own bucket) and still reads without waiting.
    for (let i = 0; i < 5; i++) await submit(poller, "logs.read");
    expect((await gw.api(`/v1/requests/${id}`, { key: poller })).status).toBe(200);
    expect((await gw.api(`/v1/requests/${id}?wait=0`, { key: poller })).status).toBe(200);
    // Another key long-polls as usual.
    const other = await submit(bystander, "logs.read");
    expect((await gw.api(`/v1/requests/${other}?wait=5`, { key: bystander })).status).toBe(200);

    // Waiting as told is enough.
    await sleep(retryAfter * 1000 + 100);
    expect((await gw.api(`/v1/requests/${id}?wait=5`, { key: poller })).status).toBe(200);
  });

  it("a key holding the most open long-polls gets 429 for another until one ends", async () => {
    const before = await refusals("wait_open");
    const id = await submit(waiter, "db.export"); // stays pending
    const aborts = [new AbortController(), new AbortController()];
    const open = aborts.map((a) => gw.api(`/v1/requests/${id}?wait=30`, { key: waiter, signal: a.signal }).catch(() => undefined));
    for (let i = 0; i < 50 && (sample(await metrics(), "countersign_long_poll_waiters") ?? 0) < WAIT_MAX_OPEN; i++) await sleep(50);

    const res = await gw.api(`/v1/requests/${id}?wait=30`, { key: waiter });
    expect(res.headers.get("retry-after")).toBe("1");
    await expectRateLimited(res);
    expect(await refusals("wait_open")).toBe(before + 1);
    // Per key: another key opens its long-poll while this one is at its cap.
    const other = await submit(bystander, "logs.read");
    expect((await gw.api(`/v1/requests/${other}?wait=5`, { key: bystander })).status).toBe(200);

    // Closing one frees its slot.
    aborts[0]?.abort();
    let status = 0;
    for (let i = 0; i < 40; i++) {
      const r = await gw.api(`/v1/requests/${id}?wait=1`, { key: waiter });
      status = r.status;
      if (status !== 429) break;
      await sleep(50);
    }
    expect(status).toBe(200);
    aborts[1]?.abort();
    await Promise.all(open);
  });

  it("calls with bad keys from one address get 401, then 429 with Retry-After; a valid key from that address still works", async () => {
    const before = await refusals("unauthenticated");
    const forged = `cs_${"Z".repeat(12)}_${"B".repeat(32)}`;
    const forgedSecret = `${poller.slice(0, 15)}${"A".repeat(32)}`;
    // The allowance: UNAUTH_BURST failures, whatever form they take.
    await expectProblem(await gw.api("/v1/requests/req_00000000000000000000000000", { key: forged }), 401, "unauthorized");
    await expectProblem(await gw.api("/v1/requests", { method: "POST", json: {} }), 401, "unauthorized");
    await expectProblem(await gw.api("/v1/audit", { headers: { authorization: "Basic YWRtaW46YWRtaW4=" } }), 401, "unauthorized");

    // Then nothing without a valid key, on any authenticated route, however the call is dressed up.
    const refused = [
      await gw.api("/v1/requests/req_00000000000000000000000000", { key: forgedSecret }),
      await gw.api("/v1/requests", { method: "POST", key: `cs_${"Y".repeat(12)}_${"C".repeat(32)}`, json: { action: "a.b", summary: "x" } }),
      await gw.api("/v1/audit"),
      await gw.api("/metrics"),
      // X-Forwarded-For is not trusted unless COUNTERSIGN_TRUST_PROXY says so.
      await gw.api("/v1/requests/req_00000000000000000000000000", { key: forged, headers: { "x-forwarded-for": "203.0.113.50" } }),
    ];
    const waits = [];
    for (const r of refused) waits.push(await expectRateLimited(r));
    for (const w of waits) expect(w).toBeLessThanOrEqual(Math.ceil(1 / UNAUTH_RATE));

    // A valid key bypasses the address's allowance: reads, submissions and the admin API all work.
    expect((await gw.api("/v1/requests/req_00000000000000000000000000", { key: poller })).status).toBe(404);
    const id = await submit(poller, "logs.read");
    expect((await gw.api(`/v1/requests/${id}`, { key: poller })).status).toBe(200);
    expect((await gw.api("/v1/audit?limit=1", { key: admin })).status).toBe(200);
    // Routes without authentication are not affected.
    expect((await gw.api("/healthz")).status).toBe(200);
    expect(await refusals("unauthenticated")).toBe(before + refused.length);

    // After Retry-After, a bad key is told it is bad again.
    await sleep(Math.max(...waits) * 1000 + 100);
    await expectProblem(await gw.api("/v1/requests/req_00000000000000000000000000", { key: forged }), 401, "unauthorized");
  });

  it("/metrics shows the configured limits and the refusals by limit", async () => {
    const text = await metrics();
    expect(text).toContain("# TYPE countersign_rate_limit_per_second gauge");
    expect(text).toContain("# TYPE countersign_rate_limited_total counter");
    expect(sample(text, "countersign_rate_limit_per_second", { limit: "intake" })).toBe(50);
    expect(sample(text, "countersign_rate_limit_burst", { limit: "intake" })).toBe(100);
    expect(sample(text, "countersign_rate_limit_per_second", { limit: "wait" })).toBe(WAIT_RATE);
    expect(sample(text, "countersign_rate_limit_burst", { limit: "wait" })).toBe(WAIT_BURST);
    expect(sample(text, "countersign_rate_limit_per_second", { limit: "unauthenticated" })).toBe(UNAUTH_RATE);
    expect(sample(text, "countersign_rate_limit_burst", { limit: "unauthenticated" })).toBe(UNAUTH_BURST);
    expect(sample(text, "countersign_long_poll_max_open_per_key")).toBe(WAIT_MAX_OPEN);
    expect(sample(text, "countersign_rate_limited_total", { limit: "intake" })).toBe(0);
    expect(sample(text, "countersign_rate_limited_total", { limit: "wait" })).toBe(1);
    expect(sample(text, "countersign_rate_limited_total", { limit: "wait_open" })).toBeGreaterThanOrEqual(1);
    expect(sample(text, "countersign_rate_limited_total", { limit: "unauthenticated" })).toBe(5);
  });
});

describe("rate limits behind a trusted proxy (COUNTERSIGN_TRUST_PROXY)", () => {
  let gw: GatewayProcess;

  beforeAll(async () => {
    gw = await startGateway({
      engine: "pglite",
      policy: POLICY,
      env: { COUNTERSIGN_TRUST_PROXY: "loopback", COUNTERSIGN_UNAUTH_RATE_LIMIT: "0.1", COUNTERSIGN_UNAUTH_RATE_BURST: "2" },
    });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it("each forwarded client address has its own unauthenticated allowance", async () => {
    const from = (ip: string) => gw.api("/v1/audit", { headers: { "x-forwarded-for": ip } });
    await expectProblem(await from("203.0.113.1"), 401, "unauthorized");
    await expectProblem(await from("203.0.113.1"), 401, "unauthorized");
    await expectRateLimited(await from("203.0.113.1"));
    // Another client behind the same proxy is not held back by the first one.
    await expectProblem(await from("203.0.113.2"), 401, "unauthorized");
    // Addresses in one IPv6 /64 share an allowance.
    await expectProblem(await from("2001:db8:1:2::1"), 401, "unauthorized");
    await expectProblem(await from("2001:db8:1:2::2"), 401, "unauthorized");
    await expectRateLimited(await from("2001:db8:1:2:ffff::3"));
  });
});
