import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { snapshot } from "../support/api-helpers.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";
import { call, FAULT_POLICY, sleep } from "./support.ts";

const RATE = 5;
const BURST = 10;

/** A raw TCP client that writes `head` at once and then one more byte every `everyMs`, forever. */
function trickle(port: number, head: string, drip: string, everyMs: number) {
  const socket: Socket = connect(port, "127.0.0.1");
  const opened = Date.now();
  let received = "";
  let timer: NodeJS.Timeout | undefined;
  const closed = new Promise<{ afterMs: number; received: string }>((resolve) => {
    socket.on("close", () => {
      clearInterval(timer);
      resolve({ afterMs: Date.now() - opened, received });
    });
  });
  socket.on("error", () => {});
  socket.on("data", (c) => {
    received += c.toString();
  });
  socket.on("connect", () => {
    socket.write(head);
    let i = 0;
    timer = setInterval(() => {
      if (!socket.destroyed) socket.write(drip[i++ % drip.length] as string);
    }, everyMs);
  });
  return { closed, destroy: () => socket.destroy() };
}

describe("abuse limits: per-key rate limiting and slow clients", () => {
  let gw: GatewayProcess;
  let keyA = "";
  let keyB = "";
  let admin = "";

  beforeAll(async () => {
    gw = await startGateway({ engine: "pglite", policy: FAULT_POLICY, env: { COUNTERSIGN_RATE_LIMIT: String(RATE), COUNTERSIGN_RATE_BURST: String(BURST) } });
    keyA = (await gw.createKey({ name: "noisy", owner: "noisy@example.com", scopes: ["requests"] })).key;
    keyB = (await gw.createKey({ name: "quiet", owner: "quiet@example.com", scopes: ["requests"] })).key;
    admin = (await gw.createKey({ name: "auditor", owner: "auditor@example.com", scopes: ["admin"] })).key;
  }, 120_000);

  afterAll(async () => {
    await gw?.stop();
  });

  const submit = (key: string, n: number) => call(`${gw.url}/v1/requests`, { key, json: { action: "single.deploy", summary: `abuse ${n}`, params: { n } } });

  it("a key over its rate gets 429 with Retry-After; other keys are unaffected; nothing is written for refused calls", { timeout: 120_000 }, async () => {
    const before = await snapshot(gw, admin);
    const started = Date.now();
    const burst = await Promise.all(Array.from({ length: 4 * BURST }, (_, n) => submit(keyA, n)));
    const elapsedSeconds = (Date.now() - started) / 1000;
    const ok = burst.filter((r) => r.status === 201);
    const limited = burst.filter((r) => r.status === 429);
    expect(ok.length + limited.length).toBe(burst.length);
    // The bucket holds BURST tokens and refills at RATE per second while the burst is in flight.
    expect(ok.length).toBeGreaterThanOrEqual(BURST);
    expect(ok.length).toBeLessThanOrEqual(BURST + Math.ceil(RATE * elapsedSeconds) + 1);
    expect(limited.length).toBeGreaterThan(0);
    for (const r of limited) {
      expect(r.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
      expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect((r.body as { code: string }).code).toBe("rate_limited");
    }
    // Per key: a different key still gets through at once.
    expect((await submit(keyB, 0)).status).toBe(201);
    // Only the accepted calls wrote anything.
    expect((await snapshot(gw, admin)).requests.length).toBe(before.requests.length + ok.length + 1);
    // After waiting as told, the noisy key is served again.
    await sleep(Number(limited[0]?.headers.get("retry-after")) * 1000 + 100);
    expect((await submit(keyA, 999)).status).toBe(201);
  });

  it("slowloris: connections that trickle headers or a body are cut off, and everyone else keeps being served", { timeout: 150_000 }, async () => {
    // 40 clients that never finish their headers, 20 that never finish a body they announced.
    const slowHeaders = Array.from({ length: 40 }, () => trickle(gw.port, "POST /v1/requests HTTP/1.1\r\nHost: x\r\nX-Slow: ", "abcdefgh", 1_000));
    const body = JSON.stringify({ action: "single.deploy", summary: "slow body", params: {} });
    const slowBodies = Array.from({ length: 20 }, () =>
      trickle(
        gw.port,
        `POST /v1/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${keyB}\r\nContent-Type: application/json\r\nContent-Length: ${body.length + 10_000}\r\n\r\n`,
        body,
        1_000,
      ),
    );
    const all = [...slowHeaders, ...slowBodies];
    let cut = 0;
    const outcomes = all.map((c) =>
      c.closed.then((o) => {
        cut++;
        return o;
      }),
    );

    // While they hang on, ordinary clients are served promptly.
    const served: number[] = [];
    const failures: string[] = [];
    while (cut < all.length) {
      const t = Date.now();
      const h = await call(`${gw.url}/healthz`, { timeoutMs: 5_000 });
      const r = await call(`${gw.url}/v1/requests/req_00000000000000000000000000`, { key: keyB, timeoutMs: 5_000 });
      if (h.status !== 200 || r.status !== 404) failures.push(`healthz ${h.status}, GET ${r.status} ${h.error ?? r.error ?? ""}`);
      served.push(Date.now() - t);
      if (served.length > 400) break;
      await sleep(250);
    }
    const closed = await Promise.race([Promise.all(outcomes), sleep(1_000).then(() => null)]);
    for (const c of all) c.destroy();
    expect(failures).toEqual([]);
    expect(closed).not.toBeNull();
    // headersTimeout is 10 s and requestTimeout 30 s; Node checks them every 30 s.
    for (const o of (closed ?? []).slice(0, slowHeaders.length)) expect(o.afterMs).toBeLessThan(50_000);
    for (const o of (closed ?? []).slice(slowHeaders.length)) expect(o.afterMs).toBeLessThan(75_000);
    // The server said why before hanging up (or just hung up); it never answered the request as if complete.
    for (const o of closed ?? []) expect(o.received).not.toMatch(/^HTTP\/1\.1 20\d/);
    expect(gw.child.exitCode).toBeNull();
    console.info(
      `slowloris: ${all.length} slow connections cut after at most ${Math.max(...(closed ?? []).map((o) => o.afterMs))} ms; ${served.length} probes served`,
    );
  });
});
