// The settings parsers the CLI needs before it knows whether it will open the database:
// this entry loads zod and ipaddr.js only, not the services (nor Prisma).
export { CallbackAllowSpec } from "./callbacks/allow-list.ts";
export { ReceiptKeySpec } from "./receipts/key-spec.ts";
