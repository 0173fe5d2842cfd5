import type { RequestResource } from "@countersign/services";

/**
 * The Teams approval card: Adaptive Card 1.5 with Universal Actions (Action.Execute).
 * Pure: the same request renders the same card, so a job can tell whether a card is stale.
 *
 * Everything a requester controls (summary, params, rationale, resource, names, reasons)
 * goes into TextRuns, which Teams never renders as markdown, so a request cannot smuggle
 * links or formatting into the card.
 */

export const CARD_VERSION = "1.5";
/** Teams refuses messages over about 28 KB; the card leaves room for the activity around it. */
export const MAX_CARD_BYTES = 24 * 1024;
export const REASON_INPUT_ID = "reason";
export const VERBS = { approve: "approve", deny: "deny", refresh: "refresh" } as const;

export type NoticeTone = "good" | "warning" | "attention" | "accent";
export interface CardNotice {
  tone: NoticeTone;
  text: string;
}

export interface CardOptions {
  /** A message shown above the card, for example why a decision was refused. */
  notice?: CardNotice;
}

export type AdaptiveCard = Record<string, unknown> & { type: "AdaptiveCard"; version: string; body: Element[] };
type Element = Record<string, unknown>;

interface Budget {
  params: number;
  rationale: number;
  reason: number;
  field: number;
}
// Tried in order until the card fits; the last one fits whatever the request holds.
const BUDGETS: Budget[] = [
  { params: 2000, rationale: 2000, reason: 500, field: 500 },
  { params: 1000, rationale: 800, reason: 200, field: 300 },
  { params: 300, rationale: 300, reason: 80, field: 120 },
  { params: 0, rationale: 120, reason: 0, field: 60 },
];

const HEADINGS: Record<RequestResource["status"], { text: string; color: string }> = {
  pending: { text: "Approval needed", color: "Accent" },
  approved: { text: "Approved", color: "Good" },
  denied: { text: "Denied", color: "Attention" },
  expired: { text: "Expired", color: "Warning" },
  cancelled: { text: "Cancelled", color: "Warning" },
};

export function renderCard(r: RequestResource, opts: CardOptions = {}): AdaptiveCard {
  let card: AdaptiveCard | undefined;
  for (const budget of BUDGETS) {
    card = build(r, opts, budget);
    if (cardBytes(card) <= MAX_CARD_BYTES) return card;
  }
  return card as AdaptiveCard;
}

/** A card that only carries a message (the request could not be loaded). */
export function renderNoticeCard(notice: CardNotice): AdaptiveCard {
  return { type: "AdaptiveCard", $schema: "http://adaptivecards.io/schemas/adaptive-card.json", version: CARD_VERSION, body: [noticeBlock(notice)] };
}

export function cardBytes(card: unknown): number {
  return Buffer.byteLength(JSON.stringify(card), "utf8");
}

function build(r: RequestResource, opts: CardOptions, b: Budget): AdaptiveCard {
  const heading = HEADINGS[r.status];
  const body: Element[] = [];
  if (opts.notice) body.push(noticeBlock({ tone: opts.notice.tone, text: truncate(opts.notice.text, 600) }));
  body.push({ type: "TextBlock", text: heading.text, size: "Large", weight: "Bolder", color: heading.color, wrap: true });
  body.push(rich([run(r.summary, { size: "Medium", weight: "Bolder" })]));

  const facts: [string, Element][] = [["Action", rich([run(truncate(r.action, b.field))])]];
  if (r.environment) facts.push(["Environment", rich([run(truncate(r.environment, b.field))])]);
  if (r.resource) facts.push(["Resource", rich([run(truncate(r.resource, b.field))])]);
  if (r.risk) facts.push(["Risk", rich([run(r.risk.toUpperCase(), { weight: "Bolder", color: riskColor(r.risk) })])]);
  facts.push(["Agent", rich([run(truncate(r.agent.name, b.field)), run(` (owner ${r.agent.owner})`, { isSubtle: true })])]);
  if (r.onBehalfOf) facts.push(["On behalf of", rich([run(r.onBehalfOf)])]);
  facts.push(["Rule", rich([run(r.policy.ruleId ?? "default")])]);
  facts.push(["Approvals", text(`${r.approvals.received} of ${r.approvals.required}${r.status === "pending" ? " received" : ""}`)]);
  if (r.status === "pending") facts.push(["Expires", text(when(r.expiresAt))]);
  else if (r.decidedAt) facts.push([r.status === "approved" || r.status === "denied" ? "Decided" : "Closed", text(when(r.decidedAt))]);
  facts.push(["Request", rich([run(r.id, { fontType: "Monospace" })])]);
  body.push({ type: "Container", spacing: "Medium", items: facts.map(([label, value]) => factRow(label, value)) });

  if (r.rationale && b.rationale > 0) {
    body.push(label("Rationale"));
    body.push(rich([run(truncate(r.rationale, b.rationale))]));
  }

  body.push(label("Parameters"));
  body.push(...paramsBlocks(r, b.params));

  if (r.decisions.length > 0) {
    body.push(label("Decisions"));
    for (const d of r.decisions) body.push(decisionLine(d, b.reason));
  }

  const outcome = outcomeText(r);
  if (outcome) body.push({ type: "TextBlock", text: outcome, wrap: true, weight: "Bolder", color: heading.color, spacing: "Medium" });

  const card: AdaptiveCard = {
    type: "AdaptiveCard",
    $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
    version: CARD_VERSION,
    fallbackText: `Countersign approval request ${r.id} (${r.status}): ${r.summary}`,
    msteams: { width: "Full" },
    body,
  };
  if (r.status === "pending") {
    body.push({
      type: "Input.Text",
      id: REASON_INPUT_ID,
      label: "Reason",
      placeholder: "Required to deny; optional to approve",
      isMultiline: true,
      maxLength: 2000,
      spacing: "Medium",
    });
    card.actions = [
      { type: "Action.Execute", title: "Approve", verb: VERBS.approve, style: "positive", data: { requestId: r.id } },
      { type: "Action.Execute", title: "Deny", verb: VERBS.deny, style: "destructive", data: { requestId: r.id } },
    ];
  }
  return card;
}

