import { lookup } from "node:dns/promises";
import { CountersignError } from "@countersign/core";
import ipaddr from "ipaddr.js";

/**
 * SSRF guard for callback URLs. Callbacks must be https and must not resolve to
 * loopback, private, link-local (cloud metadata), unique-local, unspecified or other
 * non-public addresses, unless COUNTERSIGN_CALLBACK_ALLOW says so.
 *
 * Allow-list entries (comma-separated):
 *   host.example       this host may resolve to non-public addresses (https still required)
 *   10.1.0.0/16        addresses in this range are allowed
 *   http:localhost     like a host entry, and plain http is allowed for it
 *   http:127.0.0.0/8   like a CIDR entry, and plain http is allowed for IP literals in it
 */
export interface CallbackGuard {
  /** Checks the URL and its DNS answers; returns the vetted addresses. */
  check(url: string): Promise<string[]>;
  /** Checks one resolved address for a host, at connect time (guards against DNS rebinding). */
  checkAddress(host: string, address: string): void;
}

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

const BLOCKED_RANGES = new Set([
  "unspecified",
  "broadcast",
  "multicast",
  "linkLocal",
  "loopback",
  "private",
  "uniqueLocal",
  "carrierGradeNat",
  "reserved",
  "benchmarking",
  "amt",
  "as112",
  "as112v6",
  "deprecated",
  "orchid2",
  "droneRemoteIdProtocolEntityTags",
  "ipv4Mapped",
  "rfc6145",
  "rfc6052",
  "6to4",
  "teredo",
  "discard",
]);

export function parseCallbackAllow(spec: string | undefined): { hosts: Set<string>; httpHosts: Set<string>; ranges: Range[]; httpRanges: Range[] } {
  const out = { hosts: new Set<string>(), httpHosts: new Set<string>(), ranges: [] as Range[], httpRanges: [] as Range[] };
  for (const raw of (spec ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const http = raw.startsWith("http:");
    const entry = (http ? raw.slice(5) : raw).toLowerCase();
    if (entry.includes("/")) {
      let range: Range;
      try {
        range = ipaddr.parseCIDR(entry);
      } catch {
        throw new Error(`COUNTERSIGN_CALLBACK_ALLOW: "${raw}" is not a valid CIDR`);
      }
      (http ? out.httpRanges : out.ranges).push(range);
      if (http) out.ranges.push(range);
    } else {
      if (!entry) throw new Error(`COUNTERSIGN_CALLBACK_ALLOW: empty entry in "${spec}"`);
      out.hosts.add(entry);
      if (http) out.httpHosts.add(entry);
    }
  }
  return out;
}

function normalizeAddr(address: string): ipaddr.IPv4 | ipaddr.IPv6 {
  const a = ipaddr.parse(address);
  return a.kind() === "ipv6" && (a as ipaddr.IPv6).isIPv4MappedAddress() ? (a as ipaddr.IPv6).toIPv4Address() : a;
}

const inRange = (a: ipaddr.IPv4 | ipaddr.IPv6, ranges: Range[]) => ranges.some(([net, bits]) => net.kind() === a.kind() && a.match(net, bits));

export function createCallbackGuard(spec: string | undefined, resolve: (host: string) => Promise<string[]> = defaultResolve): CallbackGuard {
  const allow = parseCallbackAllow(spec);
  const forbid = (why: string) => new CountersignError("callback_url_forbidden", why, { errors: [{ path: "callbackUrl", message: why }] });

  function checkAddress(host: string, address: string): void {
    if (allow.hosts.has(host)) return;
    let a: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      a = normalizeAddr(address);
    } catch {
      throw forbid(`${host} resolved to an unparseable address`);
    }
    if (inRange(a, allow.ranges)) return;
    const range = a.range();
    if (BLOCKED_RANGES.has(range)) {
      throw forbid(`${host} resolves to ${a.toString()}, a ${range} address; callbacks may only reach public addresses (see COUNTERSIGN_CALLBACK_ALLOW)`);
    }
  }

  return {
    checkAddress,
    async check(raw) {
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw forbid("callbackUrl is not a valid URL");
      }
      const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
      if (url.username || url.password) throw forbid("callbackUrl must not contain credentials");
      if (url.protocol === "http:") {
        const literal = ipaddr.isValid(host) ? normalizeAddr(host) : undefined;
        if (!allow.httpHosts.has(host) && !(literal && inRange(literal, allow.httpRanges))) {
          throw forbid("callbackUrl must use https (plain http needs an http: entry in COUNTERSIGN_CALLBACK_ALLOW)");
        }
      } else if (url.protocol !== "https:") {
        throw forbid("callbackUrl must use https");
      }
      const addresses = ipaddr.isValid(host)
        ? [host]
        : await resolve(host).catch(() => {
            throw forbid(`cannot resolve ${host}`);
          });
      if (addresses.length === 0) throw forbid(`cannot resolve ${host}`);
      for (const a of addresses) checkAddress(host, a);
      return addresses;
    },
  };
}

async function defaultResolve(host: string): Promise<string[]> {
  const r = await lookup(host, { all: true, verbatim: true });
  return r.map((x) => x.address);
}
