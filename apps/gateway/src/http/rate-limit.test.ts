import type { AddressInfo } from "node:net";
import { CountersignError, sha256Hex } from "@countersign/core";
import type { Database } from "@countersign/db";
import type { ServiceDeps } from "@countersign/services";
import { describe, expect, it } from "vitest";
import { EnvError, parseEnv } from "../env.ts";
import { createApp } from "./app.ts";
import { requireKey } from "./auth.ts";
import { addressBucket, ConcurrencyLimit, IdleMap, RateLimits, rateLimitSettings, TokenBuckets, UnauthenticatedLimit } from "./rate-limit.ts";
import type { Waiters } from "./waiters.ts";

/** A clock the test moves by hand (milliseconds). */
function manualClock(start = 1_000_000) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

const takeN = (b: TokenBuckets, key: string, n: number) => Array.from({ length: n }, () => b.take(key).ok);

describe("TokenBuckets", () => {
  it("allows a burst, then refuses, then refills at the rate", () => {
    const clock = manualClock();
    const b = new TokenBuckets({ ratePerSecond: 2, burst: 5, now: clock.now });
    expect(takeN(b, "k", 5)).toEqual([true, true, true, true, true]);
    expect(b.take("k")).toEqual({ ok: false, retryAfter: 1 });
    clock.advance(499);
    expect(b.take("k").ok).toBe(false);
    clock.advance(1); // 0.5 s at 2/s: one token
    expect(b.take("k").ok).toBe(true);
    expect(b.take("k").ok).toBe(false);
    clock.advance(10_000); // refills to the burst, never beyond
    expect(b.tokens("k")).toBe(5);
    expect(takeN(b, "k", 6)).toEqual([true, true, true, true, true, false]);
  });

  it("keys are independent", () => {
    const clock = manualClock();
    const b = new TokenBuckets({ ratePerSecond: 1, burst: 1, now: clock.now });
    expect(b.take("a").ok).toBe(true);
    expect(b.take("a").ok).toBe(false);
    expect(b.take("b").ok).toBe(true);
  });

  it("Retry-After is the whole seconds until the next token, at least 1", () => {
    const clock = manualClock();
    const slow = new TokenBuckets({ ratePerSecond: 0.25, burst: 1, now: clock.now });
    expect(slow.take("k").ok).toBe(true);
    expect(slow.take("k")).toEqual({ ok: false, retryAfter: 4 });
    clock.advance(2_500); // 0.625 of a token: 1.5 s to go
    expect(slow.take("k")).toEqual({ ok: false, retryAfter: 2 });
    const fast = new TokenBuckets({ ratePerSecond: 100, burst: 1, now: clock.now });
    fast.take("k");
    expect(fast.take("k")).toEqual({ ok: false, retryAfter: 1 });
    // A refused call takes nothing: waiting as told is enough.
    const b = new TokenBuckets({ ratePerSecond: 0.5, burst: 2, now: clock.now });
    takeN(b, "k", 2);
    const r = b.take("k");
    expect(r).toEqual({ ok: false, retryAfter: 2 });
    for (let i = 0; i < 10; i++) b.take("k");
    clock.advance(2_000);
    expect(b.take("k").ok).toBe(true);
  });

  it("give puts a token back, never beyond the burst", () => {
    const clock = manualClock();
    const b = new TokenBuckets({ ratePerSecond: 1, burst: 2, now: clock.now });
    takeN(b, "k", 2);
    b.give("k");
    expect(b.tokens("k")).toBe(1);
    b.give("k");
    b.give("k");
    expect(b.tokens("k")).toBe(2);
    b.give("never-seen");
    expect(b.size).toBe(1);
  });

  it("a rate of 0 disables the limit and stores nothing", () => {
    const b = new TokenBuckets({ ratePerSecond: 0, burst: 1 });
    expect(takeN(b, "k", 1000).every(Boolean)).toBe(true);
    expect(b.size).toBe(0);
    expect(b.enabled).toBe(false);
  });

  it("refuses a burst below 1", () => {
    expect(() => new TokenBuckets({ ratePerSecond: 1, burst: 0.5 })).toThrow(RangeError);
  });

  it("forgets buckets that have refilled, so idle keys cost no memory", () => {
    const clock = manualClock();
    const b = new TokenBuckets({ ratePerSecond: 10, burst: 20, now: clock.now });
    for (let i = 0; i < 100; i++) b.take(`k${i}`);
    expect(b.size).toBe(100);
    clock.advance(1_999); // not yet full (20 tokens at 10/s: 2 s)
    b.sweep();
    expect(b.size).toBe(100);
    b.take("k0"); // touched now: it stays
    clock.advance(1);
    b.take("fresh");
    expect(b.size).toBe(2);
    // Forgetting changes nothing: a forgotten bucket was full anyway.
    expect(b.tokens("k1")).toBe(20);
  });

  it("never holds more than maxEntries buckets, however many keys cycle through", () => {
    const clock = manualClock();
    const b = new TokenBuckets({ ratePerSecond: 1, burst: 3, maxEntries: 50, now: clock.now });
    for (let i = 0; i < 10_000; i++) {
      b.take(`attacker-${i}`);
      expect(b.size).toBeLessThanOrEqual(50);
    }
    expect(b.size).toBe(50);
    // The least recently used goes first: a key in active use survives the churn.
    const busy = new TokenBuckets({ ratePerSecond: 1, burst: 3, maxEntries: 3, now: clock.now });
    takeN(busy, "busy", 3);
    busy.take("x1");
    busy.take("busy");
    busy.take("x2");
    busy.take("x3"); // evicts x1, not busy
    expect(busy.take("busy").ok).toBe(false);
  });

  it("a clock that goes backwards refills nothing and breaks nothing", () => {
    const clock = manualClock();
    const b = new TokenBuckets({ ratePerSecond: 1, burst: 1, now: clock.now });
    b.take("k");
    clock.advance(-5_000);
    expect(b.take("k").ok).toBe(false);
  });
});

