export * from "./admission.ts";
export * from "./database.ts";
export type { SqlDriver } from "./driver.ts";
export { pgDriver } from "./driver.ts";
export * from "./errors.ts";
export type * from "./generated/prisma/client.ts";
export { Prisma, PrismaClient } from "./generated/prisma/client.ts";
export * from "./lock.ts";
export * from "./migrate.ts";
