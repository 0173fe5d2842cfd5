import type { JobKind } from "@countersign/services";
import type { RequestHandler, Router } from "express";
import type { JobHandler } from "./relay/relay.ts";

/** A chat surface (Slack, Teams): its inbound route and the outbox jobs it runs. */
export interface ChatSurface {
  name: "slack" | "teams";
  /** Mounted before any body parser: these routes verify signatures over the raw body. */
  mount?: { path: string; router: Router | RequestHandler };
  handlers: Partial<Record<JobKind, JobHandler>>;
  start?(): Promise<void>;
  stop?(): Promise<void>;
}

/**
 * Chat votes decided at once per replica and surface. Enough to keep the database busy, and
 * few enough that API callers still get their turn. The rest wait in memory, never refused.
 */
export const VOTES_IN_FLIGHT = 16;
