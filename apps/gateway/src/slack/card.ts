import type { RequestResource } from "@countersign/services";
import type { ActionsBlock, Button, ContextBlock, HeaderBlock, InputBlock, KnownBlock, ModalView, SectionBlock } from "@slack/types";

/**
 * The Block Kit approval card and the decision modals. Pure: everything shown comes from
 * the request resource, so any replica renders the same card for the same state.
 */

/** Slack's documented limits; `checkCardLimits` holds the renderer to them. */
export const LIMITS = {
  blocks: 50,
  headerText: 150,
  sectionText: 3000,
  fieldText: 2000,
  fields: 10,
  contextElements: 10,
  buttonValue: 2000,
  fallbackText: 3000,
  privateMetadata: 3000,
  modalTitle: 24,
} as const;

export const ACTION = {
  approve: "countersign.approve",
  approveWithComment: "countersign.approve_with_comment",
  deny: "countersign.deny",
} as const;

export const VIEW = {
  deny: "countersign.deny_modal",
  approve: "countersign.approve_modal",
} as const;

/** The modal's single input: block and action id (state.values.reason.reason). */
export const REASON_INPUT = "reason";
export const REASON_MAX = 2000;

/** Longest reason quoted on a card; the full text stays in the request and the audit log. */
const CARD_REASON_MAX = 500;

export interface SlackCard {
  text: string;
  blocks: KnownBlock[];
}

/** Escapes the three characters Slack treats as control characters in mrkdwn. */
export function escapeMrkdwn(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Text for an inline `code` span: a backtick inside would end the span early. */
function inlineCode(s: string): string {
  return `\`${escapeMrkdwn(s).replace(/`/g, "ˋ")}\``;
}

/**
 * Cuts to at most `max` UTF-16 units (the stricter way to count Slack's limits), marking
 * the cut and never splitting a surrogate pair.
 */
export function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  let out = "";
  for (const c of s) {
    if (out.length + c.length > max - 1) break;
    out += c;
  }
  return `${out}…`;
}

function quote(s: string): string {
  return escapeMrkdwn(s)
    .split("\n")
    .map((l) => `> ${l}`)
    .join("\n");
}

/** A date Slack shows in each reader's own time zone; the fallback is UTC. */
export function slackDate(iso: string, format = "{date_short_pretty} at {time}"): string {
  const d = new Date(iso);
  const fallback = `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  return `<!date^${Math.floor(d.getTime() / 1000)}^${format}|${fallback}>`;
}

/**
 * Pretty-prints params for a code block whose final text (after escaping) fits in
 * `budget` characters. Returns the escaped code and how many characters were left out.
 */
export function paramsForCodeBlock(params: unknown, budget: number): { code: string; omitted: number } {
  const pretty = JSON.stringify(params ?? {}, null, 2) ?? "null";
  const chars = Array.from(pretty);
  let out = "";
  let shown = 0;
  for (const c of chars) {
    // A zero-width space after each backtick keeps "```" in a value from closing the block.
    const e = c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === "`" ? "`\u200b" : c;
    if (out.length + e.length > budget) break;
    out += e;
    shown++;
  }
  return { code: out, omitted: chars.length - shown };
}

const RISK_ICON: Record<string, string> = {
  low: ":large_green_circle:",
  medium: ":large_yellow_circle:",
  high: ":large_orange_circle:",
  critical: ":red_circle:",
};

function progress(r: RequestResource): string {
  return `${r.approvals.received} of ${r.approvals.required} approval${r.approvals.required === 1 ? "" : "s"}`;
}

/** The state line: what a reader needs first, stated plainly. */
function stateLine(r: RequestResource): string {
  const when = r.decidedAt ? ` · ${slackDate(r.decidedAt)}` : "";
  const denier = r.decisions.find((d) => d.decision === "deny");
  switch (r.status) {
    case "pending":
      return `:hourglass_flowing_sand: *Waiting for approval* · *${progress(r)}*\nExpires ${slackDate(r.expiresAt)}`;
    case "approved":
      return `:white_check_mark: *Approved* · ${progress(r)}${when}`;
    case "denied":
      if (denier) return `:no_entry: *Denied* by ${escapeMrkdwn(denier.reviewer)}${when}`;
      if (r.resolution === "timeout") return `:no_entry: *Denied: expired without a decision*${when}`;
      return `:no_entry: *Denied*${when}`;
    case "expired":
      return `:hourglass: *Expired without a decision* · ${progress(r)}${when}`;
    case "cancelled":
      return `:no_entry_sign: *Cancelled by the requester*${when}`;
  }
}

