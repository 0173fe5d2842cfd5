import { type Actor, type Logger, REFUSAL_CODES, REQUEST_ID } from "@countersign/core";
import { Admission } from "@countersign/db";
import { type ChatCards, decide, recordRefusal, type ServiceDeps, type TeamsConversations, toCountersignError } from "@countersign/services";
import {
  type AdaptiveCardInvokeResponse,
  type AdaptiveCardInvokeValue,
  type InvokeResponse,
  TeamsActivityHandler,
  type TeamsChannelData,
  TurnContext,
} from "botbuilder";
import { VOTES_IN_FLIGHT } from "../surface.ts";
import { type AdaptiveCard, type CardNotice, renderCard, renderNoticeCard, VERBS } from "./card.ts";
import { activityTenant, type TeamsIdentity } from "./identity.ts";
import { noticeFor, REASON_REQUIRED, toServiceCtx } from "./notices.ts";

/** Turn-state key for the inbound HTTP request id, so logs and ServiceCtx can carry it. */
export const CORRELATION_ID = Symbol("countersign.correlationId");

export interface TeamsBotParts {
  deps: ServiceDeps;
  log: Logger;
  identity: TeamsIdentity;
  conversations: TeamsConversations;
  cards: ChatCards;
}

const CARD_TYPE = "application/vnd.microsoft.card.adaptive";
const REDELIVERY_WINDOW_MS = 5 * 60_000;
const asCard = (card: AdaptiveCard): AdaptiveCardInvokeResponse => ({ statusCode: 200, type: CARD_TYPE, value: card });
const invokeError = (statusCode: number, code: string, message: string): AdaptiveCardInvokeResponse => ({
  statusCode,
  type: "application/vnd.microsoft.error",
  value: { code, message } as unknown as AdaptiveCardInvokeResponse["value"],
});

/**
 * The Teams adapter proper. It only reaches here after botbuilder validated the JWT and the
 * gateway checked the tenant (see route.ts). It stores where it is installed, and turns a
 * card click into a decide() call whose outcome it renders back as a card.
 */
export class CountersignTeamsBot extends TeamsActivityHandler {
  // As for Slack: this many decided at a time per replica, the rest wait their turn, none refused for load.
  private readonly votes = new Admission(VOTES_IN_FLIGHT, Number.POSITIVE_INFINITY);
  private readonly recent = new Map<string, { at: number; response: Promise<AdaptiveCardInvokeResponse> }>();

  constructor(private readonly p: TeamsBotParts) {
    super();
    this.onInstallationUpdate(async (ctx, next) => {
      const action = String((ctx.activity as { action?: unknown }).action ?? "");
      if (action.startsWith("remove")) await this.forget(ctx, `installationUpdate ${action}`);
      else await this.remember(ctx, `installationUpdate ${action || "add"}`);
      await next();
    });
    this.onConversationUpdate(async (ctx, next) => {
      const a = ctx.activity;
      const data = a.channelData as TeamsChannelData | undefined;
      const botRemoved = a.membersRemoved?.some((m) => m.id === a.recipient?.id);
      if (botRemoved || data?.eventType === "teamDeleted") await this.forget(ctx, `conversationUpdate ${data?.eventType ?? "membersRemoved"}`);
      else await this.remember(ctx, `conversationUpdate ${data?.eventType ?? "membersAdded"}`);
      await next();
    });
    this.onMessage(async (ctx, next) => {
      // An @mention registers the channel (useful when the app was installed before this
      // gateway kept references) and tells the admin the ids a policy needs.
      const stored = await this.remember(ctx, "message");
      const text = stored
        ? `Countersign can post approval cards in this channel. In the policy, use channel "${stored.channelId}" and team "${stored.teamId}".`
        : "Countersign posts approval cards in team channels. Add the app to a team and mention it in the channel you want to use.";
      await ctx.sendActivity(text);
      await next();
    });
  }

  protected override async onInvokeActivity(ctx: TurnContext): Promise<InvokeResponse> {
    const value = ctx.activity.value as { action?: unknown } | undefined;
    if (ctx.activity.name === "adaptiveCard/action" && (typeof value?.action !== "object" || value.action === null)) {
      const body = invokeError(400, "BadRequest", "missing value.action");
      return { status: 400, body };
    }
    return super.onInvokeActivity(ctx);
  }

  protected override async onAdaptiveCardInvoke(ctx: TurnContext, value: AdaptiveCardInvokeValue): Promise<AdaptiveCardInvokeResponse> {
    // Teams redelivers an invoke it thinks timed out, with the same id. The reviewer should see
    // the outcome of their click, not "already voted" for it.
    if (!ctx.activity.id) return this.execute(ctx, value);
    const id = `${ctx.activity.from?.aadObjectId ?? ctx.activity.from?.id}|${ctx.activity.id}`;
    const now = Date.now();
    for (const [k, v] of this.recent) if (v.at < now - REDELIVERY_WINDOW_MS) this.recent.delete(k);
    const seen = this.recent.get(id);
    if (seen) return seen.response;
    const response = this.execute(ctx, value);
    this.recent.set(id, { at: now, response });
    return response;
  }

