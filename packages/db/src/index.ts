export * from "./database.ts";
export * from "./migrate.ts";
export type { SqlDriver } from "./driver.ts";
export { pgDriver } from "./driver.ts";
export { Prisma, PrismaClient } from "./generated/prisma/client.ts";
export type * from "./generated/prisma/client.ts";
export * from "./lock.ts";
