import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { API_POLICY, sleep } from "../support/api-helpers.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

/** A raw HTTP/1.1 exchange, so the test controls when each byte of the request is sent. */
function rawRequest(port: number, head: string) {
  const socket = connect(port, "127.0.0.1");
  let text = "";
  socket.setEncoding("utf8");
  socket.on("data", (c: string) => {
    text += c;
  });
  const ended = new Promise<string>((r) => socket.once("close", () => r(text)));
  socket.write(head);
  return { socket, ended };
}

/**
 * SIGTERM, as a supervisor (Kubernetes, systemd, a rolling upgrade) sends it: the gateway
 * stops taking connections, lets a request in progress finish, ends long-polls with a retry
 * hint instead of leaving them hanging, and exits 0.
 */
describe("graceful shutdown on SIGTERM", () => {
  let gw: GatewayProcess | undefined;
  afterEach(async () => {
    await gw?.stop();
  });

  it("finishes the request in progress, ends long-polls with 503 + Retry-After, refuses new connections, and exits 0", async () => {
    gw = await startGateway({ policy: API_POLICY, env: { COUNTERSIGN_RATE_LIMIT: "0" } });
    const agent = await gw.createKey({ name: "agent", owner: "owner@example.com", scopes: ["requests"] });
    const made = await gw.api("/v1/requests", { method: "POST", key: agent.key, json: { action: "report.build", summary: "Build it", params: { n: 1 } } });
    const { id } = (await made.json()) as { id: string };

    // A long-poll, parked.
    const poll = gw.api(`/v1/requests/${id}?wait=30`, { key: agent.key });
    // An intake whose body is only half sent when the signal arrives.
    const body = JSON.stringify({ action: "report.build", summary: "In flight", params: { n: 2 } });
    const half = Math.floor(body.length / 2);
    const slow = rawRequest(
      gw.port,
      `POST /v1/requests HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${agent.key}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, half)}`,
    );
    await sleep(300);
    const exited = new Promise<number | null>((r) => gw?.child.once("exit", (code) => r(code)));
    gw.child.kill("SIGTERM");

    const ended = await poll;
    expect(ended.status).toBe(503);
    expect(ended.headers.get("retry-after")).toBe("1");
    expect(((await ended.json()) as { code: string }).code).toBe("service_unavailable");

    // The listener is closed: a new connection is refused.
    await expect(fetch(`${gw.url}/readyz`)).rejects.toThrow();

    // The request that was in progress completes, and the connection is then closed.
    await sleep(500);
    slow.socket.write(body.slice(half));
    const answer = await slow.ended;
    expect(answer).toMatch(/^HTTP\/1\.1 201 /);
    expect(answer.toLowerCase()).toContain("connection: close");

    expect(await exited).toBe(0);
    expect(gw.logs.join("")).toContain("received SIGTERM; shutting down");
  });
});
