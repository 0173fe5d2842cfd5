import type { Logger } from "@countersign/core";
import type { ChatCards, ClaimedJob, JobKind, PostedCard } from "@countersign/services";
import { z } from "zod";
import type { JobHandler, JobResult } from "../relay/relay.ts";
import { clientSpan } from "../tracing.ts";
import { checkCardLimits, renderCard, type SlackCard } from "./card.ts";
import { DESTINATION_ERRORS, describeSlackError, destinationHint, GONE_ERRORS, PAYLOAD_ERRORS } from "./slack-errors.ts";

/** The two Web API calls cards need. */
export interface CardSender {
  post(channel: string, card: SlackCard): Promise<{ channel: string; ts: string }>;
  update(channel: string, ts: string, card: SlackCard): Promise<void>;
}

const PostPayload = z.object({ requestId: z.string().min(1), destination: z.string().min(1), channel: z.string().min(1) });
const UpdatePayload = z.object({ requestId: z.string().min(1) });

/** How many times a card is re-rendered when the request keeps changing under it. */
const MAX_SYNC_ROUNDS = 3;

class SlackCallFailed extends Error {
  constructor(readonly result: Extract<JobResult, { ok: false }>) {
    super(result.error);
  }
}

/** Turns a Web API error into a job result: 429s carry Retry-After back to the relay. */
function failure(e: unknown, what: string): SlackCallFailed {
  const d = describeSlackError(e);
  switch (d.kind) {
    case "rate_limited":
      return new SlackCallFailed({ ok: false, httpStatus: 429, retryAfterMs: d.retryAfterMs, error: `${what}: rate limited by Slack` });
    case "platform":
      return new SlackCallFailed({ ok: false, error: `${what}: ${d.message}`, permanent: PAYLOAD_ERRORS.has(d.error) });
    case "http":
      return new SlackCallFailed({ ok: false, httpStatus: d.status, error: `${what}: HTTP ${d.status}` });
    case "network":
      return new SlackCallFailed({ ok: false, error: `${what}: ${d.message}` });
  }
}

/**
 * Outbox handlers for Slack cards. They render from the database, never from the job,
 * so a retried or late job always shows the request as it is now.
 */
export function slackJobHandlers(o: { cards: ChatCards; sender: CardSender; log: Logger }): Partial<Record<JobKind, JobHandler>> {
  const { cards, sender, log } = o;

  const render = async (requestId: string): Promise<SlackCard | null> => {
    const r = await cards.loadRequest(requestId);
    if (!r) return null;
    const card = renderCard(r);
    const broken = checkCardLimits(card);
    if (broken) throw new SlackCallFailed({ ok: false, error: `card for ${requestId} breaks a Block Kit limit: ${broken}`, permanent: true });
    return card;
  };

  /**
   * Brings one posted card up to date. A decision can commit while we render or send,
   * and update jobs may finish out of order, so we re-read after each write until the
   * card shows what the database holds.
   */
  const sync = async (card: PostedCard, shown: string | null): Promise<void> => {
    let last = shown;
    for (let round = 0; round < MAX_SYNC_ROUNDS; round++) {
      const next = await render(card.requestId);
      if (!next) return;
      const key = JSON.stringify(next);
      if (key === last) return;
      try {
        await clientSpan("slack.chat.update", () => sender.update(card.channel, card.messageId as string, next));
      } catch (e) {
        const d = describeSlackError(e);
        if (d.kind === "platform" && GONE_ERRORS.has(d.error)) {
          // Someone deleted the message or removed the app: note it and stop trying.
          await cards.markState(card.id, "undeliverable", `chat.update: ${destinationHint(d.error)}`);
          log.warn("slack: a posted card can no longer be updated", { requestId: card.requestId, channel: card.channel, error: d.error });
          return;
        }
        throw failure(e, "chat.update");
      }
      last = key;
    }
  };

  const post: JobHandler = async (job: ClaimedJob) => {
    const p = PostPayload.safeParse(job.payload);
    if (!p.success) return { ok: false, error: "slack.post job without requestId/destination/channel", permanent: true };
    const { requestId, destination, channel } = p.data;
    try {
      // At least once: a retry after a crash must not post a second card.
      const existing = await cards.find(requestId, "slack", channel);
      if (existing?.state === "posted" && existing.messageId) {
        await sync(existing, null);
        return { ok: true };
      }
      const card = await render(requestId);
      if (!card) return { ok: false, error: `request ${requestId} does not exist`, permanent: true };
      let sent: { channel: string; ts: string };
      try {
        sent = await clientSpan("slack.chat.postMessage", () => sender.post(channel, card));
      } catch (e) {
        const d = describeSlackError(e);
        if (d.kind === "platform" && DESTINATION_ERRORS.has(d.error)) {
          const error = `chat.postMessage: ${destinationHint(d.error)}`;
          await cards.recordUndeliverable({ requestId, surface: "slack", destination, channel, error });
          log.error("slack: cannot post the approval card to this destination", { requestId, destination, channel, error: d.error });
          return { ok: false, error, permanent: true };
        }
        throw failure(e, "chat.postMessage");
      }
      // The channel id Slack answers with is the one chat.update needs.
      const posted = await cards.recordPosted({ requestId, surface: "slack", destination, channel, messageId: sent.ts });
      await sync({ ...posted, channel: sent.channel || channel }, JSON.stringify(card));
      return { ok: true };
    } catch (e) {
      if (e instanceof SlackCallFailed) return e.result;
      throw e;
    }
  };

  const update: JobHandler = async (job: ClaimedJob) => {
    const p = UpdatePayload.safeParse(job.payload);
    if (!p.success) return { ok: false, error: "slack.update job without requestId", permanent: true };
    try {
      // Cards still being posted are skipped: their post job re-checks after recording.
      const posted = (await cards.list(p.data.requestId, "slack")).filter((c) => c.state === "posted" && c.messageId);
      for (const card of posted) await sync(card, null);
      return { ok: true };
    } catch (e) {
      if (e instanceof SlackCallFailed) return e.result;
      throw e;
    }
  };

  return { "slack.post": post, "slack.update": update };
}
