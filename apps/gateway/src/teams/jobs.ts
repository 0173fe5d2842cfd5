import type { Logger } from "@countersign/core";
import type { ChatCards, ClaimedJob, PostedCard, TeamsConversation, TeamsConversations } from "@countersign/services";
import { type Activity, CardFactory, Channels, type ConversationParameters, type ConversationReference, MessageFactory } from "botbuilder";
import { z } from "zod";
import type { JobHandler, JobResult } from "../relay/relay.ts";
import { clientSpan } from "../tracing.ts";
import { type AdaptiveCard, renderCard } from "./card.ts";
import type { GatewayCloudAdapter } from "./route.ts";

const PostPayload = z.object({ requestId: z.string(), destination: z.string(), channel: z.string(), team: z.string().nullish() });
const UpdatePayload = z.object({ requestId: z.string() });

/** Statuses Teams uses for throttling and brief outages; the outbox retries them with backoff. */
const RETRYABLE = new Set([408, 412, 429, 500, 502, 503, 504]);

/** Posts and updates cards through botbuilder's connector (proactive messages). */
export class TeamsMessenger {
  constructor(
    private readonly adapter: GatewayCloudAdapter,
    private readonly appId: string,
  ) {}

  /**
   * Starts a thread in `channelId`; returns the thread's conversation id and the card's
   * activity id. This is what `TeamsInfo.sendMessageToTeamsChannel` does for CloudAdapter,
   * done directly: TeamsInfo falls back to the legacy BotFrameworkAdapter API when the app
   * id is empty (emulator mode), which CloudAdapter does not have.
   */
  async post(conv: TeamsConversation, channelId: string, card: AdaptiveCard): Promise<{ conversationId: string; activityId: string }> {
    const activity = MessageFactory.attachment(CardFactory.adaptiveCard(card)) as Activity;
    const params = { isGroup: true, channelData: { channel: { id: channelId } }, activity } as ConversationParameters;
    let out: { conversationId: string; activityId: string } | undefined;
    // A null audience means the configured one (ToChannelFromBotOAuthScope), as TeamsInfo passes it.
    await this.adapter.createConversationAsync(this.appId, Channels.Msteams, conv.serviceUrl, null as unknown as string, params, async (ctx) => {
      // The new thread's conversation id is "19:...;messageid=N"; the card is activity N of it.
      const conversationId = ctx.activity.conversation?.id ?? "";
      const activityId = /;messageid=([^;]+)$/.exec(conversationId)?.[1] ?? ctx.activity.id ?? "";
      out = { conversationId, activityId };
    });
    if (!out?.conversationId || !out.activityId) throw new Error("Teams returned no conversation for the new card");
    return out;
  }

  async update(conv: TeamsConversation, conversationId: string, activityId: string, card: AdaptiveCard): Promise<void> {
    const base = conv.reference as Partial<ConversationReference>;
    const reference = { ...base, conversation: { ...(base.conversation as ConversationReference["conversation"]), id: conversationId } };
    await this.adapter.continueConversationAsync(this.appId, reference, async (ctx) => {
      const activity = MessageFactory.attachment(CardFactory.adaptiveCard(card));
      activity.id = activityId;
      await ctx.updateActivity(activity);
    });
  }
}

function httpStatus(e: unknown): number | undefined {
  const err = e as { statusCode?: unknown; response?: { status?: unknown } };
  const s = err?.statusCode ?? err?.response?.status;
  return typeof s === "number" ? s : undefined;
}

