import { describe, expect, it } from "vitest";
import { evaluatePolicy, possibleEffects } from "./evaluate.ts";
import { PolicyError, parsePolicy } from "./load.ts";
import { interpolateEnv, isStdioServer, mcpAction, mcpTimeoutMs } from "./mcp.ts";

const POLICY = `version: 1
mcp:
  servers:
    fs:
      command: npx
      args: [-y, "@modelcontextprotocol/server-filesystem", /srv/data]
      environment: production
      timeout: 30s
    everything:
      url: http://127.0.0.1:3001/mcp
      headers: { Authorization: "Bearer \${EVERYTHING_TOKEN}" }
rules:
  - id: no-secrets
    match: { action: "mcp.fs.*", params: { path: ["/srv/data/secrets/**", "**/.env"] } }
    effect: deny
    description: secrets stay put
  - id: docs-writes
    match: { action: mcp.fs.write_file, params: { path: "/srv/data/docs/**" } }
    effect: allow
  - id: fs-writes
    match: { action: ["mcp.fs.write_file", "mcp.fs.edit_file", "mcp.fs.move_file"] }
    effect: require_approval
    approvers: ["*"]
  - id: fs-reads
    match: { action: "mcp.fs.*" }
    effect: allow
  - id: dry-runs
    match: { action: mcp.everything.deploy, params: { dryRun: true, target: { equals: { region: eu, tier: 1 } } } }
    effect: allow
  - id: no-everything-shell
    match: { action: mcp.everything.shell }
    effect: deny
default: deny
`;

describe("the mcp section", () => {
  const policy = parsePolicy(POLICY);
  it("reads stdio and Streamable HTTP servers", () => {
    const fs = policy.mcp?.servers.fs;
    const http = policy.mcp?.servers.everything;
    expect(fs && isStdioServer(fs)).toBe(true);
    expect(http && isStdioServer(http)).toBe(false);
    expect(fs && mcpTimeoutMs(fs)).toBe(30_000);
    expect(http && mcpTimeoutMs(http)).toBe(60_000);
  });

  it.each([
    ["env", "    x: { command: srv, env: { GITHUB_TOKEN: ghp_abc123 } }", "mcp.servers.x.env.GITHUB_TOKEN"],
    ["header", "    x: { url: http://h/mcp, headers: { Authorization: Bearer abc } }", "mcp.servers.x.headers.Authorization"],
    ["api key", "    x: { command: srv, env: { OPENAI_API_KEY: sk-1 } }", "mcp.servers.x.env.OPENAI_API_KEY"],
  ])("refuses a credential written inline (%s)", (_what, line, path) => {
    const run = () => parsePolicy(`version: 1\nmcp:\n  servers:\n${line}\n`);
    expect(run).toThrow(PolicyError);
    expect(run).toThrow(path);
    expect(run).toThrow("reference an environment variable");
  });

  it("accepts non-secret literals beside referenced secrets", () => {
    const p = parsePolicy(`version: 1\nmcp:\n  servers:\n    x: { command: srv, env: { LOG_LEVEL: debug, GITHUB_TOKEN: "\${GH}" } }\n`);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the policy file's own ${NAME} syntax
    expect(p.mcp?.servers.x).toMatchObject({ env: { LOG_LEVEL: "debug", GITHUB_TOKEN: "${GH}" } });
  });

  it.each([
    ["a server name that cannot be part of an action", "    Bad.Name: { command: srv }", "mcp.servers.Bad.Name"],
    ["neither a command nor a url", "    x: { args: [a] }", "mcp.servers.x"],
    ["a url that is not http", "    x: { url: file:///etc/passwd }", "mcp.servers.x"],
    ["a bad timeout", "    x: { command: srv, timeout: soon }", "mcp.servers.x"],
  ])("refuses %s", (_what, line, path) => {
    expect(() => parsePolicy(`version: 1\nmcp:\n  servers:\n${line}\n`)).toThrow(path);
  });

  it("refuses an empty params condition", () => {
    expect(() => parsePolicy("version: 1\nrules:\n  - { id: r, match: { params: {} }, effect: allow }\n")).toThrow("name at least one argument");
  });
});

describe("interpolateEnv", () => {
  it("substitutes every reference", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the policy file's own ${NAME} syntax
    expect(interpolateEnv("Bearer ${A}-${B}", { A: "x", B: "y" })).toEqual({ ok: true, value: "Bearer x-y" });
  });
  it("names the first unset variable rather than substituting nothing", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the policy file's own ${NAME} syntax
    expect(interpolateEnv("${A}${MISSING}", { A: "x" })).toEqual({ ok: false, missing: "MISSING" });
  });
  it("leaves text without references alone", () => {
    expect(interpolateEnv("$HOME and {x}", {})).toEqual({ ok: true, value: "$HOME and {x}" });
  });
});

describe("mcpAction", () => {
  it("names the action of a tool", () => {
    expect(mcpAction("fs", "write_file")).toBe("mcp.fs.write_file");
    expect(mcpAction("gh", "issues.create")).toBe("mcp.gh.issues.create");
  });
  it.each([["has space"], ["a/b"], [""], ["x".repeat(200)]])("refuses a tool name that cannot be an action: %j", (tool) => {
    expect(mcpAction("fs", tool)).toBeNull();
  });
});

