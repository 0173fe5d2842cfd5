-- Single-use receipts: when the agent redeemed the receipt (POST /v1/receipts/:jti/redeem).
-- AlterTable
ALTER TABLE "approval_requests" ADD COLUMN "redeemed_at" TIMESTAMP(3);
