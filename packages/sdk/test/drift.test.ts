import { describe, expect, it } from "vitest";
import { ERROR_CODES, type ErrorCode, REQUEST_STATUSES, type RequestStatus as ServerStatus } from "../../core/src/index.ts";
import type { ReceiptRedemption as ServerReceiptRedemption } from "../../services/src/receipts/redeem.ts";
import type { ReceiptClaims as ServerReceiptClaims } from "../../services/src/receipts/signer.ts";
import type { RequestResource } from "../../services/src/requests/resource.ts";
import { API_ERROR_CODES, type ApiErrorCode } from "../src/errors.ts";
import type { ApprovalRequest, ReceiptClaims, ReceiptRedemption, RequestStatus } from "../src/types.ts";

// The SDK must not depend on the server at run time, so it keeps its own copies of the
// error codes and resource types. These checks fail (at type-check time, and the code
// lists also at run time) as soon as either side changes without the other.

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** The shape of a JSON type: every key, recursively, with leaves erased. */
type Shape<T> = T extends readonly (infer U)[] ? Shape<U>[] : T extends object ? { [K in keyof T]-?: Shape<T[K]> } : "leaf";
// Free-form JSON fields are typed loosely on one side and as objects on the other.
type Fixed<T> = Omit<T, "params" | "metadata">;

const codesAgree: Equal<ApiErrorCode, ErrorCode> = true;
const statusesAgree: Equal<RequestStatus, ServerStatus> = true;
const requestShapeAgrees: Equal<Shape<Fixed<ApprovalRequest>>, Shape<Fixed<RequestResource>>> = true;
// The SDK's receipt claims also carry the JWT's registered claims, which jose adds when signing.
const receiptShapeAgrees: Equal<Shape<Omit<ReceiptClaims, "iat" | "exp" | "iss">>, Shape<ServerReceiptClaims>> = true;
const redemptionAgrees: Equal<ReceiptRedemption, ServerReceiptRedemption> = true;

describe("the SDK's copies of server types", () => {
  it("agree at type-check time", () => {
    expect([codesAgree, statusesAgree, requestShapeAgrees, receiptShapeAgrees, redemptionAgrees]).toEqual([true, true, true, true, true]);
  });

  it("list exactly the server's error codes", () => {
    expect([...API_ERROR_CODES].sort()).toEqual([...ERROR_CODES].sort());
  });

  it("list exactly the server's request statuses", () => {
    const sdk: readonly RequestStatus[] = ["pending", "approved", "denied", "expired", "cancelled"];
    expect([...sdk].sort()).toEqual([...REQUEST_STATUSES].sort());
  });
});