describe("IdleMap", () => {
  it("drops idle entries oldest first and the least recently set past the cap", () => {
    const m = new IdleMap<number>(3, 100);
    m.set("a", 1, 0);
    m.set("b", 2, 50);
    m.set("a", 3, 60); // touched: now newest
    m.sweep(120); // b idle 70 < 100: nothing dropped
    expect(m.size).toBe(2);
    m.sweep(150); // b idle 100: dropped; a idle 90 stays
    expect(m.peek("b")).toBeUndefined();
    expect(m.peek("a")?.value).toBe(3);
    m.set("c", 0, 151);
    m.set("d", 0, 152);
    m.set("e", 0, 153);
    expect(m.size).toBe(3);
    expect(m.peek("a")).toBeUndefined();
  });
});

describe("ConcurrencyLimit", () => {
  it("caps open calls per key and frees memory when a key has none open", () => {
    const c = new ConcurrencyLimit(2);
    const r1 = c.acquire("k");
    const r2 = c.acquire("k");
    expect(r1 && r2).toBeTruthy();
    expect(c.acquire("k")).toBeUndefined();
    expect(c.acquire("other")).toBeDefined();
    r1?.();
    r1?.(); // releasing twice frees one slot only
    expect(c.count("k")).toBe(1);
    const r3 = c.acquire("k");
    expect(c.acquire("k")).toBeUndefined();
    r2?.();
    r3?.();
    expect(c.count("k")).toBe(0);
    expect(c.size).toBe(1); // only "other"
  });

  it("0 disables it", () => {
    const c = new ConcurrencyLimit(0);
    for (let i = 0; i < 100; i++) expect(c.acquire("k")).toBeDefined();
    expect(c.size).toBe(0);
  });
});

