import { z } from "zod";

/**
 * Start-up configuration shared by the apps (gateway and CLI). Each app declares one zod
 * schema of the variables it reads and parses it once, before it opens anything; the
 * packages take the parsed values as arguments and never read the environment.
 */

export interface EnvProblem {
  variable: string;
  message: string;
}

/** Every configuration problem at once; `message` has one line per problem and no stack. */
export class EnvError extends Error {
  override name = "EnvError";
  constructor(readonly problems: EnvProblem[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p.variable}: ${p.message}`).join("\n")}`);
  }

  /** The problems on one line, for a CLI. */
  oneLine(): string {
    return `invalid configuration: ${this.problems.map((p) => `${p.variable}: ${p.message}`).join("; ")}`;
  }
}

export const bool = z.enum(["true", "false", "1", "0", "yes", "no"]).transform((v) => v === "true" || v === "1" || v === "yes");

/** `true` for the spellings `bool` accepts as true; for cross-variable checks on raw values. */
export const isOn = (v: string | undefined): boolean => v === "true" || v === "1" || v === "yes";

/** The variables that say where the data lives; both apps read them. */
export const DatabaseEnv = {
  DATABASE_URL: z
    .string()
    // postgresql:///db?host=/var/run/postgresql (a Unix socket) is valid too.
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL (leave unset for the embedded database)")
    .refine((s) => URL.canParse(s), "is not a valid URL")
    .optional(),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
  // Transactions that may wait for a connection; past it callers get 503 with Retry-After.
  DATABASE_QUEUE_LIMIT: z.coerce.number().int().min(0).max(100_000).default(256),
  COUNTERSIGN_DATA_DIR: z.string().default("./.countersign/data"),
};

/** A comma-separated list, each entry trimmed, empty entries dropped. */
export const list = () =>
  z.string().transform((s) =>
    s
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean),
  );

/**
 * Parses `source` (the process environment, normally) against `schema`. Rules that relate several
 * variables run on the raw values too, so the user sees every problem in one round.
 */
export function parseEnv<S extends z.ZodType>(
  schema: S,
  source: Record<string, string | undefined>,
  crossCheck: (raw: Record<string, string>) => EnvProblem[] = () => [],
): z.output<S> {
  // Treat empty strings as unset, as shells and .env files commonly produce them.
  const cleaned = Object.fromEntries(Object.entries(source).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ""));
  const r = schema.safeParse(cleaned);
  const problems = [
    ...(r.success ? [] : r.error.issues.map((i) => ({ variable: i.path.map(String).join(".") || "(env)", message: i.message }))),
    ...crossCheck(cleaned),
  ];
  if (!r.success || problems.length > 0) throw new EnvError(problems);
  return r.data;
}

/**
 * Which chat surfaces a set of settings turns on: the gateway starts them from this, and
 * `policy check` warns about channels on the others.
 */
export function configuredSurfaces(e: { SLACK_BOT_TOKEN?: string | undefined; TEAMS_APP_ID?: string | undefined; TEAMS_DEV_NO_AUTH?: boolean | undefined }): {
  slack: boolean;
  teams: boolean;
} {
  return { slack: Boolean(e.SLACK_BOT_TOKEN), teams: Boolean(e.TEAMS_APP_ID) || Boolean(e.TEAMS_DEV_NO_AUTH) };
}
