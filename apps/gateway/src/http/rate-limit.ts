// Brings in the Express.Request augmentation (req.apiKey) wherever this module is compiled.

import { createHash } from "node:crypto";
import { isIP } from "node:net";
import { CountersignError } from "@countersign/core";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { z } from "zod";
import type {} from "./auth.ts";

/**
 * The gateway's abuse limits, all in-process (each replica enforces its own share):
 *
 * - `intake`: `POST /v1/requests`, a token bucket per API key;
 * - `wait`: long-poll opens (`GET /v1/requests/:id?wait=N`, N > 0), a token bucket per API
 *   key, plus a cap on the long-polls one key holds open at once (`wait_open`);
 * - `unauthenticated`: calls that fail API-key authentication, a token bucket per client
 *   address. Once an address has used it up, its calls without a key this gateway knows to
 *   be valid are refused with 429 before any key lookup.
 *
 * Every refusal is a `rate_limited` CountersignError with `retryAfter`, which the HTTP edge
 * turns into a 429 problem+json with Retry-After.
 */

/** Milliseconds on a monotonic clock. */
export type Clock = () => number;

const monotonic: Clock = () => performance.now();

/** Buckets (or known keys) kept per map before the least recently used is dropped. */
export const DEFAULT_MAX_ENTRIES = 100_000;

/**
 * A Map kept in least-recently-touched order, bounded two ways: entries untouched for
 * `idleMs` are dropped (lazily, a few per call, oldest first), and past `maxEntries` the
 * least recently touched entry is dropped to make room.
 */
export class IdleMap<V> {
  private readonly map = new Map<string, { value: V; at: number }>();

  constructor(
    readonly maxEntries: number,
    readonly idleMs: number,
  ) {
    if (!(maxEntries >= 1)) throw new RangeError("maxEntries must be at least 1");
  }

  get size(): number {
    return this.map.size;
  }

  /** The entry and when it was last touched; does not touch it. */
  peek(key: string): { value: V; at: number } | undefined {
    return this.map.get(key);
  }

  /** Stores `value` as touched at `now`, moving it to the most recently used end. */
  set(key: string, value: V, now: number): void {
    this.map.delete(key);
    this.map.set(key, { value, at: now });
    while (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value as string);
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  /** Drops entries idle for `idleMs` or longer. Oldest first, so it stops at the first fresh one. */
  sweep(now: number): void {
    for (const [key, e] of this.map) {
      if (now - e.at < this.idleMs) break;
      this.map.delete(key);
    }
  }
}

export interface TokenBucketOptions {
  /** Tokens added per second. 0 (or less) disables the limit: every take succeeds and nothing is stored. */
  ratePerSecond: number;
  /** Bucket size: calls allowed at once after a quiet spell. At least 1. */
  burst: number;
  /** Buckets kept; past it the least recently used one is dropped (and starts over full). */
  maxEntries?: number;
  now?: Clock;
}

export type Take = { ok: true } | { ok: false; retryAfter: number };

/**
 * One token bucket per key: each holds up to `burst` tokens, refills at `ratePerSecond`,
 * and a call takes one token. A bucket idle long enough to have refilled is
 * indistinguishable from a new one, so it is forgotten; memory is bounded by `maxEntries`.
 */
export class TokenBuckets {
  readonly ratePerSecond: number;
  readonly burst: number;
  private readonly now: Clock;
  private readonly buckets: IdleMap<number>;

  constructor(opts: TokenBucketOptions) {
    if (!(opts.burst >= 1)) throw new RangeError("burst must be at least 1");
    this.ratePerSecond = Math.max(0, opts.ratePerSecond);
    this.burst = opts.burst;
    this.now = opts.now ?? monotonic;
    const fullAfterMs = this.ratePerSecond > 0 ? (this.burst / this.ratePerSecond) * 1000 : Number.POSITIVE_INFINITY;
    this.buckets = new IdleMap(opts.maxEntries ?? DEFAULT_MAX_ENTRIES, fullAfterMs);
  }

  get enabled(): boolean {
    return this.ratePerSecond > 0;
  }

  /** Buckets held in memory. */
  get size(): number {
    return this.buckets.size;
  }

  /** The tokens `key` has now (`burst` for a key without a bucket). */
  tokens(key: string): number {
    return this.refilled(key, this.now());
  }

