import { randomUUID } from "node:crypto";
import { type Actor, CountersignError, type Logger, REFUSAL_CODES, REQUEST_ID, type Vote } from "@countersign/core";
import { Admission } from "@countersign/db";
import { type ChatCards, decide, recordRefusal, type ServiceDeps, toCountersignError } from "@countersign/services";
import type { App, BlockAction, ButtonAction, SlackViewMiddlewareArgs, ViewSubmitAction } from "@slack/bolt";
import type { ModalView } from "@slack/types";
import { VOTES_IN_FLIGHT } from "../surface.ts";
import { ACTION, approveModal, denyModal, type ModalMetadata, REASON_INPUT, REASON_MAX, VIEW } from "./card.ts";
import type { SlackDirectory } from "./identity.ts";
import { errorMessage, successMessage, toServiceCtx } from "./messages.ts";
import { TtlCache } from "./ttl-cache.ts";

/** The Web API calls a click needs. */
export interface InteractionApi {
  ephemeral(channel: string, user: string, text: string): Promise<void>;
  openModal(triggerId: string, view: ModalView): Promise<void>;
}

export interface InteractionOptions {
  deps: ServiceDeps;
  cards: ChatCards;
  directory: SlackDirectory;
  api: InteractionApi;
  log: Logger;
}

/** Slack retries a delivery it thinks timed out; the same action arrives with the same action_ts. */
const RETRY_WINDOW_MS = 10 * 60_000;
/** trigger_id is valid for about 3 s; the summary in the modal is not worth missing it for. */
const MODAL_LOOKUP_MS = 800;
const CARD_RECORD_WAIT_MS = 3_000;

function parseMetadata(raw: string): ModalMetadata | null {
  try {
    const m = JSON.parse(raw) as Partial<ModalMetadata>;
    if (typeof m.requestId !== "string" || !REQUEST_ID.test(m.requestId)) return null;
    return {
      requestId: m.requestId,
      channel: typeof m.channel === "string" && /^[CGD][A-Z0-9]{2,}$/.test(m.channel) ? m.channel : null,
      messageTs: typeof m.messageTs === "string" ? m.messageTs : null,
    };
  } catch {
    return null;
  }
}

/** The message a button sat on, from the signed payload. */
function messageOf(body: BlockAction): { channel: string | null; messageTs: string | null } {
  const ts = body.message?.ts ?? (body.container as { message_ts?: unknown } | undefined)?.message_ts;
  return { channel: channelOf(body), messageTs: typeof ts === "string" ? ts : null };
}

function channelOf(body: BlockAction): string | null {
  const id = body.channel?.id ?? (body.container as { channel_id?: unknown } | undefined)?.channel_id;
  return typeof id === "string" ? id : null;
}

/**
 * Wires the card's buttons and modals to decide(). Every listener acks first, inside
 * Slack's 3-second budget. Identity comes only from the signed payload's user id, the
 * request only from the button value or our own private_metadata; feedback follows the
 * committed decision.
 */
