import { z } from "zod";
import { Risk } from "./policy/schema.ts";

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

const Email = z
  .email()
  .max(320)
  .transform((s) => s.toLowerCase());

/** The body of POST /v1/requests. Everything the server assigns is absent, and unknown fields are rejected. */
export const CreateRequestInput = z.strictObject({
  action: z
    .string()
    .max(200)
    .regex(/^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/i, 'expected a dotted action name such as "iam.role.attach"'),
  summary: z.string().trim().min(1).max(150),
  params: z
    .unknown()
    .superRefine((v, ctx) => {
      if (jsonDepth(v) > MAX_PARAMS_DEPTH) ctx.addIssue({ code: "custom", message: `params may nest at most ${MAX_PARAMS_DEPTH} levels deep` });
    })
    .pipe(z.record(z.string(), z.json()))
    .default({}),
  resource: z.string().min(1).max(500).optional(),
  environment: z.string().min(1).max(100).optional(),
  risk: Risk.optional(),
  rationale: z.string().max(2000).optional(),
  onBehalfOf: Email.optional(),
  callbackUrl: z
    .url({ protocol: /^https?$/ })
    .max(2000)
    .optional(),
  expiresIn: z
    .number()
    .int()
    .min(10)
    .max(7 * 86400)
    .optional(),
  metadata: z
    .record(z.string().max(100), z.string().max(500))
    .refine((m) => Object.keys(m).length <= 50, "at most 50 metadata entries")
    .optional(),
});
export type CreateRequestInput = z.infer<typeof CreateRequestInput>;

export const DecisionInput = z.strictObject({
  decision: z.enum(["approve", "deny"]),
  reason: z.string().trim().max(2000).optional(),
});
export type DecisionInput = z.infer<typeof DecisionInput>;

export const CancelInput = z.strictObject({ reason: z.string().trim().max(2000).optional() });
export type CancelInput = z.infer<typeof CancelInput>;

export const REQUEST_ID = /^req_[0-9A-HJKMNP-TV-Z]{26}$/;
