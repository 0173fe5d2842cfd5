import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildTeamsManifest, type TeamsPackageOptions } from "../../apps/cli/src/teams-package.ts";
import { CLI_MAIN } from "../support/build.ts";
import { tempDir } from "../support/db.ts";
import { ROOT } from "../support/gateway.ts";

// jszip belongs to the CLI package; load it from there.
const JSZip = createRequire(join(ROOT, "apps/cli/package.json"))("jszip") as typeof import("jszip");

const APP_ID = "0B5E0C3C-5D0E-4B8A-9D77-3F0B5C1A2E10";

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("countersign teams package", () => {
  const dir = tempDir("cs-teams-pkg-");
  afterAll(() => dir.remove());

  it("builds an app package Teams accepts from the environment", async () => {
    const out = join(dir.dir, "app.zip");
    const r = await cli(["teams", "package", "--out", out, "--app-version", "1.2.0"], {
      TEAMS_APP_ID: APP_ID,
      COUNTERSIGN_PUBLIC_URL: "https://countersign.example.com",
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(out);

    const zip = await JSZip.loadAsync(readFileSync(out));
    expect(Object.keys(zip.files).sort()).toEqual(["color.png", "manifest.json", "outline.png"]);
    const manifest = JSON.parse(await (zip.file("manifest.json")?.async("string") ?? Promise.resolve("{}")));
    expect(manifest).toMatchObject({
      manifestVersion: "1.17",
      version: "1.2.0",
      id: APP_ID.toLowerCase(),
      developer: { websiteUrl: "https://countersign.example.com/", privacyUrl: "https://countersign.example.com/" },
      name: { short: "Countersign" },
      icons: { color: "color.png", outline: "outline.png" },
      bots: [{ botId: APP_ID.toLowerCase(), scopes: ["team"] }],
      validDomains: ["countersign.example.com"],
    });
    expect(JSON.stringify(manifest)).not.toContain("{{");
    // Teams wants a 192x192 color icon and a 32x32 outline icon.
    for (const [name, size] of [
      ["color.png", 192],
      ["outline.png", 32],
    ] as const) {
      const png = (await zip.file(name)?.async("nodebuffer")) as Buffer;
      expect([name, png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([name, size, size]);
    }
  });

  it("refuses bad input with one clear line", async () => {
    const cases: [Record<string, string>, TeamsPackageOptions, RegExp][] = [
      [{}, {}, /TEAMS_APP_ID is not set/],
      [{ TEAMS_APP_ID: "my-bot" }, {}, /TEAMS_APP_ID must be a GUID/],
      [{ TEAMS_APP_ID: APP_ID }, {}, /COUNTERSIGN_PUBLIC_URL is required/],
      [{ TEAMS_APP_ID: APP_ID, COUNTERSIGN_PUBLIC_URL: "http://countersign.example.com" }, {}, /must be an https URL/],
      [{ TEAMS_APP_ID: APP_ID, COUNTERSIGN_PUBLIC_URL: "https://c.example.com" }, { appVersion: "1.2" }, /--app-version must look like 1\.2\.3/],
      [{ TEAMS_APP_ID: APP_ID, COUNTERSIGN_PUBLIC_URL: "https://c.example.com" }, { name: "x".repeat(31) }, /--name must be 1-30 characters/],
      [{ TEAMS_APP_ID: APP_ID, COUNTERSIGN_PUBLIC_URL: "https://c.example.com" }, { privacyUrl: "ftp://x" }, /--privacy-url must be an https URL/],
    ];
    for (const [env, options, message] of cases) {
      expect(() => buildTeamsManifest(env, options)).toThrow(message);
    }
    // Through the CLI, an error is one line on stderr and exit status 1.
    const r = await cli(["teams", "package", "--out", join(dir.dir, "bad.zip")], { TEAMS_APP_ID: "my-bot" });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toEqual(['countersign: TEAMS_APP_ID must be a GUID (the Azure Bot\'s Microsoft App ID), got "my-bot"']);
  });
});