describe("rules that match on arguments", () => {
  const policy = parsePolicy(POLICY);
  const call = (action: string, params: unknown) => evaluatePolicy(policy, { action, environment: "production", params });

  it.each([
    ["/srv/data/docs/a.md", "docs-writes", "allow"],
    ["/srv/data/src/a.ts", "fs-writes", "require_approval"],
    ["/srv/data/secrets/k", "no-secrets", "deny"],
    ["/srv/data/app/.env", "no-secrets", "deny"],
    // Dot segments and doubled slashes name a path; the glob is matched against that path.
    ["/srv/data/docs/../secrets/k", "no-secrets", "deny"],
    ["/srv/data/docs/../src/a.ts", "fs-writes", "require_approval"],
    ["/srv/data//secrets/k", "no-secrets", "deny"],
    ["/srv/data/docs/./a.md", "docs-writes", "allow"],
  ])("write_file to %s: %s (%s)", (path, ruleId, effect) => {
    expect(call("mcp.fs.write_file", { path, content: "x" })).toMatchObject({ ruleId, effect });
  });

  it("a glob never matches a missing argument", () => {
    expect(call("mcp.fs.write_file", {})).toMatchObject({ ruleId: "fs-writes" });
  });

  it("a list of paths: a deny rule matches if any does, an allow rule only if all do", () => {
    // read_multiple_files takes paths: string[]; one secret among them is enough to deny.
    expect(call("mcp.fs.write_file", { path: ["/srv/data/docs/a.md", "/srv/data/secrets/k"] })).toMatchObject({ ruleId: "no-secrets" });
    expect(call("mcp.fs.write_file", { path: ["/srv/data/docs/a.md", "/srv/data/docs/b.md"] })).toMatchObject({ ruleId: "docs-writes" });
    expect(call("mcp.fs.write_file", { path: ["/srv/data/docs/a.md", "/srv/data/src/b.ts"] })).toMatchObject({ ruleId: "fs-writes" });
    expect(call("mcp.fs.write_file", { path: [] })).toMatchObject({ ruleId: "no-secrets" });
  });

  it("a value that is not a string matches deny and require_approval globs, never allow", () => {
    expect(call("mcp.fs.write_file", { path: { toString: "/srv/data/docs/a.md" } })).toMatchObject({ ruleId: "no-secrets", effect: "deny" });
    expect(call("mcp.fs.write_file", { path: 7 })).toMatchObject({ ruleId: "no-secrets" });
  });

  it("only path-like strings are normalised: a URL or a command is matched as written", () => {
    const p = parsePolicy(`version: 1
rules:
  - { id: no-admin, match: { action: web.fetch, params: { url: "https://internal.example.com/admin/**" } }, effect: deny }
  - { id: no-rm, match: { action: shell.run, params: { command: "rm */.." } }, effect: deny }
  - { id: rest, effect: allow }
`);
    // Normalising would turn https:// into https:/, and the deny would never match.
    expect(evaluatePolicy(p, { action: "web.fetch", params: { url: "https://internal.example.com/admin/users" } }).ruleId).toBe("no-admin");
    // Normalising "rm x #/.." would leave ".", and the deny would never match.
    expect(evaluatePolicy(p, { action: "shell.run", params: { command: "rm x #/.." } }).ruleId).toBe("no-rm");
  });

  it("relative and ~ paths are matched as written: deny globs written as **/secrets/** cover them", () => {
    expect(call("mcp.fs.read_text_file", { path: "secrets/key" })).toMatchObject({ ruleId: "fs-reads" });
    expect(call("mcp.fs.read_text_file", { path: "app/.env" })).toMatchObject({ ruleId: "no-secrets" });
    expect(call("mcp.fs.read_text_file", { path: "~/app/.env" })).toMatchObject({ ruleId: "no-secrets" });
  });

  it("literals and { equals } compare exactly, canonically", () => {
    expect(call("mcp.everything.deploy", { dryRun: true, target: { tier: 1, region: "eu" } })).toMatchObject({ ruleId: "dry-runs" });
    expect(call("mcp.everything.deploy", { dryRun: "true", target: { tier: 1, region: "eu" } })).toMatchObject({ ruleId: null, effect: "deny" });
    expect(call("mcp.everything.deploy", { dryRun: true, target: { tier: 1, region: "eu", extra: 1 } })).toMatchObject({ ruleId: null });
  });

  it("a key that is only on the prototype is not an argument", () => {
    const params = Object.create({ path: "/srv/data/docs/a.md" }) as object;
    expect(call("mcp.fs.write_file", params)).toMatchObject({ ruleId: "fs-writes" });
  });
});

describe("possibleEffects (for tools/list)", () => {
  const policy = parsePolicy(POLICY);
  const effects = (action: string) => [...possibleEffects(policy, { action, environment: "production" })].sort();
  it.each([
    ["mcp.fs.read_text_file", ["allow", "deny"]],
    ["mcp.fs.write_file", ["allow", "deny", "require_approval"]],
    ["mcp.everything.shell", ["deny"]],
    ["mcp.everything.echo", ["deny"]],
    ["mcp.everything.deploy", ["allow", "deny"]],
  ])("%s may be %j", (action, expected) => {
    expect(effects(action)).toEqual(expected);
  });
});
