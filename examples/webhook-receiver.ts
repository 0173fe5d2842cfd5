/**
 * Receives Countersign callbacks instead of waiting: submit with `callbackUrl` pointing
 * here and `wait: false`, and act when the signed `request.approved` event arrives.
 *
 *   COUNTERSIGN_URL=http://127.0.0.1:8080 COUNTERSIGN_WEBHOOK_SECRET=whsec_... \
 *     pnpm tsx --tsconfig examples/tsconfig.json examples/webhook-receiver.ts
 *
 * Callback URLs must be https and public; for a local try-out start the gateway with
 * COUNTERSIGN_CALLBACK_ALLOW=http:127.0.0.1/32.
 */
import { createServer } from "node:http";
import { verifyReceipt, verifyWebhook, WebhookVerificationError } from "@countersign/sdk";

const secret = process.env.COUNTERSIGN_WEBHOOK_SECRET ?? "";
const gateway = process.env.COUNTERSIGN_URL ?? "http://127.0.0.1:8080";
const seen = new Set<string>();

createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", async () => {
    try {
      // Verify the raw bytes before parsing anything.
      const event = verifyWebhook(Buffer.concat(chunks), req.headers, secret);
      res.writeHead(204).end();
      // Retries carry the same webhook-id: act once.
      const id = String(req.headers["webhook-id"]);
      if (seen.has(id)) return;
      seen.add(id);
      if (event.type !== "request.approved") {
        console.log(`${event.data.id}: ${event.type}`);
        return;
      }
      // The receipt binds the approval to this action and these exact params.
      const claims = await verifyReceipt(event.data.receipt, {
        jwksUrl: `${gateway}/.well-known/jwks.json`,
        action: event.data.action,
        params: event.data.params,
        requestId: event.data.id,
      });
      console.log(`${claims.jti}: approved by ${claims.approvers.map((a) => a.principal).join(", ")}; running ${claims.action}`);
    } catch (e) {
      if (e instanceof WebhookVerificationError) {
        res.writeHead(400).end();
        return;
      }
      console.error(e);
      if (!res.headersSent) res.writeHead(500).end();
    }
  });
}).listen(Number(process.env.PORT ?? 9090), "127.0.0.1", () => console.log("listening for Countersign callbacks"));
