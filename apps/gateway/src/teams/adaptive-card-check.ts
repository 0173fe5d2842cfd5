import { createRequire } from "node:module";

// The package's ESM build (lib/) does not resolve under Node; its UMD bundle does, and
// parsing and validation need no DOM (only render() does).
const require = createRequire(import.meta.url);
const AC = require("adaptivecards/dist/adaptivecards.js") as typeof import("adaptivecards");

const EVENT = (AC as unknown as { ValidationEvent: Record<number, string> }).ValidationEvent;
// Keys that Teams reads but the Adaptive Cards object model does not.
const HOST_KEYS = new Set(["$schema", "msteams", "metadata", "type"]);

/**
 * Checks a card against the official `adaptivecards` parser: parse and validation events
 * (unknown element or action types, duplicate ids, missing required values) plus every
 * property the parser never read, which the library would otherwise ignore silently.
 * Used by tests; returns the problems found (empty when the card is clean).
 */
export function checkAdaptiveCard(json: unknown, opts: { targetVersion?: string } = {}): string[] {
  if (!json || typeof json !== "object") return ["card is not an object"];
  const problems: string[] = [];
  const reads = new Map<object, Set<string>>();
  const paths = new Map<object, string>();
  const proxies = new WeakMap<object, object>();
  const wrap = (obj: unknown, path: string): unknown => {
    if (!obj || typeof obj !== "object") return obj;
    const cached = proxies.get(obj);
    if (cached) return cached;
    reads.set(obj, new Set());
    paths.set(obj, path);
    const p = new Proxy(obj, {
      get(t, k, r) {
        if (typeof k === "string") reads.get(t)?.add(k);
        const v = Reflect.get(t, k, r);
        return typeof k === "string" && v && typeof v === "object" ? wrap(v, Array.isArray(t) ? `${path}[${k}]` : `${path}.${k}`) : v;
      },
    });
    proxies.set(obj, p);
    return p;
  };

  const card = new AC.AdaptiveCard();
  const version = opts.targetVersion ? AC.Version.parse(opts.targetVersion, new AC.SerializationContext()) : undefined;
  const ctx = new AC.SerializationContext(version);
  try {
    card.parse(wrap(structuredClone(json), "$") as object, ctx);
  } catch (e) {
    return [`parse threw: ${(e as Error).message}`];
  }
  for (let i = 0; i < ctx.eventCount; i++) {
    const ev = ctx.getEventAt(i);
    problems.push(`parse:${EVENT[ev.event] ?? ev.event}: ${ev.message}`);
  }
  for (const ev of card.validateProperties().validationEvents) problems.push(`validate:${EVENT[ev.event] ?? ev.event}: ${ev.message}`);

  for (const [obj, keys] of reads) {
    // An untouched subtree (an action's opaque `data`) is not the parser's business.
    if (Array.isArray(obj) || keys.size === 0) continue;
    const t = (obj as { type?: unknown }).type;
    const unknownType = typeof t === "string" && t !== "AdaptiveCard" && !AC.GlobalRegistry.elements.findByName(t) && !AC.GlobalRegistry.actions.findByName(t);
    // Unknown types are reported by the parser already; their properties are never read.
    if (unknownType && [...keys].every((k) => ["type", "fallback", "requires"].includes(k))) continue;
    for (const k of Object.keys(obj)) {
      if (!keys.has(k) && !HOST_KEYS.has(k)) problems.push(`unknown-property: ${paths.get(obj)}.${k}`);
    }
  }
  return problems;
}