  /** Takes a token from `key`'s bucket, or says how many whole seconds until one is there. */
  take(key: string): Take {
    if (!this.enabled) return { ok: true };
    const now = this.now();
    this.buckets.sweep(now);
    const tokens = this.refilled(key, now);
    if (tokens < 1) {
      this.buckets.set(key, tokens, now);
      return { ok: false, retryAfter: Math.max(1, Math.ceil((1 - tokens) / this.ratePerSecond)) };
    }
    this.buckets.set(key, tokens - 1, now);
    return { ok: true };
  }

  /** Puts a token back (never beyond `burst`), for a call that turned out not to count. */
  give(key: string): void {
    if (!this.enabled) return;
    const now = this.now();
    if (!this.buckets.peek(key)) return;
    this.buckets.set(key, Math.min(this.burst, this.refilled(key, now) + 1), now);
  }

  /** Drops buckets that have refilled. Runs on every take; exposed for tests. */
  sweep(): void {
    this.buckets.sweep(this.now());
  }

  private refilled(key: string, now: number): number {
    const b = this.buckets.peek(key);
    if (!b) return this.burst;
    return Math.min(this.burst, b.value + (Math.max(0, now - b.at) / 1000) * this.ratePerSecond);
  }
}

/** How many calls each key has open at once, up to `max` (0 disables). Keys with none open take no memory. */
export class ConcurrencyLimit {
  private readonly open = new Map<string, number>();

  constructor(readonly max: number) {}

  get enabled(): boolean {
    return this.max > 0;
  }

  /** Keys with at least one call open. */
  get size(): number {
    return this.open.size;
  }

  count(key: string): number {
    return this.open.get(key) ?? 0;
  }

  /** Takes a slot for `key`: a release function (safe to call twice), or undefined when `key` holds `max` already. */
  acquire(key: string): (() => void) | undefined {
    if (!this.enabled) return () => {};
    const n = this.count(key);
    if (n >= this.max) return undefined;
    this.open.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.count(key) - 1;
      if (left > 0) this.open.set(key, left);
      else this.open.delete(key);
    };
  }
}

/**
 * The bucket a client address counts against: an IPv4 address (IPv4-mapped IPv6 unwrapped)
 * on its own, an IPv6 address by its /64, since one host commonly holds a whole /64.
 */