function fallbackText(r: RequestResource): string {
  const what = `${r.summary} (${r.action}${r.environment ? ` in ${r.environment}` : ""})`;
  const lead: Record<RequestResource["status"], string> = {
    pending: `Approval needed: ${what}, ${progress(r)}`,
    approved: `Approved: ${what}`,
    denied: `Denied: ${what}`,
    expired: `Expired: ${what}`,
    cancelled: `Cancelled: ${what}`,
  };
  return truncate(escapeMrkdwn(lead[r.status]), LIMITS.fallbackText);
}

function field(label: string, value: string): { type: "mrkdwn"; text: string } {
  return { type: "mrkdwn", text: truncate(`*${label}*\n${value}`, LIMITS.fieldText) };
}

function section(text: string): SectionBlock {
  return { type: "section", text: { type: "mrkdwn", text: truncate(text, LIMITS.sectionText) } };
}

function decisionBlock(d: RequestResource["decisions"][number]): SectionBlock {
  const verb = d.decision === "approve" ? ":white_check_mark: *Approved* by" : ":no_entry: *Denied* by";
  const via = d.surface === "slack" ? "Slack" : d.surface === "teams" ? "Teams" : d.surface === "api" ? "the API" : d.surface;
  const head = `${verb} ${escapeMrkdwn(d.reviewer)} · ${slackDate(d.decidedAt)} · via ${via}`;
  return section(d.reason ? `${head}\n${quote(truncate(d.reason, CARD_REASON_MAX))}` : head);
}

function buttons(requestId: string): ActionsBlock {
  const approve: Button = {
    type: "button",
    action_id: ACTION.approve,
    text: { type: "plain_text", text: "Approve" },
    style: "primary",
    value: requestId,
  };
  const withComment: Button = {
    type: "button",
    action_id: ACTION.approveWithComment,
    text: { type: "plain_text", text: "Approve with comment…" },
    value: requestId,
  };
  const deny: Button = { type: "button", action_id: ACTION.deny, text: { type: "plain_text", text: "Deny" }, style: "danger", value: requestId };
  return { type: "actions", block_id: "countersign.decide", elements: [approve, withComment, deny] };
}

const PARAMS_HEAD = "*Params*\n```\n";
const PARAMS_TAIL = "\n```";

function paramsBlock(params: unknown): SectionBlock {
  // Reserve room for the longest possible note so the text never exceeds the limit.
  const note = (n: number) => `\n_… ${n.toLocaleString("en-US")} more characters_`;
  const budget = LIMITS.sectionText - PARAMS_HEAD.length - PARAMS_TAIL.length - note(10_000_000).length;
  const { code, omitted } = paramsForCodeBlock(params, budget);
  return section(`${PARAMS_HEAD}${code}${PARAMS_TAIL}${omitted > 0 ? note(omitted) : ""}`);
}