function retryAfterMs(e: unknown): number | undefined {
  const headers = (e as { response?: { headers?: { get?: (k: string) => string | undefined | null } } })?.response?.headers;
  const v = typeof headers?.get === "function" ? headers.get("retry-after") : undefined;
  if (!v) return undefined;
  const seconds = Number(v);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

export interface TeamsFailure {
  /** True for a 4xx Teams will keep answering (not installed, gone, forbidden, malformed). */
  permanent: boolean;
  httpStatus?: number;
  retryAfterMs?: number;
  message: string;
}

/**
 * Classifies an error from the Bot Connector (an @azure/core-rest-pipeline RestError, or a
 * network error). Throttling (429, 412) and gateway errors (502, 504) are retried: by
 * botbuilder first, then by the outbox with backoff, honouring Retry-After.
 */
export function classifyTeamsError(e: unknown): TeamsFailure {
  const status = httpStatus(e);
  const after = retryAfterMs(e);
  const msg = (e as Error)?.message ?? String(e);
  return {
    permanent: status !== undefined && status >= 400 && status < 500 && !RETRYABLE.has(status),
    ...(status !== undefined ? { httpStatus: status } : {}),
    ...(after !== undefined ? { retryAfterMs: after } : {}),
    message: status ? `Teams answered HTTP ${status}: ${msg}` : msg,
  };
}

const describe = (e: unknown) => classifyTeamsError(e).message;
const isPermanent = (e: unknown) => classifyTeamsError(e).permanent;

/** A failure the outbox should retry, with Teams' Retry-After when it sent one. */
function retry(e: unknown): JobResult {
  const f = classifyTeamsError(e);
  return {
    ok: false,
    error: f.message,
    ...(f.httpStatus !== undefined ? { httpStatus: f.httpStatus } : {}),
    ...(f.retryAfterMs !== undefined ? { retryAfterMs: f.retryAfterMs } : {}),
  };
}

export function teamsJobHandlers(o: { messenger: TeamsMessenger; cards: ChatCards; conversations: TeamsConversations; log: Logger }): {
  "teams.post": JobHandler;
  "teams.update": JobHandler;
} {
  const log = o.log.child({ component: "teams" });
  const { cards, conversations, messenger } = o;

  async function undeliverable(p: z.infer<typeof PostPayload>, error: string): Promise<JobResult> {
    await cards.recordUndeliverable({ requestId: p.requestId, surface: "teams", destination: p.destination, channel: p.channel, error });
    log.error("teams: approval card is undeliverable", { requestId: p.requestId, destination: p.destination, channel: p.channel, team: p.team ?? null, error });
    return { ok: false, permanent: true, error };
  }

  /** Brings one posted card up to date; a card Teams no longer has is marked, not retried. */
  async function refresh(c: PostedCard, card: AdaptiveCard): Promise<JobResult> {
    if (!c.messageId || !c.conversationId) return { ok: true };
    const conv = await conversations.find(c.channel);
    if (!conv) {
      const error = `the app is no longer installed in the team of channel ${c.channel}; the card cannot be updated`;
      await cards.markState(c.id, "undeliverable", error);
      log.warn("teams: card can no longer be updated", { requestId: c.requestId, channel: c.channel, error });
      return { ok: false, permanent: true, error };
    }
    try {
      const { conversationId, messageId } = c;
      await clientSpan("teams.update_activity", () => messenger.update(conv, conversationId, messageId, card));
      return { ok: true };
    } catch (e) {
      if (!isPermanent(e)) return retry(e);
      const error = `Teams refused to update the card: ${describe(e)}`;
      await cards.markState(c.id, "undeliverable", error);
      log.warn("teams: card can no longer be updated", { requestId: c.requestId, channel: c.channel, error });
      return { ok: false, permanent: true, error };
    }
  }

  const post: JobHandler = async (job: ClaimedJob) => {
    const parsed = PostPayload.safeParse(job.payload);
    if (!parsed.success) return { ok: false, permanent: true, error: "malformed teams.post payload" };
    const p = parsed.data;
    const request = await cards.loadRequest(p.requestId);
    if (!request) return { ok: false, permanent: true, error: `no request ${p.requestId}` };
    const card = renderCard(request);

    // A retry after the card went out (the job crashed or the catch-up update failed).
    const existing = await cards.find(p.requestId, "teams", p.channel);
    if (existing?.state === "posted" && existing.messageId) return refresh(existing, card);

    const conv = await conversations.resolve(p.channel, p.team);
    if (!conv) {
      return undeliverable(
        p,
        `the Countersign Teams app was never installed where it can post to channel ${p.channel}${p.team ? ` (team ${p.team})` : ""}. ` +
          `Install the app in the team that owns the channel${p.team ? "" : ', or set "team" on the policy channel'}, then mention the bot in that channel.`,
      );
    }

    let posted: { conversationId: string; activityId: string };
    try {
      posted = await clientSpan("teams.create_conversation", () => messenger.post(conv, p.channel, card));
    } catch (e) {
      if (isPermanent(e)) return undeliverable(p, `Teams refused the card for channel ${p.channel}: ${describe(e)}`);
      return retry(e);
    }
    const saved = await cards.recordPosted({
      requestId: p.requestId,
      surface: "teams",
      destination: p.destination,
      channel: p.channel,
      messageId: posted.activityId,
      conversationId: posted.conversationId,
    });
    log.info("teams: posted the approval card", { requestId: p.requestId, channel: p.channel, activityId: posted.activityId });
    if (conv.channelId !== p.channel) {
      // Reached through the team's reference; remember the channel itself for updates.
      const base = conv.reference as { conversation?: Record<string, unknown> };
      await conversations.save({
        channelId: p.channel,
        teamId: conv.teamId,
        tenantId: conv.tenantId,
        serviceUrl: conv.serviceUrl,
        reference: { ...conv.reference, conversation: { ...base.conversation, id: p.channel } },
      });
    }

    // A decision made while the card was on its way found no card to update; catch up.
    const now = await cards.loadRequest(p.requestId);
    if (now) {
      const current = renderCard(now);
      if (JSON.stringify(current) !== JSON.stringify(card)) return refresh(saved, current);
    }
    return { ok: true };
  };

  const update: JobHandler = async (job: ClaimedJob) => {
    const parsed = UpdatePayload.safeParse(job.payload);
    if (!parsed.success) return { ok: false, permanent: true, error: "malformed teams.update payload" };
    const request = await cards.loadRequest(parsed.data.requestId);
    if (!request) return { ok: false, permanent: true, error: `no request ${parsed.data.requestId}` };
    const posted = (await cards.list(request.id, "teams")).filter((c) => c.state === "posted" && c.messageId);
    if (posted.length === 0) return { ok: true };
    const card = renderCard(request);
    let again: Extract<JobResult, { ok: false }> | undefined;
    for (const c of posted) {
      const r = await refresh(c, card);
      if (!r.ok && !r.permanent && (!again || (r.retryAfterMs ?? 0) > (again.retryAfterMs ?? 0))) again = r;
    }
    return again ?? { ok: true };
  };

  return { "teams.post": post, "teams.update": update };
}
