import { CountersignError } from "@countersign/core";
import { describe, expect, it } from "vitest";
import { SlackDirectory, type SlackUser } from "./identity.ts";

const HOME = { teamId: "T1", enterpriseId: undefined };

function directory(users: Record<string, SlackUser>, opts: { fail?: unknown; home?: typeof HOME } = {}) {
  const lookups: string[] = [];
  const dir = new SlackDirectory({
    lookup: async (id) => {
      lookups.push(id);
      if (opts.fail) throw opts.fail;
      return users[id];
    },
    home: async () => opts.home ?? HOME,
  });
  return { dir, lookups };
}

async function refusal(p: Promise<unknown>): Promise<CountersignError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(CountersignError);
  expect((e as CountersignError).code).toBe("reviewer_unverified");
  return e as CountersignError;
}

describe("SlackDirectory", () => {
  it("maps a user id to a lowercased email and caches it", async () => {
    const { dir, lookups } = directory({ U0001: { id: "U0001", team_id: "T1", profile: { email: " Alice@Example.COM " } } });
    expect(await dir.principalFor("U0001")).toBe("alice@example.com");
    expect(await dir.principalFor("U0001")).toBe("alice@example.com");
    expect(lookups).toEqual(["U0001"]);
  });

  it("refuses deleted users, bots and users without an email, and does not cache refusals", async () => {
    const { dir, lookups } = directory({
      U0002: { id: "U0002", deleted: true, profile: { email: "gone@example.com" } },
      U0003: { id: "U0003", is_bot: true, profile: { email: "bot@example.com" } },
      U0004: { id: "U0004", profile: {} },
    });
    expect((await refusal(dir.principalFor("U0002"))).message).toMatch(/deactivated/);
    expect((await refusal(dir.principalFor("U0003"))).message).toMatch(/Bots and apps/);
    expect((await refusal(dir.principalFor("U0004"))).message).toMatch(/no email address/);
    await refusal(dir.principalFor("U0004"));
    expect(lookups.filter((x) => x === "U0004")).toHaveLength(2);
  });

  it("refuses people from another organisation (Slack Connect)", async () => {
    const { dir } = directory({
      U0005: { id: "U0005", team_id: "T_OTHER", profile: { email: "eve@other.example" } },
      U0006: { id: "U0006", team_id: "T1", is_stranger: true, profile: { email: "x@other.example" } },
    });
    expect((await refusal(dir.principalFor("U0005"))).message).toMatch(/another Slack organisation/);
    await refusal(dir.principalFor("U0006"));
  });

  it("accepts members of the same Enterprise Grid organisation from another workspace", async () => {
    const { dir } = directory(
      { U0007: { id: "U0007", team_id: "T2", enterprise_user: { enterprise_id: "E1" }, profile: { email: "grid@example.com" } } },
      { home: { teamId: "T1", enterpriseId: "E1" } as unknown as typeof HOME },
    );
    expect(await dir.principalFor("U0007")).toBe("grid@example.com");
  });

  it("turns Slack failures into a clear refusal that records nothing", async () => {
    const notFound = directory({}, { fail: { code: "slack_webapi_platform_error", data: { error: "user_not_found" } } });
    expect((await refusal(notFound.dir.principalFor("U0008"))).message).toMatch(/does not know your account/);
    const limited = directory({}, { fail: { code: "slack_webapi_rate_limited_error", retryAfter: 7 } });
    expect((await refusal(limited.dir.principalFor("U0008"))).message).toMatch(/try again in 7 s/);
  });

  it("rejects ids that are not Slack user ids without calling Slack", async () => {
    const { dir, lookups } = directory({});
    await refusal(dir.principalFor("alice@example.com"));
    expect(lookups).toEqual([]);
  });
});
