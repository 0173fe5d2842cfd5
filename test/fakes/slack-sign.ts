import { createHmac, randomBytes } from "node:crypto";
import { TEAM_ID } from "./fake-slack.ts";

/**
 * Builds and signs requests exactly as Slack sends them to an app's Request URL:
 * `application/x-www-form-urlencoded` with `payload=<json>`, signed with
 * `v0=HMAC-SHA256(secret, "v0:{ts}:{body}")`.
 */

export const TEAM = { id: TEAM_ID, domain: "fake-team" };
export const API_APP_ID = "A0APP0001";

export function signature(secret: string, ts: number | string, rawBody: string): string {
  return `v0=${createHmac("sha256", secret).update(`v0:${ts}:${rawBody}`).digest("hex")}`;
}

export function formBody(payload: unknown): string {
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

/** Real shape: "<digits>.<digits>.<32 hex>". */
export function triggerId(): string {
  return `${Date.now()}.${Math.floor(Math.random() * 1e12)}.${randomBytes(16).toString("hex")}`;
}

let actionCounter = 0;
export function actionTs(): string {
  actionCounter++;
  return `${Math.floor(Date.now() / 1000)}.${String(actionCounter).padStart(6, "0")}`;
}

export interface SlackUserRef {
  id: string;
  username: string;
  name: string;
  team_id: string;
}
export const slackUser = (id: string, name: string): SlackUserRef => ({ id, username: name, name, team_id: TEAM.id });

/** A `block_actions` payload for a button click on a message posted by the app. */
export function blockActionsPayload(o: {
  user: SlackUserRef;
  channel: string;
  messageTs: string;
  blocks?: unknown[];
  actionId: string;
  blockId?: string;
  value?: string;
  actionTs?: string;
}) {
  return {
    type: "block_actions",
    user: o.user,
    api_app_id: API_APP_ID,
    token: "legacyVerificationToken",
    container: { type: "message", message_ts: o.messageTs, channel_id: o.channel, is_ephemeral: false },
    trigger_id: triggerId(),
    team: TEAM,
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: o.channel, name: "approvals" },
    message: {
      type: "message",
      subtype: "bot_message",
      text: "fallback",
      ts: o.messageTs,
      bot_id: "B0BOT0001",
      user: "U0BOT0001",
      app_id: API_APP_ID,
      team: TEAM.id,
      blocks: o.blocks ?? [],
    },
    state: { values: {} },
    response_url: `https://hooks.slack.com/actions/${TEAM.id}/1234567890/${randomBytes(12).toString("hex")}`,
    actions: [
      {
        action_id: o.actionId,
        block_id: o.blockId ?? "countersign.decide",
        text: { type: "plain_text", text: o.actionId, emoji: true },
        value: o.value,
        type: "button",
        action_ts: o.actionTs ?? actionTs(),
      },
    ],
  };
}

/** A `view_submission` payload for a modal the app opened. */
export function viewSubmissionPayload(o: {
  user: SlackUserRef;
  callbackId: string;
  privateMetadata: string;
  /** state.values: { block_id: { action_id: { type, value } } } */
  values: Record<string, Record<string, { type: string; value: string | null }>>;
  viewId?: string;
}) {
  const id = o.viewId ?? `V${randomBytes(5).toString("hex").toUpperCase()}`;
  return {
    type: "view_submission",
    team: TEAM,
    user: o.user,
    api_app_id: API_APP_ID,
    token: "legacyVerificationToken",
    trigger_id: triggerId(),
    view: {
      id,
      team_id: TEAM.id,
      type: "modal",
      blocks: [],
      private_metadata: o.privateMetadata,
      callback_id: o.callbackId,
      state: { values: o.values },
      hash: `${Math.floor(Date.now() / 1000)}.abcdEFGH`,
      title: { type: "plain_text", text: "Deny request", emoji: true },
      clear_on_close: false,
      notify_on_close: false,
      close: null,
      submit: { type: "plain_text", text: "Deny", emoji: true },
      previous_view_id: null,
      root_view_id: id,
      app_id: API_APP_ID,
      external_id: "",
      app_installed_team_id: TEAM.id,
      bot_id: "B0BOT0001",
    },
    response_urls: [],
    is_enterprise_install: false,
    enterprise: null,
  };
}

export interface SendOptions {
  secret: string;
  /** Seconds; default now. */
  ts?: number;
  /** Send this signature instead of the right one. */
  forgeSignature?: string;
  omitHeaders?: boolean;
  /** Slack's redelivery headers. */
  retryNum?: number;
  /** Send exactly this body (already encoded) instead of encoding the payload. */
  rawBody?: string;
}

/** POSTs a payload to the app's Request URL, signed as Slack signs it. */
export async function sendSigned(url: string, payload: unknown, o: SendOptions) {
  const raw = o.rawBody ?? formBody(payload);
  const ts = o.ts ?? Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    "content-type": "application/x-www-form-urlencoded",
    "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
  };
  if (!o.omitHeaders) {
    headers["x-slack-request-timestamp"] = String(ts);
    headers["x-slack-signature"] = o.forgeSignature ?? signature(o.secret, ts, raw);
  }
  if (o.retryNum !== undefined) {
    headers["x-slack-retry-num"] = String(o.retryNum);
    headers["x-slack-retry-reason"] = "http_timeout";
  }
  const started = performance.now();
  const res = await fetch(url, { method: "POST", headers, body: raw });
  const text = await res.text();
  return { status: res.status, text, ms: performance.now() - started };
}
