/**
 * The vocabularies the CLI needs to build its --help (choices, validation) before it
 * loads anything else. This module imports nothing, so `@countersign/core/constants`
 * costs the CLI no zod, yaml or Prisma at start.
 */
export const SCOPES = ["requests", "decisions", "admin"] as const;
export const RISKS = ["low", "medium", "high", "critical"] as const;
export const REQUEST_STATUSES = ["pending", "approved", "denied", "expired", "cancelled"] as const;
/** How long an event may stay unsealed before `audit verify` reports it (the checkpointer seals about every second). */
export const DEFAULT_MAX_UNSEALED_AGE_MS = 60_000;