describe("addressBucket", () => {
  it("IPv4 as is, IPv4-mapped IPv6 unwrapped, IPv6 by /64", () => {
    expect(addressBucket("203.0.113.7")).toBe("203.0.113.7");
    expect(addressBucket("::ffff:203.0.113.7")).toBe("203.0.113.7");
    expect(addressBucket("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
    expect(addressBucket("2001:db8:1:2::99")).toBe("2001:db8:1:2::/64");
    expect(addressBucket("2001:0db8:0001:0002:ffff::1")).toBe("2001:db8:1:2::/64");
    expect(addressBucket("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(addressBucket("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(addressBucket("::1")).toBe("0:0:0:0::/64");
    expect(addressBucket(undefined)).toBe("unknown");
  });
});

describe("UnauthenticatedLimit", () => {
  const setup = (ratePerSecond = 1, burst = 3) => {
    const clock = manualClock();
    let limited = 0;
    const u = new UnauthenticatedLimit({ ratePerSecond, burst, now: clock.now, onLimited: () => limited++ });
    return { clock, u, limited: () => limited };
  };
  const refused = async (p: Promise<unknown>) => {
    const e = await p.then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(CountersignError);
    expect((e as CountersignError).code).toBe("rate_limited");
    expect((e as CountersignError).retryAfter).toBeGreaterThanOrEqual(1);
  };
  const fail = async (u: UnauthenticatedLimit, addr: string, key?: string) => (await u.begin(addr, key)).done("unauthorized");

  it("failed attempts use up the address's allowance; then it is refused before any lookup, other addresses are not", async () => {
    const { u, clock, limited } = setup();
    await fail(u, "198.51.100.1");
    await fail(u, "198.51.100.1", "cs_guess1");
    await fail(u, "198.51.100.1", "cs_guess2");
    await refused(u.begin("198.51.100.1", "cs_guess3"));
    await refused(u.begin("198.51.100.1", undefined));
    expect(limited()).toBe(2);
    await fail(u, "198.51.100.2", "cs_guess4");
    clock.advance(1_000);
    await fail(u, "198.51.100.1", "cs_guess5");
    await refused(u.begin("198.51.100.1", "cs_guess6"));
  });

  it("a valid key costs nothing, is remembered, and passes even from an address that is out of allowance", async () => {
    const { u } = setup();
    for (let i = 0; i < 10; i++) (await u.begin("198.51.100.1", "cs_valid")).done("ok");
    expect(u.buckets.tokens("198.51.100.1")).toBe(3);
    for (let i = 0; i < 3; i++) await fail(u, "198.51.100.1", `cs_bad${i}`);
    await refused(u.begin("198.51.100.1", "cs_bad9"));
    const a = await u.begin("198.51.100.1", "cs_valid");
    a.done("ok");
    // Once revoked it fails like any other key and is forgotten.
    (await u.begin("198.51.100.1", "cs_valid")).done("unauthorized");
    await refused(u.begin("198.51.100.1", "cs_valid"));
  });

  it("a lookup that errors (database down) gives its token back", async () => {
    const { u } = setup(1, 1);
    (await u.begin("198.51.100.1", "cs_k")).done("error");
    (await u.begin("198.51.100.1", "cs_k")).done("error");
    expect(u.buckets.tokens("198.51.100.1")).toBe(1);
  });

  it("concurrent calls with the same new key wait for the first lookup instead of each taking a token", async () => {
    const { u } = setup(1, 2);
    const first = await u.begin("198.51.100.1", "cs_new");
    const rest = Array.from({ length: 20 }, () => u.begin("198.51.100.1", "cs_new"));
    first.done("ok");
    for (const a of await Promise.all(rest)) a.done("ok");
    expect(u.buckets.tokens("198.51.100.1")).toBe(2);
    // Different guesses in parallel each take a token: only `burst` of them get a lookup.
    const guesses = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => u.begin("198.51.100.9", `cs_guess${i}`)));
    expect(guesses.filter((g) => g.status === "fulfilled")).toHaveLength(2);
  });

  it("remembers a bounded number of valid keys", async () => {
    const u = new UnauthenticatedLimit({ ratePerSecond: 1, burst: 1, maxKnownKeys: 5 });
    for (let i = 0; i < 50; i++) (await u.begin("198.51.100.1", `cs_k${i}`)).done("ok");
    expect(u.knownKeys).toBe(5);
  });

  it("a rate of 0 disables it", async () => {
    const u = new UnauthenticatedLimit({ ratePerSecond: 0, burst: 1 });
    for (let i = 0; i < 100; i++) await fail(u, "198.51.100.1", `cs_${i}`);
    expect(u.buckets.size).toBe(0);
  });
});

describe("RateLimits", () => {
  it("counts each refusal by limit", () => {
    const clock = manualClock();
    const seen: string[] = [];
    const limits = new RateLimits(
      { intake: { ratePerSecond: 1, burst: 1 }, wait: { ratePerSecond: 1, burst: 1, maxOpen: 1 } },
      { now: clock.now, onLimited: (l) => seen.push(l) },
    );
    const req = { apiKey: { id: "key_1" } } as never;
    const res = { once() {} } as never;
    const next = () => {};
    limits.intake(req, res, next);
    expect(() => limits.intake(req, res, next)).toThrow(CountersignError);
    limits.openWait(req, res);
    expect(() => limits.openWait(req, res)).toThrow(/already holds 1 long-polls/);
    expect(seen).toEqual(["intake", "wait_open"]);
  });

  it("settings come from the environment, with defaults that SDK polling never trips", () => {
    const s = rateLimitSettings(parseEnv({}));
    expect(s).toEqual({
      intake: { ratePerSecond: 50, burst: 100 },
      wait: { ratePerSecond: 20, burst: 200, maxOpen: 1000 },
      unauthenticated: { ratePerSecond: 5, burst: 20 },
      trustProxy: undefined,
    });
    const custom = rateLimitSettings(
      parseEnv({
        COUNTERSIGN_WAIT_RATE_LIMIT: "0",
        COUNTERSIGN_WAIT_RATE_BURST: "5",
        COUNTERSIGN_WAIT_MAX_OPEN: "0",
        COUNTERSIGN_UNAUTH_RATE_LIMIT: "0.5",
        COUNTERSIGN_UNAUTH_RATE_BURST: "2",
        COUNTERSIGN_TRUST_PROXY: "loopback, 10.0.0.0/8,fd00::/8",
      }),
    );
    expect(custom.wait).toEqual({ ratePerSecond: 0, burst: 5, maxOpen: 0 });
    expect(custom.unauthenticated).toEqual({ ratePerSecond: 0.5, burst: 2 });
    expect(custom.trustProxy).toEqual(["loopback", "10.0.0.0/8", "fd00::/8"]);
    expect(rateLimitSettings(parseEnv({ COUNTERSIGN_TRUST_PROXY: "1" })).trustProxy).toBe(1);
  });

  it("bad values are all reported at boot", () => {
    let err: unknown;
    try {
      parseEnv({
        COUNTERSIGN_WAIT_RATE_LIMIT: "-1",
        COUNTERSIGN_WAIT_RATE_BURST: "0",
        COUNTERSIGN_WAIT_MAX_OPEN: "1.5",
        COUNTERSIGN_UNAUTH_RATE_LIMIT: "fast",
        COUNTERSIGN_UNAUTH_RATE_BURST: "0",
        COUNTERSIGN_TRUST_PROXY: "true",
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EnvError);
    expect((err as EnvError).problems.map((p) => p.variable).sort()).toEqual([
      "COUNTERSIGN_TRUST_PROXY",
      "COUNTERSIGN_UNAUTH_RATE_BURST",
      "COUNTERSIGN_UNAUTH_RATE_LIMIT",
      "COUNTERSIGN_WAIT_MAX_OPEN",
      "COUNTERSIGN_WAIT_RATE_BURST",
      "COUNTERSIGN_WAIT_RATE_LIMIT",
    ]);
    for (const bad of ["0", "*", "10.0.0.0/33", "example.com", ","]) {
      expect(() => parseEnv({ COUNTERSIGN_TRUST_PROXY: bad }), bad).toThrow(EnvError);
    }
  });
});

describe("the unauthenticated limit in the app", () => {
  it("a throttled address gets 429 without a key lookup; a valid key still gets through; X-Forwarded-For is ignored", async () => {
    const valid = `cs_${"A".repeat(12)}_${"v".repeat(32)}`;
    let lookups = 0;
    const row = { id: "key_1", name: "agent", owner: "o@example.com", scopes: ["admin"], signingSecret: "s", hash: sha256Hex(valid), revokedAt: null };
    const prisma = {
      apiKey: {
        findUnique: async ({ where }: { where: { prefix: string } }) => {
          lookups++;
          return where.prefix === valid.slice(0, 15) ? row : null;
        },
      },
    };
    const log = { debug() {}, info() {}, warn() {}, error() {}, child: () => log } as never;
    const deps = { db: { prisma } as unknown as Database, publicUrl: "http://localhost", clock: () => new Date(), logger: log } as unknown as ServiceDeps;
    const limits = new RateLimits({ unauthenticated: { ratePerSecond: 0.01, burst: 2 } });
    const app = createApp({
      deps,
      waiters: {} as Waiters,
      log,
      rateLimit: 0,
      rateBurst: 1,
      limits,
      // Any route behind requireKey will do; /metrics is the one createApp takes from outside.
      metrics: [
        requireKey(deps),
        (_req, res) => {
          res.send("ok");
        },
      ],
      ready: async () => ({ ok: true, detail: {} }),
    });
    const server = app.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
    const get = (key?: string, headers: Record<string, string> = {}) =>
      fetch(url, { headers: { ...headers, ...(key ? { authorization: `Bearer ${key}` } : {}) } });
    try {
      expect((await get(valid)).status).toBe(200);
      expect((await get(`cs_${"B".repeat(12)}_${"x".repeat(32)}`)).status).toBe(401);
      expect((await get()).status).toBe(401);
      const before = lookups;
      for (const key of [`cs_${"C".repeat(12)}_${"x".repeat(32)}`, undefined, `${valid.slice(0, 16)}${"w".repeat(32)}`]) {
        const res = await get(key, { "x-forwarded-for": "203.0.113.9" });
        expect(res.status).toBe(429);
        expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
        expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        expect(((await res.json()) as { code: string }).code).toBe("rate_limited");
      }
      expect(lookups).toBe(before);
      expect((await get(valid)).status).toBe(200);
      expect(lookups).toBe(before + 1);
    } finally {
      server.close();
    }
  });
});
