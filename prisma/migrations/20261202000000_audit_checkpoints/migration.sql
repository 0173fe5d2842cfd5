-- Per-request hash chains sealed by signed Merkle checkpoints (no global append lock).
-- Existing events become the one "legacy" stream (the old global chain, index = seq - 1,
-- hashed the old way, v = 1). The gateway verifies that chain once and seals it as the
-- first checkpoint (legacy = true) before sealing anything newer.

-- AlterTable
ALTER TABLE "audit_events" ADD COLUMN "v" INTEGER NOT NULL DEFAULT 2,
ADD COLUMN "stream" TEXT,
ADD COLUMN "idx" INTEGER,
ADD COLUMN "sealed_in" INTEGER,
ADD COLUMN "leaf_index" INTEGER;

UPDATE "audit_events" SET "v" = 1, "stream" = 'legacy', "idx" = "seq" - 1;

ALTER TABLE "audit_events" ALTER COLUMN "stream" SET NOT NULL,
ALTER COLUMN "idx" SET NOT NULL;

-- seq is now only the storage order: assigned by a sequence, unique, with gaps.
CREATE SEQUENCE "audit_events_seq_seq" OWNED BY "audit_events"."seq";
SELECT setval('"audit_events_seq_seq"', COALESCE((SELECT MAX("seq") FROM "audit_events"), 0) + 1, false);
ALTER TABLE "audit_events" ALTER COLUMN "seq" SET DEFAULT nextval('"audit_events_seq_seq"');

-- CreateTable
CREATE TABLE "audit_checkpoints" (
    "seq" INTEGER NOT NULL,
    "prev_hash" TEXT NOT NULL,
    "tree_size" INTEGER NOT NULL,
    "cumulative_size" INTEGER NOT NULL,
    "root_hash" TEXT NOT NULL,
    "first_at" TIMESTAMP(3) NOT NULL,
    "last_at" TIMESTAMP(3) NOT NULL,
    "sealed_at" TIMESTAMP(3) NOT NULL,
    "legacy" BOOLEAN NOT NULL DEFAULT false,
    "hash" TEXT NOT NULL,
    "kid" TEXT NOT NULL,
    "jws" TEXT NOT NULL,

    CONSTRAINT "audit_checkpoints_pkey" PRIMARY KEY ("seq")
);

-- CreateIndex
CREATE UNIQUE INDEX "audit_checkpoints_hash_key" ON "audit_checkpoints"("hash");

-- CreateIndex: one event per position in a stream, so two writers can never fork a chain.
CREATE UNIQUE INDEX "audit_events_stream_idx_key" ON "audit_events"("stream", "idx");

-- CreateIndex: one event per leaf of a checkpoint.
CREATE UNIQUE INDEX "audit_events_sealed_in_leaf_index_key" ON "audit_events"("sealed_in", "leaf_index");

-- CreateIndex: the checkpointer's scan of unsealed events (sealed_in IS NULL) in seq order.
CREATE INDEX "audit_events_sealed_in_seq_idx" ON "audit_events"("sealed_in", "seq");