function paramsBlocks(r: RequestResource, budget: number): Element[] {
  const full = JSON.stringify(r.params ?? {}, null, 2);
  if (full === "{}") return [text("(none)", { isSubtle: true })];
  const shown = truncate(full, budget, "");
  const out: Element[] = [];
  if (shown) out.push(rich([run(shown, { fontType: "Monospace", size: "Small" })]));
  if (shown.length < full.length) {
    out.push(
      text(
        `Parameters truncated: showing ${shown.length.toLocaleString("en-US")} of ${full.length.toLocaleString("en-US")} characters. ` +
          `The full parameters are in the request (GET /v1/requests/${r.id}); their sha256 is ${r.paramsSha256}.`,
        { isSubtle: true, size: "Small" },
      ),
    );
  }
  return out;
}

function decisionLine(d: RequestResource["decisions"][number], reasonBudget: number): Element {
  const approve = d.decision === "approve";
  const runs = [
    run(approve ? "✔ " : "✖ ", { color: approve ? "Good" : "Attention", weight: "Bolder" }),
    run(d.reviewer, { weight: "Bolder" }),
    run(`${approve ? " approved" : " denied"} via ${surfaceName(d.surface)}`),
  ];
  if (d.reason && reasonBudget > 0) runs.push(run(`: ${truncate(d.reason, reasonBudget)}`, { italic: true }));
  return rich(runs, { spacing: "Small" });
}

function outcomeText(r: RequestResource): string | null {
  const by = (decision: string) =>
    r.decisions
      .filter((d) => d.decision === decision)
      .map((d) => d.reviewer)
      .join(", ");
  switch (r.status) {
    case "pending":
      return null;
    case "approved":
      return r.resolution === "policy" ? "Approved by policy." : `Approved by ${by("approve")}.`;
    case "denied":
      if (r.resolution === "timeout") return "Denied: nobody decided before the request expired.";
      return r.resolution === "policy" ? "Denied by policy." : `Denied by ${by("deny")}.`;
    case "expired":
      return "Expired: nobody decided in time. Nothing was approved.";
    case "cancelled":
      return "Cancelled by the requester.";
  }
}

function noticeBlock(n: CardNotice): Element {
  return { type: "Container", style: n.tone, items: [rich([run(n.text, { weight: "Bolder" })])] };
}

function factRow(name: string, value: Element): Element {
  return {
    type: "ColumnSet",
    spacing: "Small",
    columns: [
      { type: "Column", width: 1, items: [{ type: "TextBlock", text: name, weight: "Bolder", wrap: true }] },
      { type: "Column", width: 3, items: [value] },
    ],
  };
}

function label(s: string): Element {
  return { type: "TextBlock", text: s, weight: "Bolder", spacing: "Medium", wrap: true };
}

function text(s: string, extra: Element = {}): Element {
  return { type: "TextBlock", text: s, wrap: true, ...extra };
}

function rich(inlines: Element[], extra: Element = {}): Element {
  return { type: "RichTextBlock", inlines, ...extra };
}

function run(s: string, extra: Element = {}): Element {
  return { type: "TextRun", text: s, ...extra };
}

/** Teams formats these in the reader's locale and time zone; other hosts show the date as is. */
function when(iso: string): string {
  const rfc3339 = iso.replace(/\.\d+Z$/, "Z");
  return `{{DATE(${rfc3339}, SHORT)}} {{TIME(${rfc3339})}}`;
}

function riskColor(risk: string): string {
  return risk === "critical" || risk === "high" ? "Attention" : risk === "medium" ? "Warning" : "Default";
}

function surfaceName(s: string): string {
  return s === "teams" ? "Teams" : s === "slack" ? "Slack" : s === "api" ? "API" : s;
}

/** Cuts to `max` characters without splitting a surrogate pair, marking the cut with `mark`. */
export function truncate(s: string, max: number, mark = "…"): string {
  if (s.length <= max) return s;
  if (max <= 0) return "";
  let cut = s.slice(0, Math.max(0, max - mark.length));
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return cut + mark;
}
