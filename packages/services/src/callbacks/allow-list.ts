import ipaddr from "ipaddr.js";
import { z } from "zod";

export type IpRange = [ipaddr.IPv4 | ipaddr.IPv6, number];

interface Entry {
  /** Plain http is allowed for this entry. */
  http: boolean;
  /** Only this port; null allows any port. */
  port: number | null;
}
export interface HostEntry extends Entry {
  host: string;
}
export interface RangeEntry extends Entry {
  range: IpRange;
}

/** COUNTERSIGN_CALLBACK_ALLOW, parsed once at start-up. */
export interface CallbackAllowList {
  hosts: HostEntry[];
  ranges: RangeEntry[];
}

export const EMPTY_ALLOW_LIST: CallbackAllowList = { hosts: [], ranges: [] };

const HOST = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/;

function parsePort(raw: string, s: string): number | string {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) return `"${raw}": port must be a number from 1 to 65535`;
  return Number(s);
}

/**
 * Parses one entry. The grammar, after an optional `http:` prefix:
 *   host.example | host.example:8443 | 10.1.0.0/16 | 10.1.0.0/16:9000 | 127.0.0.1 | 127.0.0.1:9000
 *   [::1] | [::1]:9000 | [fd00::/8] | [fd00::/8]:9000 (IPv6 in brackets when a port follows)
 */
function parseEntry(raw: string): { host: HostEntry } | { range: RangeEntry } | { problem: string } {
  const http = raw.toLowerCase().startsWith("http:");
  let rest = (http ? raw.slice(5) : raw).trim().toLowerCase();
  if (!rest) return { problem: `"${raw}": empty entry` };
  if (rest.startsWith("//")) return { problem: `"${raw}": write http:host (no "//"), for example http:127.0.0.1:9000` };
  let port: number | null = null;

  let addr: string;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) return { problem: `"${raw}": missing "]"` };
    addr = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after) {
      if (!after.startsWith(":")) return { problem: `"${raw}": expected ":port" after "]"` };
      const p = parsePort(raw, after.slice(1));
      if (typeof p === "string") return { problem: p };
      port = p;
    }
  } else {
    // A bare IPv6 literal or range has several colons and no port.
    const colons = rest.split(":").length - 1;
    if (colons === 1) {
      const [a, p] = rest.split(":") as [string, string];
      const n = parsePort(raw, p);
      if (typeof n === "string") return { problem: n };
      port = n;
      rest = a;
    }
    addr = rest;
  }

  if (addr.includes("/")) {
    try {
      return { range: { range: ipaddr.parseCIDR(addr), http, port } };
    } catch {
      return { problem: `"${raw}": "${addr}" is not a valid CIDR range` };
    }
  }
  if (ipaddr.isValid(addr)) {
    const a = ipaddr.parse(addr);
    return { range: { range: [a, a.kind() === "ipv4" ? 32 : 128], http, port } };
  }
  if (!HOST.test(addr)) return { problem: `"${raw}": "${addr}" is not a host name, IP address or CIDR range` };
  return { host: { host: addr.replace(/\.$/, ""), http, port } };
}

/** Parses the whole list, reporting every bad entry. */
export function parseCallbackAllow(spec: string | undefined): { ok: true; value: CallbackAllowList } | { ok: false; problems: string[] } {
  const out: CallbackAllowList = { hosts: [], ranges: [] };
  const problems: string[] = [];
  for (const raw of (spec ?? "").split(",").map((s) => s.trim())) {
    if (!raw) continue;
    const e = parseEntry(raw);
    if ("problem" in e) problems.push(e.problem);
    else if ("host" in e) out.hosts.push(e.host);
    else out.ranges.push(e.range);
  }
  return problems.length ? { ok: false, problems } : { ok: true, value: out };
}

/** The zod schema for COUNTERSIGN_CALLBACK_ALLOW, so a bad entry stops start-up with the others. */
export const CallbackAllowSpec = z.string().transform((s, ctx): CallbackAllowList => {
  const r = parseCallbackAllow(s);
  if (r.ok) return r.value;
  for (const p of r.problems) ctx.addIssue({ code: "custom", message: p });
  return z.NEVER;
});
