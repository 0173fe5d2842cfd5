import { type Actor, CountersignError, type Logger, parsePrincipal } from "@countersign/core";
import { TeamsInfo, type TurnContext } from "botbuilder";

export type TeamsReviewer = Extract<Actor, { type: "reviewer" }>;

/** The tenant an activity says it comes from (botbuilder does not check it; we do). */
export function activityTenant(activity: TurnContext["activity"]): string | undefined {
  const channelData = activity.channelData as { tenant?: { id?: unknown } } | undefined;
  const fromChannelData = typeof channelData?.tenant?.id === "string" ? channelData.tenant.id : undefined;
  return fromChannelData ?? activity.conversation?.tenantId ?? undefined;
}

interface Entry {
  principal: string;
  expiresAt: number;
}

/**
 * Maps a Teams user (the AAD object id of a JWT-validated activity, within its tenant)
 * to a principal: the member's email, or the UPN when there is no email, as Teams
 * reports it through TeamsInfo.getMember. Lookups are cached per tenant and user.
 */
export class TeamsIdentity {
  private readonly cache = new Map<string, Entry>();

  constructor(
    private readonly log: Logger,
    private readonly opts: { ttlMs?: number; maxEntries?: number; emulator?: boolean } = {},
  ) {}

  async reviewer(ctx: TurnContext): Promise<TeamsReviewer> {
    const { activity } = ctx;
    // The Bot Framework Emulator sends no AAD object id; its user id stands in (emulator mode only).
    const aadObjectId = activity.from?.aadObjectId ?? (this.opts.emulator ? activity.from?.id : undefined);
    const tenant = activityTenant(activity) ?? "";
    if (!aadObjectId || !activity.from?.id) {
      throw new CountersignError("reviewer_unverified", "Teams did not say who you are (no Azure AD object id on the activity)");
    }
    const key = `${tenant}/${aadObjectId}`;
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > Date.now()) return this.actor(hit.principal, aadObjectId);

    const principal = await this.lookup(ctx, aadObjectId, tenant);
    if (this.cache.size >= (this.opts.maxEntries ?? 10_000)) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, { principal, expiresAt: Date.now() + (this.opts.ttlMs ?? 10 * 60_000) });
    return this.actor(principal, aadObjectId);
  }

  private actor(principal: string, aadObjectId: string): TeamsReviewer {
    return { type: "reviewer", principal, surface: "teams", surfaceUserId: aadObjectId };
  }

  private async lookup(ctx: TurnContext, aadObjectId: string, tenant: string): Promise<string> {
    let member: Awaited<ReturnType<typeof TeamsInfo.getMember>>;
    try {
      member = await TeamsInfo.getMember(ctx, ctx.activity.from.id);
    } catch (e) {
      const emulated = this.emulated(ctx);
      if (emulated) return emulated;
      this.log.warn("teams: could not look up the reviewer", { aadObjectId, tenant, err: (e as Error).message });
      throw new CountersignError("reviewer_unverified", "Countersign could not look you up in Teams; try again in a moment", { cause: e });
    }
    if (member.aadObjectId && member.aadObjectId !== aadObjectId) {
      this.log.warn("teams: member lookup returned a different user", { aadObjectId, returned: member.aadObjectId });
      throw new CountersignError("reviewer_unverified", "Teams returned a different user for your account");
    }
    if (member.tenantId && tenant && member.tenantId !== tenant) {
      throw new CountersignError("reviewer_unverified", "Teams returned your account from a different tenant");
    }
    const given = [member.email, member.userPrincipalName].filter((v): v is string => typeof v === "string" && v.trim() !== "");
    for (const v of given) {
      const r = parsePrincipal(v);
      if (r.ok) return r.canonical;
      // An address that is there but ambiguous is refused, never skipped for the next one.
      if (v.includes("@")) throw new CountersignError("reviewer_unverified", `your Teams account's address cannot be used to verify who you are: ${r.message}`);
    }
    const emulated = this.emulated(ctx);
    if (emulated) return emulated;
    throw new CountersignError("reviewer_unverified", "your Teams account has no email address or user principal name that Countersign can use");
  }

  /** Emulator mode only: the Bot Framework Emulator has no directory, so its user name stands in. */
  private emulated(ctx: TurnContext): string | undefined {
    if (!this.opts.emulator) return undefined;
    const name = ctx.activity.from?.name?.trim();
    const r = name ? parsePrincipal(name) : undefined;
    return r?.ok ? r.canonical : undefined;
  }
}
