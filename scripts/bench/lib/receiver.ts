import { createServer, type Server } from "node:http";
import { Webhook } from "standardwebhooks";

/**
 * A requester's callback endpoint: verifies each delivery with the standardwebhooks
 * library and reports the arrival time of the first valid one per request.
 */
export async function startReceiver(secret: () => string) {
  const firstValid = new Map<string, number>();
  const listeners = new Map<string, (at: number) => void>();
  let invalid = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const at = performance.now();
      const body = Buffer.concat(chunks).toString("utf8");
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      try {
        const event = new Webhook(secret()).verify(body, headers) as { data: { id: string } };
        const id = event.data.id;
        if (!firstValid.has(id)) {
          firstValid.set(id, at);
          listeners.get(id)?.(at);
          listeners.delete(id);
        }
      } catch {
        invalid++;
      }
      res.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    get invalid() {
      return invalid;
    },
    /** Resolves with the arrival time (performance.now()) of the first valid callback for `id`. */
    arrival(id: string, timeoutMs = 10_000): Promise<number> {
      const seen = firstValid.get(id);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          listeners.delete(id);
          reject(new Error(`no valid callback for ${id} within ${timeoutMs} ms`));
        }, timeoutMs);
        listeners.set(id, (at) => {
          clearTimeout(t);
          resolve(at);
        });
      });
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
