import { z } from "zod";
import { Risk } from "./policy/schema.ts";

export const MAX_BODY_BYTES = 64 * 1024;

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
  params: z.record(z.string(), z.json()).default({}),
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
