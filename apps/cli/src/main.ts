import { resolve } from "node:path";
import type { PolicyFile } from "@countersign/core";
import { REQUEST_STATUSES, RISKS, SCOPES } from "@countersign/core/constants";
import type { AdminOps } from "@countersign/services";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import type { JSONWebKeySet } from "jose";
import { registerAuditCommands } from "./audit-commands.ts";
import { registerDbCommands } from "./db-commands.ts";
import type { CliEnv } from "./env.ts";
import { CliError, ExitStatus } from "./errors.ts";
import { formatTable, print } from "./output.ts";
import { registerReceiptCommands } from "./receipt-commands.ts";
import { registerTeamsCommands } from "./teams-package.ts";

// Only commander and this file's own definitions load before the arguments are parsed:
// `--help` and `-V` answer at once, and each command imports what it needs (the core,
// Prisma, the services) when it runs.
const core = () => import("@countersign/core");

function jsonObjectArg(value: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('expected a JSON object, such as \'{"path":"/srv/docs/a.md"}\'.');
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new InvalidArgumentError("expected a JSON object.");
  return v as Record<string, unknown>;
}

function intArg(min: number, max: number) {
  return (value: string): number => {
    const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}.`);
    return n;
  };
}

/** The environment as it is now: each command parses it once, when it runs (tests run several in one process). */
async function env(): Promise<CliEnv> {
  const { parseCliEnv } = await import("./env.ts");
  return parseCliEnv(process.env);
}

async function withAdmin<T>(fn: (ops: AdminOps) => Promise<T>): Promise<T> {
  const { openAdmin } = await import("./admin-client.ts");
  const session = await openAdmin(await env());
  try {
    return await fn(session.ops);
  } finally {
    await session.close();
  }
}

/** `jsonErrors`: the command line asked for --json, so usage errors are JSON as well. */
export function buildProgram({ jsonErrors = false }: { jsonErrors?: boolean } = {}): Command {
  const usage = (str: string) => `${str.replace(/^error: /, "").trim()} (see --help)`;
  const program = new Command("countersign")
    .description("Countersign: action-level approvals for agents, pipelines and scripts")
    .version("0.1.0")
    // Usage errors are one line too: "countersign: <reason> (see --help)". Inherited by every subcommand.
    .configureOutput({
      outputError: (str, write) =>
        write(jsonErrors ? `${JSON.stringify({ error: { code: "invalid_argument", message: usage(str) } })}\n` : `countersign: ${usage(str)}\n`),
    })
    .exitOverride();

  program
    .command("start")
    .description("run the gateway (embedded database unless DATABASE_URL is set)")
    .action(async () => {
      // Loaded only for `start`: the gateway pulls in Bolt and botbuilder, which other commands never need.
      const { main: startMain } = await import("@countersign/gateway");
      await startMain();
      await new Promise(() => {});
    });

  program
    .command("migrate")
    .description("apply database migrations (the gateway also applies them at start)")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      const r = await withAdmin((ops) => ops.migrate());
      if (o.json) return print(r);
      print(r.applied.length ? `applied: ${r.applied.join(", ")}` : `up to date (${r.alreadyApplied.length} migrations applied)`);
    });

  const keys = program.command("keys").description("manage API keys");
  keys
    .command("create")
    .description("create an API key; the key is printed once and only its hash is stored")
    .requiredOption("--name <name>", "a name for the agent or reviewer, shown on cards")
    .requiredOption("--owner <email>", "the accountable human (principal)")
    .requiredOption("--scopes <list>", "comma-separated: requests, decisions, admin")
    .option("--json", "print JSON")
    .action(async (o: { name: string; owner: string; scopes: string; json?: boolean }) => {
      const scopes = o.scopes
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
      if (scopes.length === 0 || unknown.length > 0) {
        throw new CliError(`--scopes: ${unknown.length ? `unknown scope ${unknown.map((s) => `"${s}"`).join(", ")}` : "none given"}; use ${SCOPES.join(", ")}`);
      }
      const owner = (await core()).parsePrincipal(o.owner);
      if (!owner.ok) throw new CliError(`--owner: ${owner.message}`);
      const k = await withAdmin((ops) => ops.createKey({ name: o.name, owner: o.owner, scopes }));
      if (o.json) return print(k);
      print(`key:            ${k.key}`);
      if (k.webhookSecret) print(`webhook secret: ${k.webhookSecret}`);
      print(`id:             ${k.id}\nname:           ${k.name}\nowner:          ${k.owner}\nscopes:         ${k.scopes.join(",")}`);
      process.stderr.write("Store the key now: it cannot be shown again.\n");
    });
  keys
    .command("list")
    .description("list API keys (never the secrets)")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      const list = await withAdmin((ops) => ops.listKeys());
      if (o.json) return print(list);
      print(
        formatTable(
          ["id", "prefix", "name", "owner", "scopes", "created", "revoked"],
          list.map((k) => [k.id, k.prefix, k.name, k.owner, k.scopes.join(","), k.createdAt, k.revokedAt ?? ""]),
        ),
      );
    });
  keys
    .command("revoke <id>")
    .description("revoke a key by id or prefix; it stops working at once")
    .option("--json", "print JSON")
    .action(async (id: string, o: { json?: boolean }) => {
      const k = await withAdmin((ops) => ops.revokeKey(id));
      if (o.json) return print(k);
      print(`revoked ${k.id} (${k.name}) at ${k.revokedAt}`);
      if (k.cancelledRequests) print(`cancelled ${k.cancelledRequests} pending request(s) it had made (reason: key_revoked)`);
    });
  keys
    .command("audit")
    .description("report keys whose owners are one person written differently (+tags, look-alikes) and owners not in canonical form")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      const r = await withAdmin((ops) => ops.auditKeys());
      const found = r.collisions.length + r.problems.length;
      if (o.json) print(r);
      else if (!found) print("keys audit ok: no owners collide, and every owner is in canonical form");
      else {
        for (const c of r.collisions) {
          print(`one person, several owners (${c.owners.map((x) => `"${x}"`).join(", ")}):`);
          for (const k of c.keys) print(`  ${k.id}  ${k.name}  owner=${k.owner}  scopes=${k.scopes.join(",")}${k.revokedAt ? "  (revoked)" : ""}`);
        }
        for (const p of r.problems) print(`${p.key.id}  ${p.key.name}: ${p.problem}`);
        print("Decisions are already refused across these owners; revoke and re-issue the keys so each person has one owner address.");
      }
      if (found) throw new ExitStatus(1);
    });

  const policy = program.command("policy").description("check and explain policy files");
  const loadPolicyArg = async (file?: string): Promise<{ policy: PolicyFile; source: string }> => {
    const { BUILTIN_POLICY, loadPolicyFile, PolicyError } = await core();
    if (file) return { policy: loadPolicyFile(resolve(file)), source: resolve(file) };
    const e = await env();
    const f = resolve(e.COUNTERSIGN_POLICY_FILE ?? "countersign.yaml");
    try {
      return { policy: loadPolicyFile(f), source: f };
    } catch (err) {
      if (!e.COUNTERSIGN_POLICY_FILE && err instanceof PolicyError && err.problems[0]?.message.startsWith("cannot read file")) {
        return { policy: BUILTIN_POLICY, source: "builtin (no ./countersign.yaml)" };
      }
      throw err;
    }
  };
  policy
    .command("check [file]")
    .description("validate a policy file (default: COUNTERSIGN_POLICY_FILE or ./countersign.yaml)")
    .option("--json", "print JSON")
    .action(async (file: string | undefined, o: { json?: boolean }) => {
      const { PolicyError } = await core();
      let loaded: Awaited<ReturnType<typeof loadPolicyArg>>;
      try {
        loaded = await loadPolicyArg(file);
      } catch (e) {
        if (!(e instanceof PolicyError)) throw e;
        if (o.json) print({ ok: false, source: e.file, problems: e.problems });
        else process.stderr.write(`${(await import("./reason.ts")).policyProblems(e).join("\n")}\n`);
        throw new ExitStatus(1);
      }
      const { policy: p, source } = loaded;
      const e = await env();
      const warnings = (await core()).policyWarnings(p, (await import("@countersign/config")).configuredSurfaces(e));
      const counts = { rules: p.rules.length, groups: Object.keys(p.groups).length, channels: Object.keys(p.channels).length };
      if (o.json) return print({ ok: true, source, ...counts, warnings });
      for (const w of warnings) process.stderr.write(`${source}: warning: ${w.path}: ${w.message}\n`);
      print(
        `${source}: ok (${counts.rules} rules, ${counts.groups} groups, ${counts.channels} channels${warnings.length ? `, ${warnings.length} warning(s)` : ""})`,
      );
    });
  policy
    .command("explain")
    .description("show which rule matches an action, and what it requires")
    .requiredOption("--action <action>", "dotted action name, e.g. iam.role.attach")
    .option("--environment <env>")
    .option("--resource <resource>")
    .addOption(new Option("--risk <risk>").choices([...RISKS]))
    .option("--params <json>", "the request's params (an MCP tool call's arguments), for rules that match on them", jsonObjectArg)
    .option("--file <file>", "policy file")
    .option("--json", "print JSON")
    .action(
      async (o: {
        action: string;
        environment?: string;
        resource?: string;
        risk?: (typeof RISKS)[number];
        params?: Record<string, unknown>;
        file?: string;
        json?: boolean;
      }) => {
        const { policy: p, source } = await loadPolicyArg(o.file);
        const d = (await core()).evaluatePolicy(p, {
          action: o.action,
          environment: o.environment,
          resource: o.resource,
          risk: o.risk,
          params: o.params ?? {},
        });
        if (o.json) return print({ source, ...d });
        const lines = [`policy:     ${source}`, `rule:       ${d.ruleId ?? "(none matched: policy default)"}`, `effect:     ${d.effect}`];
        if (d.effect === "require_approval") {
          lines.push(
            `approvers:  ${d.approverGroups.join(", ")}${d.eligible.includes("*") ? " (any verified reviewer)" : ` → ${d.eligible.join(", ")}`}`,
            `quorum:     ${d.requiredApprovals} distinct approval(s); one eligible deny denies`,
            `expires:    after ${d.expiresInSeconds}s, then ${d.onExpire === "deny" ? "denied" : "expired"} (never auto-approved)`,
            `notify:     ${d.notify.map((n) => n.name).join(", ") || "(none)"}`,
            "self-approval: refused for the agent key's owner and onBehalfOf",
          );
        }
        print(lines.join("\n"));
      },
    );

  const requests = program.command("requests").description("inspect approval requests");
  requests
    .command("list")
    .description("list requests, newest first")
    .addOption(new Option("--status <status>", "only requests in this state").choices([...REQUEST_STATUSES]))
    .option("--action <action>", "only this action")
    .option("--limit <n>", "page size (1-200)", intArg(1, 200), 50)
    .option("--cursor <id>", "continue after this request id")
    .option("--json", "print JSON")
    .action(async (o: { status?: string; action?: string; limit: number; cursor?: string; json?: boolean }) => {
      const page = await withAdmin((ops) =>
        ops.listRequests({
          ...(o.status ? { status: o.status } : {}),
          ...(o.action ? { action: o.action } : {}),
          limit: o.limit,
          ...(o.cursor ? { cursor: o.cursor } : {}),
        }),
      );
      if (o.json) return print(page);
      print(
        formatTable(
          ["id", "status", "action", "agent", "approvals", "created"],
          page.data.map((r) => [r.id, r.status, r.action, r.agent.name, `${r.approvals.received}/${r.approvals.required}`, r.createdAt]),
        ),
      );
      if (page.nextCursor) print(`more: --cursor ${page.nextCursor}`);
    });
  requests
    .command("show <id>")
    .description("show one request with its decisions and deliveries")
    .option("--json", "print JSON")
    .action(async (id: string, o: { json?: boolean }) => {
      const r = await withAdmin((ops) => ops.showRequest(id));
      if (o.json) return print(r);
      const lines = [
        `${r.id}  ${r.status}${r.resolution ? ` (${r.resolution})` : ""}`,
        `summary:   ${r.summary}`,
        `action:    ${r.action}${r.environment ? `  env=${r.environment}` : ""}${r.resource ? `  resource=${r.resource}` : ""}${r.risk ? `  risk=${r.risk}` : ""}`,
        `agent:     ${r.agent.name} (owner ${r.agent.owner})${r.onBehalfOf ? `  on behalf of ${r.onBehalfOf}` : ""}`,
        `rule:      ${r.policy.ruleId ?? "(default)"}  approvals ${r.approvals.received}/${r.approvals.required}`,
        `expires:   ${r.expiresAt}`,
        ...r.decisions.map((d) => `decision:  ${d.decision} by ${d.reviewer} via ${d.surface} at ${d.decidedAt}${d.reason ? `: ${d.reason}` : ""}`),
        ...r.deliveries.map(
          (d) => `delivery:  ${d.kind} ${d.status}${d.attempts ? ` after ${d.attempts} attempt(s)` : ""}${d.lastError ? `: ${d.lastError}` : ""}`,
        ),
      ];
      print(lines.join("\n"));
    });

  registerAuditCommands(program, withAdmin, async () => {
    const [{ publicReceiptKeys }, { receiptKeySources }] = await Promise.all([import("@countersign/services"), import("./admin-client.ts")]);
    return { keys: publicReceiptKeys(receiptKeySources(await env())) } as JSONWebKeySet;
  });

  registerDbCommands(program, env);
  registerTeamsCommands(program, env);
  registerReceiptCommands(program, env);
  const mcp = program.command("mcp").description("the MCP gateway");
  mcp
    .command("stdio")
    .description("bridge a stdio-only MCP client to the gateway's /mcp/<server> (the key comes from COUNTERSIGN_API_KEY)")
    .requiredOption("--server <name>", "the MCP server's name in the policy's mcp.servers")
    .option("--url <url>", "the gateway's address (default: COUNTERSIGN_URL, or http://localhost:8080)")
    .action(async (o: { server: string; url?: string }) => {
      const { runStdioBridge } = await import("./mcp-bridge.ts");
      await runStdioBridge(o);
    });

  return program;
}

export async function run(argv: string[]): Promise<number> {
  const json = argv.includes("--json");
  const program = buildProgram({ jsonErrors: json });
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : e.exitCode || 1;
    if (e instanceof ExitStatus) return e.code;
    const { failure, failureText } = await import("./reason.ts");
    // A script that asked for --json gets its error as JSON too (on stderr, so stdout holds only results).
    if (json) process.stderr.write(`${JSON.stringify({ error: failure(e) })}\n`);
    else process.stderr.write(`${failureText(e)}\n`);
    return 1;
  }
}

/** The process entry point: runs the command line and exits with its status. */
export function main(argv = process.argv): void {
  // `countersign audit export | head` closes stdout early: that is not a failure.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
  // `start` keeps running; everything else exits with its status.
  if (argv[2] === "start") void run(argv);
  else run(argv).then((code) => process.exit(code));
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("apps/cli/src/main.ts")) main();
