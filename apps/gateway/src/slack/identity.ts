import { CountersignError, parsePrincipal } from "@countersign/core";
import { describeSlackError } from "./slack-errors.ts";
import { TtlCache } from "./ttl-cache.ts";

/** The fields of a `users.info` user that identity depends on. */
export interface SlackUser {
  id?: string;
  deleted?: boolean;
  is_bot?: boolean;
  is_app_user?: boolean;
  is_stranger?: boolean;
  team_id?: string;
  enterprise_user?: { enterprise_id?: string };
  profile?: { email?: string };
}

/** The workspace (and Enterprise Grid org) the app is installed in, from `auth.test`. */
export interface HomeTeam {
  teamId: string | undefined;
  enterpriseId: string | undefined;
}

export interface DirectoryOptions {
  /** `users.info`: throws the Web API's errors. */
  lookup: (userId: string) => Promise<SlackUser | undefined>;
  home: () => Promise<HomeTeam>;
  ttlMs?: number;
}

const unverified = (message: string) => new CountersignError("reviewer_unverified", message);

/**
 * Maps a Slack user id (taken from a signed payload) to a principal through `users.info`.
 * Nothing else in the payload is trusted. Verified emails are cached for `ttlMs`;
 * refusals are not cached, so a fixed profile works on the next click.
 */
export class SlackDirectory {
  private readonly cache: TtlCache<string>;

  constructor(private readonly o: DirectoryOptions) {
    this.cache = new TtlCache<string>(o.ttlMs ?? 5 * 60_000);
  }

  async principalFor(userId: string): Promise<string> {
    if (!/^[UW][A-Z0-9]{2,}$/.test(userId)) throw unverified("Countersign could not read your Slack user id.");
    const cached = this.cache.get(userId);
    if (cached) return cached;

    let user: SlackUser | undefined;
    try {
      user = await this.o.lookup(userId);
    } catch (e) {
      const d = describeSlackError(e);
      if (d.kind === "platform" && (d.error === "user_not_found" || d.error === "user_not_visible")) {
        throw unverified("Slack does not know your account, so Countersign cannot verify who you are.");
      }
      if (d.kind === "platform" && d.error === "missing_scope") {
        throw unverified("The Countersign Slack app lacks the users:read.email scope, so it cannot verify who you are. Ask a workspace admin to reinstall it.");
      }
      const wait = d.kind === "rate_limited" ? ` in ${Math.ceil(d.retryAfterMs / 1000)} s` : " in a moment";
      throw unverified(`Countersign could not check your identity with Slack right now. Nothing was recorded; try again${wait}.`);
    }

    if (!user || (user.id && user.id !== userId)) throw unverified("Slack did not return your account, so Countersign cannot verify who you are.");
    if (user.deleted) throw unverified("Your Slack account is deactivated, so it cannot decide requests.");
    if (user.is_bot || user.is_app_user || userId === "USLACKBOT") throw unverified("Bots and apps cannot decide requests; a person has to.");
    if (user.is_stranger || !(await this.sameOrganisation(user))) {
      throw unverified("Your account belongs to another Slack organisation, so it cannot decide this workspace's requests.");
    }
    if (!user.profile?.email) {
      throw unverified(
        "Your Slack profile has no email address Countersign can read, so it cannot verify who you are. Ask a workspace admin to check your profile.",
      );
    }
    // Canonical form, so a profile email that differs only cosmetically is the same person;
    // an ambiguous one (invisible characters, mixed scripts) is refused, not guessed at.
    const parsed = parsePrincipal(user.profile.email);
    if (!parsed.ok) throw unverified(`Your Slack profile email cannot be used to verify who you are: ${parsed.message}. Ask a workspace admin to correct it.`);
    const email = parsed.canonical;
    this.cache.set(userId, email);
    return email;
  }

  clear(): void {
    this.cache.clear();
  }

  /** Slack Connect lets people from other organisations click in shared channels. */
  private async sameOrganisation(user: SlackUser): Promise<boolean> {
    let home: HomeTeam;
    try {
      home = await this.o.home();
    } catch {
      throw unverified("Countersign could not reach Slack to confirm its own workspace. Nothing was recorded; try again in a moment.");
    }
    const enterprise = user.enterprise_user?.enterprise_id;
    if (home.enterpriseId && enterprise) return enterprise === home.enterpriseId;
    if (!home.teamId || !user.team_id) return true;
    return user.team_id === home.teamId;
  }
}
