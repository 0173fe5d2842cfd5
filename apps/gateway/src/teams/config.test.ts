import type { Logger } from "@countersign/core";
import type { ServiceDeps } from "@countersign/services";
import { describe, expect, it } from "vitest";
import { EnvError, parseEnv } from "../env.ts";
import { teamsSettings } from "./config.ts";
import { buildTeamsSurface } from "./index.ts";

const APP = { TEAMS_APP_ID: "0b5e0c3c-5d0e-4b8a-9d77-3f0b5c1a2e10", TEAMS_APP_PASSWORD: "secret", TEAMS_APP_TYPE: "MultiTenant" };
const TENANT = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const sovereign = (base: string) => ({
  TEAMS_OPENID_METADATA_URL: `${base}/v1/.well-known/openidconfiguration`,
  TEAMS_TOKEN_ISSUER: "https://api.botframework.us",
  TEAMS_LOGIN_URL: `${base}/MicrosoftServices.onmicrosoft.us`,
  TEAMS_OAUTH_SCOPE: "https://api.botframework.us",
  TEAMS_CALLER_ID: "urn:botframework:azureusgov",
  TEAMS_OAUTH_API_URL: `${base}/oauth`,
});
const settings = (env: Record<string, string>) => teamsSettings(parseEnv({ NODE_ENV: "test", ...env }));
const problem = (env: Record<string, string>) => {
  try {
    settings(env);
  } catch (e) {
    expect(e).toBeInstanceOf(EnvError);
    return (e as Error).message;
  }
  throw new Error("expected an EnvError");
};

function captureLogger() {
  const lines: { level: string; message: string }[] = [];
  const make = (): Logger => ({
    debug: (message) => lines.push({ level: "debug", message }),
    info: (message) => lines.push({ level: "info", message }),
    warn: (message) => lines.push({ level: "warn", message }),
    error: (message) => lines.push({ level: "error", message }),
    child: () => make(),
  });
  return { log: make(), lines };
}
const deps = { db: {} } as unknown as ServiceDeps;

describe("Teams configuration", () => {
  it("is off without TEAMS_APP_ID or TEAMS_DEV_NO_AUTH", () => {
    expect(settings({})).toBeNull();
    expect(buildTeamsSurface(parseEnv({}), deps, captureLogger().log)).toBeNull();
  });

  it("needs the client secret for MultiTenant and SingleTenant apps, and none for a managed identity", () => {
    expect(problem({ ...APP, TEAMS_APP_PASSWORD: "" })).toContain("TEAMS_APP_PASSWORD: is required for a MultiTenant app");
    expect(problem({ ...APP, TEAMS_APP_PASSWORD: "", TEAMS_APP_TYPE: "SingleTenant", TEAMS_APP_TENANT_ID: TENANT })).toContain("SingleTenant");
    expect(problem({ ...APP, TEAMS_APP_TYPE: "UserAssignedMSI", TEAMS_APP_TENANT_ID: TENANT })).toContain("must not be set for a UserAssignedMSI app");
    expect(problem({ ...APP, TEAMS_APP_PASSWORD: "", TEAMS_APP_TYPE: "UserAssignedMSI" })).toContain(
      "TEAMS_APP_TENANT_ID: is required for a UserAssignedMSI app",
    );
    expect(settings({ ...APP, TEAMS_APP_PASSWORD: "", TEAMS_APP_TYPE: "UserAssignedMSI", TEAMS_APP_TENANT_ID: TENANT })?.mode).toBe("bot");
  });

  it("checks the tenant for SingleTenant apps and whenever TEAMS_APP_TENANT_ID is set, and only then", () => {
    expect(settings(APP)?.tenantId).toBeNull();
    expect(settings({ ...APP, TEAMS_APP_TENANT_ID: TENANT })?.tenantId).toBe(TENANT);
    expect(settings({ ...APP, TEAMS_APP_TYPE: "SingleTenant", TEAMS_APP_TENANT_ID: TENANT })?.tenantId).toBe(TENANT);
  });

  it("takes sovereign-cloud endpoints over https; plain http only on loopback, for tests, never in production", () => {
    const gov = settings({ ...APP, ...sovereign("https://login.botframework.azure.us") });
    expect(gov).toMatchObject({ sovereign: true, testCredentials: false });
    const local = settings({ ...APP, ...sovereign("http://127.0.0.1:4000") });
    expect(local).toMatchObject({ sovereign: true, testCredentials: true });
    expect(problem({ ...APP, ...sovereign("http://login.example.com") })).toMatch(
      /TEAMS_OPENID_METADATA_URL: must be an https URL[\s\S]*TEAMS_LOGIN_URL: must be an https URL/,
    );
    expect(problem({ ...APP, ...sovereign("http://127.0.0.1:4000"), NODE_ENV: "production" })).toContain(
      "TEAMS_LOGIN_URL: a plain-http loopback endpoint is for tests only",
    );
  });

  it("emulator mode runs without an app id, cannot be mixed with one, and warns loudly", () => {
    expect(settings({ TEAMS_DEV_NO_AUTH: "true" })).toMatchObject({ mode: "emulator", appId: "" });
    expect(problem({ ...APP, TEAMS_DEV_NO_AUTH: "true" })).toContain("TEAMS_DEV_NO_AUTH: cannot be combined with TEAMS_APP_ID");
    expect(() => parseEnv({ NODE_ENV: "production", TEAMS_DEV_NO_AUTH: "true" })).toThrow(/TEAMS_DEV_NO_AUTH: is refused when NODE_ENV=production/);

    const { log, lines } = captureLogger();
    const surface = buildTeamsSurface(parseEnv({ TEAMS_DEV_NO_AUTH: "true" }), deps, log);
    expect(surface?.mount?.path).toBe("/api/messages");
    expect(Object.keys(surface?.handlers ?? {}).sort()).toEqual(["teams.post", "teams.update"]);
    const warning = lines.find((l) => l.level === "warn" && l.message.includes("TEAMS_DEV_NO_AUTH"));
    expect(warning?.message).toContain("UNAUTHENTICATED");
  });
});