  private async execute(ctx: TurnContext, value: AdaptiveCardInvokeValue): Promise<AdaptiveCardInvokeResponse> {
    const { verb } = value.action;
    const data = (value.action.data ?? {}) as Record<string, unknown>;
    const requestId = typeof data.requestId === "string" && REQUEST_ID.test(data.requestId) ? data.requestId : undefined;
    if (!requestId) return invokeError(400, "BadRequest", "this card does not carry a Countersign request id");
    const correlationId = String(ctx.turnState.get(CORRELATION_ID) ?? "");
    const log = this.p.log.child({ component: "teams", requestId, correlationId });

    if (verb === VERBS.refresh) return asCard(await this.currentCard(requestId));
    if (verb !== VERBS.approve && verb !== VERBS.deny) return invokeError(400, "BadRequest", `unknown verb "${verb}"`);
    // Teams merges the card's inputs into the action's data.
    const reason = typeof data.reason === "string" ? data.reason.trim() : "";
    if (verb === VERBS.deny && !reason) return asCard(await this.currentCard(requestId, REASON_REQUIRED));

    let principal: string | undefined;
    let audited = false;
    try {
      const actor = await this.p.identity.reviewer(ctx);
      principal = actor.principal;
      // decide() audits its own refusals.
      audited = true;
      const result = await this.votes.run(
        () =>
          decide({
            ctx: toServiceCtx(this.p.deps, actor, correlationId),
            input: { requestId, body: { decision: verb, ...(reason ? { reason } : {}) } },
          }),
        "always",
      );
      const r = result.resource;
      log.info("teams: decision recorded", { reviewer: principal, decision: verb, status: r.status });
      const progress = r.status === "pending" ? ` ${r.approvals.received} of ${r.approvals.required} approvals so far.` : "";
      return asCard(renderCard(r, { notice: { tone: "good", text: `You ${verb === VERBS.approve ? "approved" : "denied"} this request.${progress}` } }));
    } catch (e) {
      const code = toCountersignError(e).code;
      const decideAudited = audited && (REFUSAL_CODES as readonly string[]).includes(code);
      if (!decideAudited && code !== "internal_error" && code !== "service_unavailable") {
        const who = ctx.activity.from?.aadObjectId ?? ctx.activity.from?.id ?? "unknown";
        const actor: Actor = principal
          ? { type: "reviewer", principal, surface: "teams", surfaceUserId: who }
          : { type: "unverified", surface: "teams", surfaceUserId: who };
        await recordRefusal({
          ctx: toServiceCtx(this.p.deps, actor, correlationId),
          input: {
            requestId,
            code,
            message: toCountersignError(e).message,
            decision: verb,
            detail: { surface: "teams", conversation: ctx.activity.conversation?.id ?? null },
          },
        }).catch((err: Error) => log.warn("teams: could not audit a refused decision", { error: err.message }));
      }
      const notice = noticeFor(e, log, { correlationId, reviewer: principal, decision: verb });
      log.info("teams: decision refused", { reviewer: principal, decision: verb, code: toCountersignError(e).code });
      return asCard(await this.currentCard(requestId, notice));
    }
  }

  /** The card as it stands, with an optional notice; a bare notice if the request cannot be read. */
  private async currentCard(requestId: string, notice?: CardNotice): Promise<AdaptiveCard> {
    const r = await this.p.cards.loadRequest(requestId).catch(() => null);
    if (r) return renderCard(r, notice ? { notice } : {});
    return renderNoticeCard(notice ?? { tone: "attention", text: "This approval request no longer exists." });
  }

  /** Stores the conversation reference of a team channel; ignores personal and group chats. */
  private async remember(ctx: TurnContext, why: string): Promise<{ channelId: string; teamId: string } | null> {
    const a = ctx.activity;
    const data = a.channelData as TeamsChannelData | undefined;
    const teamId = data?.team?.id;
    if (!teamId) {
      this.p.log.info("teams: not in a team channel; Countersign only posts to team channels", { why, conversationType: a.conversation?.conversationType });
      return null;
    }
    const channelId = data.channel?.id ?? String(a.conversation?.id ?? "").split(";")[0] ?? teamId;
    const { activityId: _activityId, user: _user, ...reference } = TurnContext.getConversationReference(a);
    await this.p.conversations.save({
      channelId,
      teamId,
      tenantId: activityTenant(a) ?? null,
      serviceUrl: a.serviceUrl,
      reference: { ...reference, conversation: { ...reference.conversation, id: channelId } },
    });
    this.p.log.info("teams: stored the conversation reference", { why, teamId, team: data.team?.name, channelId, channel: data.channel?.name });
    return { channelId, teamId };
  }

  private async forget(ctx: TurnContext, why: string): Promise<void> {
    const teamId = (ctx.activity.channelData as TeamsChannelData | undefined)?.team?.id;
    if (!teamId) return;
    const removed = await this.p.conversations.removeTeam(teamId);
    this.p.log.warn("teams: the app was removed from a team; cards can no longer be posted there", { why, teamId, channels: removed });
  }
}
