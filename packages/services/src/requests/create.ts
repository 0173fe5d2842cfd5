import { CountersignError, CreateRequestInput, canonicalJson, canonicalSha256, evaluatePolicy, sha256Hex } from "@countersign/core";
import { type AuditInput, appendAudit, knowAuditHead } from "../audit/append.ts";
import { requireAgent } from "../authz.ts";
import { type ServiceCall, withTransaction } from "../context.ts";
import { fromZod, isUniqueViolation } from "../errors.ts";
import { newId } from "../ids.ts";
import { type QueuedJob, queueJob } from "../outbox/enqueue.ts";
import { currentTraceContext, inSpan, inSpanSync, type Span } from "../tracing.ts";
import { finishRequest } from "./finish.ts";
import { loadResource, type RequestResource, type RequestRow, toResource } from "./resource.ts";
import { insertRequest } from "./writes.ts";

const POLICY_ACTOR = { type: "system", name: "policy" } as const;

export interface CreateRequestResult {
  resource: RequestResource;
  /** True when an Idempotency-Key matched an earlier request and nothing new was made. */
  replayed: boolean;
}

type CreateInput = {
  body: unknown;
  idempotencyKey?: string | undefined;
  /** Redeem the receipt of a request the policy approves at once (see finishRequest's `redeem`). */
  redeemIfAllowed?: boolean;
};

/**
 * The intake, as one span (`countersign.intake`, continuing the agent's traceparent when
 * the HTTP layer extracted one). Its context is stored with the request, so everything
 * that later happens to the request joins this trace.
 */
export function createRequest(call: ServiceCall<CreateInput>): Promise<CreateRequestResult> {
  return inSpan("countersign.intake", {}, (span) => intake(call, span));
}

