import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import type { CliEnv } from "./env.ts";

/** The Teams app template: manifest.template.json plus the two icons Teams requires. */
export const TEAMS_APP_DIR = fileURLToPath(new URL("../../../teams-app/", import.meta.url));

/** A bad input for the package; printed as one line. */
export class TeamsPackageError extends Error {
  override name = "TeamsPackageError";
}

export interface TeamsPackageOptions {
  name?: string;
  developer?: string;
  website?: string;
  privacyUrl?: string;
  termsUrl?: string;
  appVersion?: string;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SEMVER = /^\d+\.\d+\.\d+$/;

function httpsUrl(what: string, value: string | undefined, hint: string): string {
  if (!value) throw new TeamsPackageError(`${what} is required: ${hint}`);
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new TeamsPackageError(`${what} must be a URL, got "${value}"`);
  }
  if (u.protocol !== "https:") throw new TeamsPackageError(`${what} must be an https URL (Teams refuses others), got "${value}"`);
  return u.toString();
}

/** Fills `{{NAME}}` placeholders in every string of the template. */
function fill(node: unknown, values: Record<string, string>): unknown {
  if (typeof node === "string") {
    return node.replace(/\{\{([A-Z_]+)\}\}/g, (_m, k: string) => {
      const v = values[k];
      if (v === undefined) throw new Error(`teams-app/manifest.template.json uses an unknown placeholder {{${k}}}`);
      return v;
    });
  }
  if (Array.isArray(node)) return node.map((n) => fill(n, values));
  if (node && typeof node === "object") return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, fill(v, values)]));
  return node;
}

/**
 * Builds the Teams app manifest from the environment (TEAMS_APP_ID, COUNTERSIGN_PUBLIC_URL)
 * and options. Throws TeamsPackageError with a one-line message for any bad input.
 */
export function buildTeamsManifest(
  env: Pick<CliEnv, "TEAMS_APP_ID" | "COUNTERSIGN_PUBLIC_URL">,
  o: TeamsPackageOptions = {},
  dir = TEAMS_APP_DIR,
): Record<string, unknown> {
  const appId = env.TEAMS_APP_ID?.trim();
  if (!appId) throw new TeamsPackageError("TEAMS_APP_ID is not set: set it to the Microsoft App ID of your Azure Bot");
  if (!GUID.test(appId)) throw new TeamsPackageError(`TEAMS_APP_ID must be a GUID (the Azure Bot's Microsoft App ID), got "${appId}"`);
  const name = (o.name ?? "Countersign").trim();
  if (!name || name.length > 30) throw new TeamsPackageError(`--name must be 1-30 characters (Teams' short-name limit), got ${name.length}`);
  const developer = (o.developer ?? "Countersign").trim();
  if (!developer || developer.length > 32) throw new TeamsPackageError(`--developer must be 1-32 characters, got ${developer.length}`);
  const appVersion = o.appVersion ?? "1.0.0";
  if (!SEMVER.test(appVersion)) throw new TeamsPackageError(`--app-version must look like 1.2.3, got "${appVersion}"`);

  const publicUrl = env.COUNTERSIGN_PUBLIC_URL?.trim();
  const website = httpsUrl(
    o.website ? "--website" : "COUNTERSIGN_PUBLIC_URL",
    o.website ?? publicUrl,
    "set COUNTERSIGN_PUBLIC_URL to the gateway's public https URL, or pass --website",
  );
  const values = {
    TEAMS_APP_ID: appId.toLowerCase(),
    APP_NAME: name,
    APP_VERSION: appVersion,
    DEVELOPER_NAME: developer,
    WEBSITE_URL: website,
    PRIVACY_URL: httpsUrl("--privacy-url", o.privacyUrl ?? website, "pass --privacy-url"),
    TERMS_URL: httpsUrl("--terms-url", o.termsUrl ?? website, "pass --terms-url"),
  };
  const template = JSON.parse(readFileSync(resolve(dir, "manifest.template.json"), "utf8")) as unknown;
  const manifest = fill(template, values) as Record<string, unknown>;
  // The gateway's own host, so links to it open inside Teams.
  const host = publicUrl?.startsWith("https://") ? new URL(publicUrl).hostname : undefined;
  manifest.validDomains = host ? [host] : [];
  return manifest;
}

/** The app package Teams accepts: manifest.json and the two icons at the root of a zip. */
export async function buildTeamsPackage(
  env: Pick<CliEnv, "TEAMS_APP_ID" | "COUNTERSIGN_PUBLIC_URL">,
  o: TeamsPackageOptions = {},
  dir = TEAMS_APP_DIR,
): Promise<Buffer> {
  const manifest = buildTeamsManifest(env, o, dir);
  const { default: JSZip } = await import("jszip");
  const zip = new JSZip();
  zip.file("manifest.json", `${JSON.stringify(manifest, null, 2)}\n`);
  for (const icon of ["color.png", "outline.png"]) zip.file(icon, readFileSync(resolve(dir, icon)));
  return zip.generateAsync({ type: "nodebuffer", compression: "DEFLATE", platform: "UNIX" });
}

export function registerTeamsCommands(program: Command, env: () => Promise<CliEnv>): void {
  const teams = program.command("teams").description("Microsoft Teams app");
  teams
    .command("package")
    .description("build the Teams app package (zip) to upload to Teams, from TEAMS_APP_ID and COUNTERSIGN_PUBLIC_URL")
    .option("--out <file>", "where to write the zip", "countersign-teams-app.zip")
    .option("--name <name>", "the app's short name in Teams (max 30 characters)", "Countersign")
    .option("--developer <name>", "the publisher shown in Teams", "Countersign")
    .option("--website <url>", "https URL shown as the app's website (default: COUNTERSIGN_PUBLIC_URL)")
    .option("--privacy-url <url>", "https URL of the privacy statement (default: the website)")
    .option("--terms-url <url>", "https URL of the terms of use (default: the website)")
    .option("--app-version <semver>", "the package version; raise it for every upload", "1.0.0")
    .action(async (o: TeamsPackageOptions & { out: string }) => {
      const zip = await buildTeamsPackage(await env(), o);
      const out = resolve(o.out);
      writeFileSync(out, zip);
      process.stdout.write(`wrote ${out} (${zip.length} bytes): upload it in Teams under Apps > Manage your apps > Upload an app\n`);
    });
}
