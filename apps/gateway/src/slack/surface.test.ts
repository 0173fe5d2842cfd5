import type { Logger } from "@countersign/core";
import type { ServiceDeps } from "@countersign/services";
import { describe, expect, it } from "vitest";
import { createSlackSurface, SLACK_EVENTS_PATH } from "./surface.ts";

const log: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };
// Construction touches neither the database nor Slack.
const deps = { db: {} } as unknown as ServiceDeps;
const config = { botToken: "xoxb-1", signingSecret: "s", apiUrl: "http://127.0.0.1:9/api/" };

describe("createSlackSurface", () => {
  it("over HTTP mounts Bolt's receiver at /slack/events and handles the card jobs", () => {
    const s = createSlackSurface(config, deps, log);
    expect(s.name).toBe("slack");
    expect(s.mount?.path).toBe(SLACK_EVENTS_PATH);
    expect(typeof s.mount?.router).toBe("function");
    expect(Object.keys(s.handlers).sort()).toEqual(["slack.post", "slack.update"]);
  });

  it("in Socket Mode mounts no HTTP route", () => {
    const s = createSlackSurface({ ...config, appToken: "xapp-1-A1-1-abc" }, deps, log);
    expect(s.mount).toBeUndefined();
    expect(Object.keys(s.handlers).sort()).toEqual(["slack.post", "slack.update"]);
  });
});