/** Renders the approval card for a request in its current state. */
export function renderCard(r: RequestResource): SlackCard {
  const header: HeaderBlock = { type: "header", text: { type: "plain_text", text: truncate(r.summary.trim() || r.action, LIMITS.headerText), emoji: false } };
  const facts: SectionBlock = {
    type: "section",
    fields: [
      field("Action", inlineCode(r.action)),
      field("Environment", r.environment ? escapeMrkdwn(r.environment) : "_not given_"),
      field("Resource", r.resource ? inlineCode(r.resource) : "_not given_"),
      field("Risk", r.risk ? `${RISK_ICON[r.risk] ?? ""} ${escapeMrkdwn(r.risk)}`.trim() : "_not given_"),
      field("Agent", `${inlineCode(r.agent.name)} (owner ${escapeMrkdwn(r.agent.owner)})`),
      field("On behalf of", r.onBehalfOf ? escapeMrkdwn(r.onBehalfOf) : "_nobody_"),
    ],
  };
  const blocks: KnownBlock[] = [header, section(stateLine(r)), facts];
  if (r.rationale) blocks.push(section(`*Rationale*\n${quote(truncate(r.rationale, LIMITS.sectionText - 200))}`));
  blocks.push(paramsBlock(r.params));

  const approvers = r.policy.approverGroups.length ? r.policy.approverGroups.map(escapeMrkdwn).join(", ") : "_none_";
  const policy: ContextBlock = {
    type: "context",
    elements: [
      {
        type: "mrkdwn",
        text: truncate(
          `Policy rule ${r.policy.ruleId ? inlineCode(r.policy.ruleId) : "_default_"} · approvers: ${approvers} · needs ${r.approvals.required} approval${r.approvals.required === 1 ? "" : "s"}`,
          LIMITS.sectionText,
        ),
      },
      { type: "mrkdwn", text: `${inlineCode(r.id)} · requested ${slackDate(r.createdAt)}` },
    ],
  };
  blocks.push(policy);

  // Deny and approve votes: at most `approvals` (≤ 10) plus one deny, well under the cap.
  const room = LIMITS.blocks - blocks.length - 2;
  const shown = r.decisions.slice(0, room);
  if (shown.length) blocks.push({ type: "divider" });
  for (const d of shown) blocks.push(decisionBlock(d));
  if (r.decisions.length > shown.length) blocks.push(section(`_… and ${r.decisions.length - shown.length} more decisions_`));

  if (r.status === "pending") blocks.push(buttons(r.id));
  return { text: fallbackText(r), blocks };
}

/** Returns the first limit a card breaks, or null. Used by tests and as a guard before sending. */
export function checkCardLimits(card: SlackCard): string | null {
  if (card.blocks.length > LIMITS.blocks) return `${card.blocks.length} blocks (max ${LIMITS.blocks})`;
  if (!card.text.trim()) return "empty fallback text";
  for (const [i, b] of card.blocks.entries()) {
    if (b.type === "header" && b.text.text.length > LIMITS.headerText) return `block ${i}: header text too long`;
    if (b.type === "section") {
      if (b.text && b.text.text.length > LIMITS.sectionText) return `block ${i}: section text ${b.text.text.length} chars`;
      if (b.fields && b.fields.length > LIMITS.fields) return `block ${i}: too many fields`;
      for (const f of b.fields ?? []) if (f.text.length > LIMITS.fieldText) return `block ${i}: field text too long`;
    }
    if (b.type === "context" && b.elements.length > LIMITS.contextElements) return `block ${i}: too many context elements`;
  }
  return null;
}

/** What a modal carries back in its signed view_submission: only the request id and where to answer. */
export interface ModalMetadata {
  requestId: string;
  channel: string | null;
  /** The card message the button sat on, checked against the request's card at submit. */
  messageTs: string | null;
}

function modal(kind: "deny" | "approve", summary: string, meta: ModalMetadata): ModalView {
  const input: InputBlock = {
    type: "input",
    block_id: REASON_INPUT,
    optional: kind === "approve",
    label: { type: "plain_text", text: kind === "deny" ? "Reason (required)" : "Comment (optional)" },
    element: {
      type: "plain_text_input",
      action_id: REASON_INPUT,
      multiline: true,
      max_length: REASON_MAX,
      placeholder: {
        type: "plain_text",
        text: kind === "deny" ? "Why is this denied? The requester sees this." : "Anything the requester or auditors should know",
      },
    },
  };
  return {
    type: "modal",
    callback_id: kind === "deny" ? VIEW.deny : VIEW.approve,
    private_metadata: JSON.stringify(meta),
    title: { type: "plain_text", text: kind === "deny" ? "Deny request" : "Approve request" },
    submit: { type: "plain_text", text: kind === "deny" ? "Deny" : "Approve" },
    close: { type: "plain_text", text: "Cancel" },
    blocks: [section(`*${escapeMrkdwn(truncate(summary, 300))}*`), input],
  };
}

export function denyModal(summary: string, meta: ModalMetadata): ModalView {
  return modal("deny", summary, meta);
}

export function approveModal(summary: string, meta: ModalMetadata): ModalView {
  return modal("approve", summary, meta);
}
