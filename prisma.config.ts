import { defineConfig } from "prisma/config";

// The gateway applies migrations itself (packages/db/src/migrate.ts); the Prisma CLI
// is only used to generate the client, which needs no database URL.
export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
});
