import { createServer, type Server } from "node:http";
import { Webhook } from "standardwebhooks";

export interface ReceivedCallback {
  headers: Record<string, string>;
  body: string;
  event: { type: string; timestamp: string; data: Record<string, unknown> & { id: string; status: string } };
  verified: boolean;
  at: number;
}

/**
 * A local requester that receives Countersign callbacks and checks each one with the
 * standardwebhooks verifier. `failFirst(n)` answers 503 to the next n deliveries.
 */
export async function startCallbackReceiver(secretFor: () => string | undefined = () => undefined) {
  const received: ReceivedCallback[] = [];
  let failures = 0;
  let status = 200;
  const waiters: (() => void)[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      let verified = false;
      const secret = secretFor();
      if (secret) {
        try {
          new Webhook(secret).verify(body, headers);
          verified = true;
        } catch {
          verified = false;
        }
      }
      if (failures > 0) {
        failures--;
        res.writeHead(503).end("try later");
        received.push({ headers, body, event: JSON.parse(body), verified, at: Date.now() });
        return;
      }
      received.push({ headers, body, event: JSON.parse(body), verified, at: Date.now() });
      res.writeHead(status).end("ok");
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    failFirst(n: number) {
      failures = n;
    },
    respondWith(code: number) {
      status = code;
    },
    /** Resolves when a successful delivery for `requestId` has arrived. */
    async waitFor(pred: (c: ReceivedCallback) => boolean, timeoutMs = 20_000): Promise<ReceivedCallback> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = received.find(pred);
        if (hit) return hit;
        if (Date.now() > deadline) throw new Error(`no matching callback within ${timeoutMs} ms; got ${received.length}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
