import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "../support/db.ts";
import { ROOT } from "../support/gateway.ts";

const exec = promisify(execFile);

describe("the quickstart's output", () => {
  const home = tempDir("cs-home-");
  afterAll(() => home.remove());

  it("pnpm build (which pnpm start and pnpm test run) prints no Turborepo telemetry notice, even for a user who never saw it", async () => {
    // A fresh HOME has no Turborepo config, so turbo would print its one-time notice here.
    const { stdout, stderr } = await exec("pnpm", ["-s", "build"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: home.dir, XDG_CONFIG_HOME: home.dir },
    });
    expect(`${stdout}${stderr}`).not.toMatch(/telemetry/i);
  });
});