export function addressBucket(address: string | undefined): string {
  if (!address) return "unknown";
  const bare = address.replace(/%.*$/, "");
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(bare);
  if (mapped) return mapped[1] as string;
  if (isIP(bare) !== 6) return bare;
  const [head = "", tail] = bare.split("::");
  const groups = (s: string | undefined) => (s ? s.split(":") : []);
  const h = groups(head);
  const t = groups(tail);
  const full = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill("0"), ...t];
  return `${full
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}

export type AuthOutcome = "ok" | "unauthorized" | "error";

/** One key authentication under the unauthenticated limit; `done` must be called once, whatever happens. */
export interface AuthAttempt {
  done(outcome: AuthOutcome): void;
}

const NOTHING: AuthAttempt = { done() {} };

export interface UnauthenticatedLimitOptions extends TokenBucketOptions {
  /** Valid keys remembered (as SHA-256 fingerprints) so they skip the address's allowance. */
  maxKnownKeys?: number;
  /** How long an unused valid key stays remembered. */
  knownKeyIdleMs?: number;
  onLimited?: () => void;
}

/**
 * Throttles key guessing per client address without getting in the way of valid keys:
 *
 * - a call without a well-formed key takes a token from its address's bucket;
 * - a key this gateway has accepted before (remembered by fingerprint) is looked up as
 *   usual and costs a token only if it now fails (revoked);
 * - any other key takes a token before the lookup, given back if the key proves valid.
 *   Concurrent calls presenting the same such key wait for the first one's lookup, so a
 *   valid key's first burst of parallel calls costs one token, not one each.
 *
 * An address with no token left gets 429 before any lookup: guessing costs no query.
 */
export class UnauthenticatedLimit {
  readonly buckets: TokenBuckets;
  private readonly known: IdleMap<true>;
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly now: Clock;
  private readonly onLimited: () => void;

  constructor(opts: UnauthenticatedLimitOptions) {
    this.buckets = new TokenBuckets(opts);
    this.now = opts.now ?? monotonic;
    this.known = new IdleMap(opts.maxKnownKeys ?? 10_000, opts.knownKeyIdleMs ?? 3_600_000);
    this.onLimited = opts.onLimited ?? (() => {});
  }

  /** Keys remembered as valid. */
  get knownKeys(): number {
    return this.known.size;
  }

  /** Call before looking `presented` up; throws `rate_limited` when `address` has no allowance left. */
  async begin(address: string | undefined, presented: string | undefined): Promise<AuthAttempt> {
    if (!this.buckets.enabled) return NOTHING;
    const addr = addressBucket(address);
    if (presented === undefined) {
      this.charge(addr);
      return NOTHING;
    }
    const fp = createHash("sha256").update(presented).digest("hex");
    for (;;) {
      this.known.sweep(this.now());
      if (this.known.peek(fp)) {
        return {
          done: (outcome) => {
            if (outcome === "ok") this.known.set(fp, true, this.now());
            else if (outcome === "unauthorized") {
              this.known.delete(fp);
              this.buckets.take(addr);
            }
          },
        };
      }
      const flight = this.inflight.get(fp);
      if (!flight) break;
      await flight;
    }
    this.charge(addr);
    let settle = () => {};
    this.inflight.set(
      fp,
      new Promise<void>((r) => {
        settle = r;
      }),
    );
    let settled = false;
    return {
      done: (outcome) => {
        if (settled) return;
        settled = true;
        if (outcome !== "unauthorized") this.buckets.give(addr);
        if (outcome === "ok") this.known.set(fp, true, this.now());
        this.inflight.delete(fp);
        settle();
      },
    };
  }

  private charge(addr: string): void {
    const t = this.buckets.take(addr);
    if (t.ok) return;
    this.onLimited();
    throw new CountersignError("rate_limited", "Too many calls without a valid API key from this address; wait before trying again.", {
      retryAfter: t.retryAfter,
    });
  }
}

const PROXY_NAMES = new Set(["loopback", "linklocal", "uniquelocal"]);
const isProxyAddress = (s: string) => {
  if (PROXY_NAMES.has(s)) return true;
  const [addr = "", bits, ...rest] = s.split("/");
  const v = isIP(addr);
  if (!v || rest.length > 0) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (v === 4 ? 32 : 128));
};

/**
 * Which proxies in front of the gateway may name the client in X-Forwarded-For (express's
 * `trust proxy`): a hop count, or the proxies' addresses, subnets and `loopback`,
 * `linklocal`, `uniquelocal`. Trusting every hop would let any client pick its address.
 */
export const TrustProxySpec = z.string().transform((s, c): number | string[] => {
  if (/^\d+$/.test(s) && Number(s) >= 1 && Number(s) <= 32) return Number(s);
  const entries = s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
  const bad = entries.filter((x) => !isProxyAddress(x));
  if (entries.length === 0 || bad.length > 0) {
    c.addIssue({
      code: "custom",
      message: `must be a hop count (1-32) or comma-separated proxy addresses or subnets (or loopback, linklocal, uniquelocal)${bad.length ? `; not an address: ${bad.join(", ")}` : ""}`,
    });
    return z.NEVER;
  }
  return entries;
});

export type LimitName = "intake" | "wait" | "wait_open" | "unauthenticated";

export interface RateLimitSettings {
  intake: { ratePerSecond: number; burst: number };
  wait: { ratePerSecond: number; burst: number; maxOpen: number };
  unauthenticated: { ratePerSecond: number; burst: number };
  /** Express's `trust proxy` (hop count or proxy addresses); unset: the socket's peer address is the client. */
  trustProxy?: number | string[] | undefined;
}

const OFF = { ratePerSecond: 0, burst: 1 };

/** The settings from the parsed environment (env.ts). */
export function rateLimitSettings(env: {
  COUNTERSIGN_RATE_LIMIT: number;
  COUNTERSIGN_RATE_BURST: number;
  COUNTERSIGN_WAIT_RATE_LIMIT: number;
  COUNTERSIGN_WAIT_RATE_BURST: number;
  COUNTERSIGN_WAIT_MAX_OPEN: number;
  COUNTERSIGN_UNAUTH_RATE_LIMIT: number;
  COUNTERSIGN_UNAUTH_RATE_BURST: number;
  COUNTERSIGN_TRUST_PROXY?: number | string[] | undefined;
}): RateLimitSettings {
  return {
    intake: { ratePerSecond: env.COUNTERSIGN_RATE_LIMIT, burst: env.COUNTERSIGN_RATE_BURST },
    wait: { ratePerSecond: env.COUNTERSIGN_WAIT_RATE_LIMIT, burst: env.COUNTERSIGN_WAIT_RATE_BURST, maxOpen: env.COUNTERSIGN_WAIT_MAX_OPEN },
    unauthenticated: { ratePerSecond: env.COUNTERSIGN_UNAUTH_RATE_LIMIT, burst: env.COUNTERSIGN_UNAUTH_RATE_BURST },
    trustProxy: env.COUNTERSIGN_TRUST_PROXY,
  };
}

declare global {
  namespace Express {
    interface Request {
      /** Set by the app for every request; requireKey consults its unauthenticated limit. */
      rateLimits?: RateLimits;
    }
  }
}

/** The three limits of one app. Settings left out are off. */
export class RateLimits {
  readonly settings: RateLimitSettings;
  readonly unauthenticated: UnauthenticatedLimit;
  private readonly intakeBuckets: TokenBuckets;
  private readonly waitBuckets: TokenBuckets;
  private readonly waitOpen: ConcurrencyLimit;
  private readonly onLimited: (limit: LimitName) => void;

  constructor(settings: Partial<RateLimitSettings> = {}, opts: { onLimited?: (limit: LimitName) => void; now?: Clock } = {}) {
    this.settings = {
      intake: settings.intake ?? OFF,
      wait: settings.wait ?? { ...OFF, maxOpen: 0 },
      unauthenticated: settings.unauthenticated ?? OFF,
      trustProxy: settings.trustProxy,
    };
    this.onLimited = opts.onLimited ?? (() => {});
    this.intakeBuckets = new TokenBuckets({ ...this.settings.intake, now: opts.now });
    this.waitBuckets = new TokenBuckets({ ...this.settings.wait, now: opts.now });
    this.waitOpen = new ConcurrencyLimit(this.settings.wait.maxOpen);
    this.unauthenticated = new UnauthenticatedLimit({ ...this.settings.unauthenticated, now: opts.now, onLimited: () => this.onLimited("unauthenticated") });
  }

  /** The client's address: the socket's peer, or with `trust proxy` set, what express derives from X-Forwarded-For. */
  clientAddress(req: Request): string | undefined {
    return this.settings.trustProxy !== undefined ? req.ip : req.socket.remoteAddress;
  }

  /** Makes the limits reachable from requireKey; mounted first on the app. */
  readonly attach: RequestHandler = (req, _res, next) => {
    req.rateLimits = this;
    next();
  };

  /** After requireKey on `POST /v1/requests`. */
  readonly intake: RequestHandler = (req: Request, _res: Response, next: NextFunction) => {
    if (!req.apiKey) return next();
    this.takeIntake(req.apiKey.id);
    next();
  };

  /** One intake for the key, from any surface (the REST API, an MCP tools/call), or throws `rate_limited`. */
  takeIntake(keyId: string): void {
    const t = this.intakeBuckets.take(keyId);
    if (!t.ok) this.refuse("intake", `This API key is limited to ${this.settings.intake.ratePerSecond} requests per second.`, t.retryAfter);
  }

  /**
   * Opens a long-poll for the request's key, or throws `rate_limited`: over the key's rate of
   * opens, or with `maxOpen` long-polls already open. The slot is released when the response
   * finishes or the connection closes.
   */
  openWait(req: Request, res: Response): void {
    const key = req.apiKey?.id;
    if (!key) return;
    const release = this.waitOpen.acquire(key);
    if (!release) {
      this.refuse("wait_open", `This API key already holds ${this.settings.wait.maxOpen} long-polls open; wait for one to end.`, 1);
    }
    const t = this.waitBuckets.take(key);
    if (!t.ok) {
      release();
      this.refuse("wait", `This API key may open ${this.settings.wait.ratePerSecond} long-polls per second.`, t.retryAfter);
    }
    res.once("finish", release);
    res.once("close", release);
  }

  private refuse(limit: LimitName, message: string, retryAfter: number): never {
    this.onLimited(limit);
    throw new CountersignError("rate_limited", message, { retryAfter });
  }
}
