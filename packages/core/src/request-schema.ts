import { z } from "zod";
import { Risk } from "./policy/schema.ts";
import { parsePrincipal } from "./principal.ts";

export const MAX_BODY_BYTES = 64 * 1024;

/** Nesting deeper than this is refused: reviewers could not read it, and hashing recurses. */
export const MAX_PARAMS_DEPTH = 32;

export function jsonDepth(v: unknown, limit = MAX_PARAMS_DEPTH + 1): number {
  // Iterative, so hostile input cannot exhaust the stack while being measured.
  let max = 0;
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length > 0) {
    const [node, d] = stack.pop() as [unknown, number];
    if (node === null || typeof node !== "object") continue;
    max = Math.max(max, d);
    if (max > limit) return max;
    for (const child of Array.isArray(node) ? node : Object.values(node)) stack.push([child, d + 1]);
  }
  return max;
}

/**
 * NUL and unpaired UTF-16 surrogates cannot be stored: PostgreSQL refuses them in text
 * and jsonb (which surfaced as a 500), or the driver silently replaces them with U+FFFD
 * (so what is stored is not what was submitted). Refused at the edge instead.
 */
const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSTORABLE_MESSAGE = "must not contain NUL characters or unpaired UTF-16 surrogates";

export function isStorableText(s: string): boolean {
  return !s.includes("\u0000") && !UNPAIRED_SURROGATE.test(s);
}

/**
 * `__proto__` as a key survives JSON.parse but not validation: rebuilding the object
 * assigns it as the prototype, so the key would vanish from what is stored and hashed.
 */
const PROTO_KEY_MESSAGE = '"__proto__" is not allowed as a key';

/** The first string or key inside a JSON value that cannot be stored as given, with why; or null. Iterative, like jsonDepth. */
export function unstorablePath(v: unknown): { path: (string | number)[]; message: string } | null {
  const stack: [unknown, (string | number)[]][] = [[v, []]];
  while (stack.length > 0) {
    const [node, path] = stack.pop() as [unknown, (string | number)[]];
    if (typeof node === "string") {
      if (!isStorableText(node)) return { path, message: UNSTORABLE_MESSAGE };
    } else if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) stack.push([node[i], [...path, i]]);
    } else if (node !== null && typeof node === "object") {
      for (const [k, child] of Object.entries(node)) {
        if (!isStorableText(k)) return { path: [...path, k], message: UNSTORABLE_MESSAGE };
        if (k === "__proto__") return { path: [...path, k], message: PROTO_KEY_MESSAGE };
        stack.push([child, [...path, k]]);
      }
    }
  }
  return null;
}

/** A string PostgreSQL can store exactly as given. */
const Text = () => z.string().refine(isStorableText, UNSTORABLE_MESSAGE);
/**
 * For text columns kept as given (not trimmed): the embedded engine's driver drops a
 * leading U+FEFF when it reads text back, so such a value would not read back as sent.
 */
const VerbatimText = () => Text().refine((s) => !s.startsWith("\ufeff"), "must not start with a byte-order mark (U+FEFF)");

/** A principal (onBehalfOf): refused when malformed or ambiguous, stored in canonical form. */
const Email = z
  .string()
  .max(320)
  // The shape, for the OpenAPI document; parsePrincipal below decides.
  .regex(/^[^@\s]+@[^@\s]+$/, "expected an email address")
  .transform((s, ctx) => {
    const r = parsePrincipal(s);
    if (r.ok) return r.canonical;
    ctx.addIssue({ code: "custom", message: r.message });
    return z.NEVER;
  });

/** The body of POST /v1/requests. Everything the server assigns is absent, and unknown fields are rejected. */
export const CreateRequestInput = z.strictObject({
  action: Text()
    .max(200)
    .regex(/^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/i, 'expected a dotted action name such as "iam.role.attach"'),
  summary: Text().trim().min(1).max(150),
  params: z
    .unknown()
    .superRefine((v, ctx) => {
      if (jsonDepth(v) > MAX_PARAMS_DEPTH) {
        ctx.addIssue({ code: "custom", message: `params may nest at most ${MAX_PARAMS_DEPTH} levels deep` });
        return;
      }
      const bad = unstorablePath(v);
      if (bad) ctx.addIssue({ code: "custom", path: bad.path, message: bad.message });
    })
    .pipe(z.record(z.string(), z.json()))
    .default({}),
  resource: VerbatimText().min(1).max(500).optional(),
  environment: VerbatimText().min(1).max(100).optional(),
  risk: Risk.optional(),
  rationale: VerbatimText().max(2000).optional(),
  onBehalfOf: Email.optional(),
  callbackUrl: z
    .url({ protocol: /^https?$/ })
    .max(2000)
    .refine(isStorableText, UNSTORABLE_MESSAGE)
    .optional(),
  expiresIn: z
    .number()
    .int()
    .min(10)
    .max(7 * 86400)
    .optional(),
  metadata: z
    .record(Text().max(100), Text().max(500))
    .refine((m) => Object.keys(m).length <= 50, "at most 50 metadata entries")
    .optional(),
});
export type CreateRequestInput = z.infer<typeof CreateRequestInput>;

export const DecisionInput = z.strictObject({
  decision: z.enum(["approve", "deny"]),
  reason: Text().trim().max(2000).optional(),
});
export type DecisionInput = z.infer<typeof DecisionInput>;

export const CancelInput = z.strictObject({ reason: Text().trim().max(2000).optional() });
export type CancelInput = z.infer<typeof CancelInput>;

export const REQUEST_ID = /^req_[0-9A-HJKMNP-TV-Z]{26}$/;
