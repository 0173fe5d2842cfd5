import { lookup } from "node:dns/promises";
import { CountersignError } from "@countersign/core";
import ipaddr from "ipaddr.js";
import { type CallbackAllowList, EMPTY_ALLOW_LIST, type IpRange } from "./allow-list.ts";

/**
 * SSRF guard for callback URLs. Callbacks must be https and must not resolve to
 * loopback, private, link-local (cloud metadata), unique-local, unspecified or other
 * non-public addresses, unless COUNTERSIGN_CALLBACK_ALLOW says so (see allow-list.ts).
 */
export interface CallbackGuard {
  /** Checks the URL and its DNS answers; returns the vetted addresses. */
  check(url: string): Promise<string[]>;
  /** Checks one resolved address for a host and port, at connect time (guards against DNS rebinding). */
  checkAddress(host: string, address: string, port: number): void;
}

// ipaddr.js calls ::/96 (IPv4-compatible, RFC 4291 §2.5.5.1, deprecated) "unicast", but
// `::127.0.0.1` embeds a loopback address and some stacks still route it.
const IPV4_COMPATIBLE: IpRange = ipaddr.parseCIDR("::/96");

function normalizeAddr(address: string): ipaddr.IPv4 | ipaddr.IPv6 {
  const a = ipaddr.parse(address);
  return a.kind() === "ipv6" && (a as ipaddr.IPv6).isIPv4MappedAddress() ? (a as ipaddr.IPv6).toIPv4Address() : a;
}

const matches = (a: ipaddr.IPv4 | ipaddr.IPv6, [net, bits]: IpRange) => net.kind() === a.kind() && a.match(net, bits);
const portOk = (allowed: number | null, port: number) => allowed === null || allowed === port;

function defaultPort(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === "http:" ? 80 : 443;
}

export function createCallbackGuard(allow: CallbackAllowList = EMPTY_ALLOW_LIST, resolve: (host: string) => Promise<string[]> = defaultResolve): CallbackGuard {
  const forbid = (why: string) => new CountersignError("callback_url_forbidden", why, { errors: [{ path: "callbackUrl", message: why }] });
  const hostEntry = (host: string, port: number) => allow.hosts.find((h) => h.host === host && portOk(h.port, port));

  function checkAddress(host: string, address: string, port: number): void {
    if (hostEntry(host, port)) return;
    let a: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      a = normalizeAddr(address);
    } catch {
      throw forbid(`${host} resolved to an unparseable address`);
    }
    if (allow.ranges.some((r) => matches(a, r.range) && portOk(r.port, port))) return;
    const range = a.range();
    // Only ordinary unicast is public. Everything ipaddr.js names is refused, now and in
    // later versions: loopback, private, link-local, unique-local, site-local, multicast,
    // reserved, and every IPv6 form that carries an IPv4 address (mapped, translated,
    // NAT64, 6to4, Teredo).
    if (range !== "unicast") {
      const listed = allow.ranges.some((r) => matches(a, r.range)) ? ` (COUNTERSIGN_CALLBACK_ALLOW lists it for other ports only, not ${port})` : "";
      throw forbid(
        `${host} resolves to ${a.toString()}, a ${range} address; callbacks may only reach public addresses${listed || " (see COUNTERSIGN_CALLBACK_ALLOW)"}`,
      );
    }
    if (a.kind() === "ipv6" && matches(a, IPV4_COMPATIBLE)) {
      throw forbid(`${host} resolves to ${a.toString()}, an IPv4-compatible IPv6 address; callbacks may only reach public addresses`);
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
      const host = url.hostname
        .replace(/^\[|\]$/g, "")
        .toLowerCase()
        .replace(/\.$/, "");
      if (url.username || url.password) throw forbid("callbackUrl must not contain credentials");
      const port = defaultPort(url);
      if (url.protocol === "http:") {
        const literal = ipaddr.isValid(host) ? normalizeAddr(host) : undefined;
        const byHost = allow.hosts.some((h) => h.http && h.host === host && portOk(h.port, port));
        const byRange = literal !== undefined && allow.ranges.some((r) => r.http && matches(literal, r.range) && portOk(r.port, port));
        if (!byHost && !byRange) {
          throw forbid(`callbackUrl must use https (plain http needs an http: entry for ${host}:${port} in COUNTERSIGN_CALLBACK_ALLOW)`);
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
      for (const a of addresses) checkAddress(host, a, port);
      return addresses;
    },
  };
}

async function defaultResolve(host: string): Promise<string[]> {
  const r = await lookup(host, { all: true, verbatim: true });
  return r.map((x) => x.address);
}
