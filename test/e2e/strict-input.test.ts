import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CreatedKey } from "../../packages/services/src/index.ts";
import { API_POLICY, expectNothingWritten, expectProblem } from "../support/api-helpers.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

/** Issue #11, reproduction 9: JSON bodies are parsed strictly, and a refusal writes nothing. */
describe("strict JSON bodies", () => {
  let gw: GatewayProcess;
  let agent: CreatedKey;
  let alice: CreatedKey;
  let admin: CreatedKey;

  beforeAll(async () => {
    gw = await startGateway({ engine: "pglite", policy: API_POLICY, env: { COUNTERSIGN_RATE_LIMIT: "0" } });
    agent = await gw.createKey({ name: "bot", owner: "owner@example.com", scopes: ["requests"] });
    alice = await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] });
    admin = await gw.createKey({ name: "admin", owner: "root@example.com", scopes: ["admin"] });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  const post = (path: string, key: string, body: string | Uint8Array, contentType = "application/json") =>
    fetch(`${gw.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": contentType }, body });

  async function pending(): Promise<string> {
    const res = await post("/v1/requests", agent.key, JSON.stringify({ action: "report.build", summary: "Build", params: {} }));
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  it('a duplicated key is refused, naming it: {"decision":"approve","decision":"deny"} decides nothing', async () => {
    const id = await pending();
    const p = await expectNothingWritten(gw, admin.key, async () =>
      expectProblem(await post(`/v1/requests/${id}/decisions`, alice.key, '{"decision":"approve","decision":"deny"}'), 400, "invalid_request"),
    );
    expect(p.errors).toEqual([{ path: "decision", message: 'duplicate key "decision"' }]);
    // The same key written with an escape is the same key.
    const q = await expectProblem(
      await post(`/v1/requests/${id}/decisions`, alice.key, '{"decision":"approve","dec\\u0069sion":"deny"}'),
      400,
      "invalid_request",
    );
    expect(q.errors?.[0]?.message).toBe('duplicate key "decision"');
  });

  it("a duplicated key deep in params is refused at its path", async () => {
    const body = '{"action":"report.build","summary":"x","params":{"items":[{"name":"a","name":"b"}]}}';
    const p = await expectNothingWritten(gw, admin.key, async () => expectProblem(await post("/v1/requests", agent.key, body), 400, "invalid_request"));
    expect(p.errors).toEqual([{ path: "params.items[0].name", message: 'duplicate key "name"' }]);
  });

  it.each(["__proto__", "constructor", "prototype"])("a %s key anywhere is refused, not dropped", async (k) => {
    const body = `{"action":"report.build","summary":"x","params":{},"metadata":{"${k}":"x"}}`;
    const p = await expectNothingWritten(gw, admin.key, async () => expectProblem(await post("/v1/requests", agent.key, body), 400, "invalid_request"));
    expect(p.errors).toEqual([{ path: `metadata.${k}`, message: `key "${k}" is not allowed` }]);
  });

  it("only UTF-8 is accepted: a declared utf-16 body gets 415, invalid UTF-8 bytes get 400", async () => {
    const json = JSON.stringify({ action: "report.build", summary: "x", params: {} });
    await expectNothingWritten(gw, admin.key, async () => {
      await expectProblem(
        await post("/v1/requests", agent.key, Buffer.from(json, "utf16le"), "application/json; charset=utf-16"),
        415,
        "unsupported_media_type",
      );
      await expectProblem(await post("/v1/requests", agent.key, json, "application/json; charset=iso-8859-1"), 415, "unsupported_media_type");
      const bad = Buffer.concat([Buffer.from('{"action":"report.build","summary":"'), Buffer.from([0xc3, 0x28]), Buffer.from('","params":{}}')]);
      const p = await expectProblem(await post("/v1/requests", agent.key, bad), 400, "invalid_request");
      expect(p.detail).toMatch(/not valid UTF-8/);
    });
    // Declared UTF-8 in any spelling still works.
    expect((await post("/v1/requests", agent.key, json, 'application/json; charset="UTF-8"')).status).toBe(201);
  });
});