export function registerInteractions(app: App, o: InteractionOptions): void {
  const { deps, directory, api, log } = o;
  const delivered = new TtlCache<true>(RETRY_WINDOW_MS);

  /** The card a click came from must be the one Countersign posted for that request. */
  const checkCard = async (requestId: string, where: { channel: string | null; messageTs: string | null }) => {
    const refuse = () => new CountersignError("forbidden", "this button does not belong to the approval card it was clicked on, so Countersign refused it");
    if (!where.channel || !where.messageTs) throw refuse();
    // The relay records a card just after Slack accepts it, so a click in the first
    // instants may arrive before the record; the click is already acked, so wait briefly.
    const deadline = Date.now() + CARD_RECORD_WAIT_MS;
    for (;;) {
      // Any recorded message id counts: a card whose last update failed is still on screen.
      const card = await o.cards.find(requestId, "slack", where.channel);
      if (card?.messageId) {
        if (card.messageId === where.messageTs) return;
        throw refuse();
      }
      if (Date.now() > deadline) throw refuse();
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  // Clicks are acknowledged at once; this many are decided at a time and the rest wait their
  // turn in memory (never refused for load: their transactions queue with wait "always").
  const inFlight = new Admission(VOTES_IN_FLIGHT, Number.POSITIVE_INFINITY);
  const vote = (v: Parameters<typeof castVote>[0]) => inFlight.run(() => castVote(v), "always");
  const castVote = async (v: {
    userId: string;
    requestId: string;
    decision: Vote;
    reason?: string;
    channel: string | null;
    /** The message the button sat on (for a modal, carried in its private_metadata, which only the app sets). */
    card: { channel: string | null; messageTs: string | null };
  }) => {
    const correlationId = `rq_${randomUUID()}`;
    const l = log.child({ component: "slack", requestId: correlationId, request: v.requestId, slackUser: v.userId });
    let text: string;
    let actor: Actor = { type: "unverified", surface: "slack", surfaceUserId: v.userId };
    let audited = false;
    try {
      if (!REQUEST_ID.test(v.requestId)) throw new CountersignError("not_found", "this card does not carry a valid request id");
      await checkCard(v.requestId, v.card);
      const principal = await directory.principalFor(v.userId);
      actor = { type: "reviewer", principal, surface: "slack", surfaceUserId: v.userId };
      const body = v.reason ? { decision: v.decision, reason: v.reason } : { decision: v.decision };
      // decide() audits its own refusals.
      audited = true;
      const result = await decide({ ctx: toServiceCtx(deps, actor, correlationId), input: { requestId: v.requestId, body } });
      l.info("slack: decision recorded", { decision: v.decision, principal, status: result.resource.status });
      text = successMessage(v.decision, result.resource);
    } catch (e) {
      const ce = toCountersignError(e);
      if (ce.code === "internal_error") l.error("slack: decision failed", { err: e as Error });
      else if (ce.code === "service_unavailable") l.warn("slack: decision not recorded, the database is unavailable", { error: (e as Error)?.message });
      else l.info("slack: decision refused", { code: ce.code, decision: v.decision });
      const decideAudited = audited && (REFUSAL_CODES as readonly string[]).includes(ce.code);
      if (!decideAudited && ce.code !== "internal_error" && ce.code !== "service_unavailable") {
        await recordRefusal({
          ctx: toServiceCtx(deps, actor, correlationId),
          input: {
            requestId: v.requestId,
            code: ce.code,
            message: ce.message,
            decision: v.decision,
            detail: { surface: "slack", channel: v.card.channel ?? v.channel, messageTs: v.card.messageTs },
          },
        }).catch((err: Error) => l.warn("slack: could not audit a refused click", { error: err.message }));
      }
      text = errorMessage(e, correlationId);
    }
    if (!v.channel) return;
    await api.ephemeral(v.channel, v.userId, text).catch((e: Error) => l.warn("slack: could not send the ephemeral reply", { error: e.message }));
  };

  const openModal = async (kind: "deny" | "approve", body: BlockAction<ButtonAction>, requestId: string) => {
    const channel = channelOf(body);
    const timeout = new Promise<null>((r) => setTimeout(() => r(null), MODAL_LOOKUP_MS).unref());
    const request = REQUEST_ID.test(requestId) ? await Promise.race([o.cards.loadRequest(requestId).catch(() => null), timeout]) : null;
    const meta: ModalMetadata = { requestId, channel, messageTs: messageOf(body).messageTs };
    const title = request?.summary ?? requestId;
    try {
      await api.openModal(body.trigger_id, kind === "deny" ? denyModal(title, meta) : approveModal(title, meta));
    } catch (e) {
      log.warn("slack: could not open the modal", { request: requestId, error: (e as Error).message });
      if (channel) {
        await api.ephemeral(channel, body.user.id, ":warning: Slack did not open the form in time. Nothing was recorded; please click again.").catch(() => {});
      }
    }
  };

  /** True the first time this exact delivery is seen on this replica. */
  const first = (key: string) => !delivered.seen(key, true);

  app.action<BlockAction<ButtonAction>>(ACTION.approve, async ({ ack, body, action }) => {
    await ack();
    if (!first(`${action.action_id}:${body.user.id}:${action.action_ts}`)) return;
    await vote({ userId: body.user.id, requestId: action.value ?? "", decision: "approve", channel: channelOf(body), card: messageOf(body) });
  });

  app.action<BlockAction<ButtonAction>>(ACTION.approveWithComment, async ({ ack, body, action }) => {
    await ack();
    if (!first(`${action.action_id}:${body.user.id}:${action.action_ts}`)) return;
    await openModal("approve", body, action.value ?? "");
  });

  app.action<BlockAction<ButtonAction>>(ACTION.deny, async ({ ack, body, action }) => {
    await ack();
    if (!first(`${action.action_id}:${body.user.id}:${action.action_ts}`)) return;
    await openModal("deny", body, action.value ?? "");
  });

  const submitted =
    (decision: Vote) =>
    async ({ ack, body, view }: SlackViewMiddlewareArgs<ViewSubmitAction>) => {
      const reason = (view.state.values[REASON_INPUT]?.[REASON_INPUT]?.value ?? "").trim();
      if (decision === "deny" && !reason) {
        await ack({ response_action: "errors", errors: { [REASON_INPUT]: "A reason is required to deny a request." } });
        return;
      }
      if (reason.length > REASON_MAX) {
        await ack({ response_action: "errors", errors: { [REASON_INPUT]: `Keep it under ${REASON_MAX} characters.` } });
        return;
      }
      await ack();
      if (!first(`${view.id}:${view.hash}:${body.user.id}`)) return;
      const meta = parseMetadata(view.private_metadata);
      if (!meta) {
        log.warn("slack: a modal submission carried no usable request id", { callbackId: view.callback_id });
        return;
      }
      await vote({
        userId: body.user.id,
        requestId: meta.requestId,
        decision,
        ...(reason ? { reason } : {}),
        channel: meta.channel,
        card: { channel: meta.channel, messageTs: meta.messageTs },
      });
    };

  app.view<ViewSubmitAction>(VIEW.deny, submitted("deny"));
  app.view<ViewSubmitAction>(VIEW.approve, submitted("approve"));
}