async function intake({ ctx, input }: ServiceCall<CreateInput>, span: Span): Promise<CreateRequestResult> {
  const agent = requireAgent(ctx.actor, "requests");
  const parsed = CreateRequestInput.safeParse(input.body);
  if (!parsed.success) throw fromZod(parsed.error);
  const body = parsed.data;
  const { deps } = ctx;
  const idempotencyKey = input.idempotencyKey;
  if (idempotencyKey !== undefined && !/^[\x21-\x7e]{1,255}$/.test(idempotencyKey)) {
    throw new CountersignError("invalid_request", "Idempotency-Key must be 1-255 printable ASCII characters", {
      errors: [{ path: "Idempotency-Key", message: "1-255 printable ASCII characters" }],
    });
  }
  const bodySha256 = idempotencyKey ? sha256Hex(canonicalJson(body)) : null;

  const replay = async (): Promise<CreateRequestResult | null> => {
    if (!idempotencyKey) return null;
    const prior = await deps.db.prisma.approvalRequest.findUnique({
      where: { apiKeyId_idempotencyKey: { apiKeyId: agent.keyId, idempotencyKey } },
      select: { id: true, bodySha256: true },
    });
    if (!prior) return null;
    if (prior.bodySha256 !== bodySha256) {
      throw new CountersignError("idempotency_conflict", "This Idempotency-Key was already used with a different request body.");
    }
    return { resource: (await loadResource(deps.db.prisma, prior.id)) as RequestResource, replayed: true };
  };
  span.setAttributes({ "countersign.action": body.action, "countersign.agent.key_id": agent.keyId });
  // No read first to look for an earlier request with this key: the insert's unique index
  // finds it (below), so a first attempt, the usual case, costs no extra round trip.

  if (body.callbackUrl) await deps.callbackGuard.check(body.callbackUrl);

  const decision = inSpanSync("countersign.policy.evaluate", {}, (s) => {
    const d = evaluatePolicy(deps.policy(), body, body.expiresIn);
    s.setAttributes({
      "countersign.policy.rule": d.ruleId ?? "(default)",
      "countersign.policy.effect": d.effect,
      "countersign.policy.required_approvals": d.requiredApprovals,
    });
    return d;
  });
  const now = deps.clock();
  const id = newId("req");
  span.setAttributes({ "countersign.request.id": id, "countersign.policy.effect": decision.effect, "countersign.replayed": false });
  const expiresAt = new Date(now.getTime() + decision.expiresInSeconds * 1000);
  const status = decision.effect === "allow" ? "approved" : decision.effect === "deny" ? "denied" : "pending";

  try {
    const row = await withTransaction(ctx, async (tctx) => {
      const { tx } = tctx;
      // Shares the key's row with a concurrent revocation, which cancels the key's pending
      // requests: a request is either created before the revocation (and cancelled by it)
      // or refused, never left pending for a revoked key.
      const key = await tx.$queryRawUnsafe<{ revoked_at: Date | null }[]>(`SELECT revoked_at FROM api_keys WHERE id = $1 FOR SHARE`, agent.keyId);
      if (!key[0] || key[0].revoked_at) throw new CountersignError("unauthorized", "The API key is missing, malformed, unknown or revoked.");
      // Everything the new row holds is known here, so nothing is read back.
      const created: RequestRow = {
        id,
        apiKeyId: agent.keyId,
        agentName: agent.keyName,
        agentOwner: agent.owner,
        action: body.action,
        summary: body.summary,
        params: body.params as RequestRow["params"],
        paramsSha256: canonicalSha256(body.params),
        resource: body.resource ?? null,
        environment: body.environment ?? null,
        risk: body.risk ?? null,
        rationale: body.rationale ?? null,
        onBehalfOf: body.onBehalfOf ?? null,
        callbackUrl: body.callbackUrl ?? null,
        metadata: (body.metadata ?? null) as RequestRow["metadata"],
        status: "pending",
        ruleId: decision.ruleId,
        effect: decision.effect,
        requiredApprovals: decision.requiredApprovals,
        approverGroups: decision.approverGroups,
        eligible: decision.eligible,
        notify: decision.notify.map((n) => n.name),
        onExpire: decision.onExpire,
        expiresAt,
        decidedAt: null,
        resolution: null,
        receipt: null,
        redeemedAt: null,
        idempotencyKey: idempotencyKey ?? null,
        bodySha256,
        // The intake span's context (null with tracing off), written by the same INSERT.
        traceContext: currentTraceContext() as RequestRow["traceContext"],
        createdAt: now,
        updatedAt: now,
        decisions: [],
        messages: [],
        apiKey: { revokedAt: null },
      };
      // Its id was made just now, so its audit chain is empty.
      knowAuditHead(tx, id, null);
      const createdEvent: AuditInput = {
        type: "request.created",
        requestId: id,
        actor: ctx.actor,
        data: {
          action: body.action,
          paramsSha256: created.paramsSha256,
          onBehalfOf: created.onBehalfOf,
          ruleId: decision.ruleId,
          effect: decision.effect,
          requiredApprovals: decision.requiredApprovals,
          eligible: decision.eligible,
          expiresAt: expiresAt.toISOString(),
        },
      };
      if (status !== "pending") {
        // Decided by the policy: the row is written once, in its final state, with both events.
        return finishRequest({
          ctx: { ...tctx, actor: POLICY_ACTOR },
          input: {
            row: created,
            to: status,
            resolution: "policy",
            now,
            auditData: { ruleId: decision.ruleId },
            precedingAudit: [createdEvent],
            insert: true,
            redeem: input.redeemIfAllowed === true,
          },
        });
      }
      const posts: QueuedJob[] = [];
      for (const target of decision.notify) {
        if (target.channel.slack && deps.surfaces.slack) {
          const payload = { requestId: id, destination: target.name, channel: target.channel.slack.channel };
          posts.push(queueJob({ kind: "slack.post", requestId: id, payload, runAt: now }, now));
        }
        if (target.channel.teams && deps.surfaces.teams) {
          const payload = { requestId: id, destination: target.name, channel: target.channel.teams.channel, team: target.channel.teams.team ?? null };
          posts.push(queueJob({ kind: "teams.post", requestId: id, payload, runAt: now }, now));
        }
      }
      // The row, its event and its card posts: one statement.
      await appendAudit(tx, createdEvent, now, { writes: [insertRequest(created), ...posts.map((p) => p.write)] });
      return created;
    });
    deps.events?.({ type: "request.created", action: body.action, rule: decision.ruleId, effect: decision.effect });
    return { resource: toResource(row, []), replayed: false };
  } catch (e) {
    // A retry with this Idempotency-Key, or the loser of two concurrent submissions: the
    // insert was refused and rolled back with everything else, and the earlier request is the answer.
    if (idempotencyKey && isUniqueViolation(e)) {
      const earlier = await replay();
      if (earlier) {
        span.setAttributes({ "countersign.request.id": earlier.resource.id, "countersign.replayed": true });
        return earlier;
      }
    }
    throw e;
  }
}
