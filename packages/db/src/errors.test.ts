import { describe, expect, it } from "vitest";
import { classifyDatabaseError, describeConnectFailure } from "./errors.ts";

// The shapes below are the ones Prisma 7, its driver adapters and node-postgres throw.
describe("classifyDatabaseError", () => {
  it.each([
    ["Prisma P1001 (can't reach the server)", { code: "P1001", message: "Can't reach database server" }, "unavailable"],
    ["Prisma P1017 (server closed the connection)", { code: "P1017" }, "unavailable"],
    ["Prisma P2028 (transaction API error)", { code: "P2028", message: "Transaction API error: Unable to start a transaction in the given time." }, "busy"],
    ["Prisma P2034 (write conflict)", { code: "P2034" }, "busy"],
    ["Prisma P2002 (unique)", { code: "P2002" }, "unique"],
    ["adapter DatabaseNotReachable", { name: "DriverAdapterError", cause: { kind: "DatabaseNotReachable", host: "127.0.0.1", port: 5432 } }, "unavailable"],
    ["adapter ConnectionClosed", { name: "DriverAdapterError", cause: { kind: "ConnectionClosed" } }, "unavailable"],
    [
      "adapter UniqueConstraintViolation",
      { name: "DriverAdapterError", cause: { kind: "UniqueConstraintViolation", constraint: { fields: ["x"] } } },
      "unique",
    ],
    [
      "adapter postgres 57P01 (admin shutdown)",
      { cause: { kind: "postgres", code: "57P01", message: "terminating connection due to administrator command" } },
      "unavailable",
    ],
    ["adapter postgres 08006 (connection failure)", { cause: { kind: "postgres", code: "08006" } }, "unavailable"],
    ["adapter postgres 40001 (serialization)", { cause: { kind: "postgres", code: "40001" } }, "busy"],
    [
      "Prisma P2039 wrapping an admin shutdown (57P01) in meta",
      {
        code: "P2039",
        message: "Database error. Code: `57P01`. Message: `terminating connection due to administrator command`",
        meta: { driverAdapterError: { name: "DriverAdapterError", cause: { kind: "postgres", code: "57P01", severity: "FATAL" } } },
      },
      "unavailable",
    ],
    [
      "Prisma P2010 (raw query) wrapping a connection failure",
      { code: "P2010", meta: { driverAdapterError: { cause: { kind: "ConnectionClosed" } } } },
      "unavailable",
    ],
    ["pg 23505 (unique)", { code: "23505", message: 'duplicate key value violates unique constraint "x"' }, "unique"],
    [
      "a socket refusal wrapped twice",
      new Error("query failed", {
        cause: new Error("connect", { cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }) }),
      }),
      "unavailable",
    ],
    [
      "an AggregateError of refusals",
      Object.assign(new AggregateError([Object.assign(new Error("x"), { code: "ECONNREFUSED" })], "connect failed"), {}),
      "unavailable",
    ],
    ["pg-pool connection loss", new Error("Connection terminated unexpectedly"), "unavailable"],
    ["pg-pool connect timeout", new Error("timeout exceeded when trying to connect"), "busy"],
  ])("%s", (_label, err, kind) => {
    expect(classifyDatabaseError(err)).toBe(kind);
  });

  it.each([
    ["an ordinary error", new Error("boom")],
    ["a Prisma validation error", { code: "P2009", message: "Failed to validate the query" }],
    ["a constraint that is not unique", { cause: { kind: "ForeignKeyConstraintViolation" } }],
    ["a message that merely mentions a timeout", new Error("the upstream timed out: timeout exceeded")],
    ["undefined", undefined],
    ["a string", "ECONNREFUSED"],
  ])("%s is not a database condition", (_label, err) => {
    expect(classifyDatabaseError(err)).toBeUndefined();
  });

  it("stops on a cause cycle", () => {
    const e: { message: string; cause?: unknown } = { message: "x" };
    e.cause = e;
    expect(classifyDatabaseError(e)).toBeUndefined();
  });
});

describe("describeConnectFailure", () => {
  const url = "postgresql://app:s3cret@db.internal:6543/countersign";
  it.each([
    // node-postgres tries every address of a host: an AggregateError of refusals.
    [
      "refused (AggregateError)",
      { errors: [{ code: "ECONNREFUSED" }, { code: "ECONNREFUSED" }] },
      /^DATABASE_URL: nothing accepts connections at db\.internal:6543;/,
    ],
    [
      "bad password, wrapped by the adapter",
      { cause: { kind: "postgres", code: "28P01", message: 'password authentication failed for user "app"' } },
      /refused user "app" \(password authentication failed/,
    ],
    [
      "missing database",
      { code: "3D000", message: 'database "countersign" does not exist' },
      /database "countersign" does not exist on db\.internal:6543; create it \(createdb -h db\.internal -p 6543 countersign\)/,
    ],
    ["connect timeout", new Error("timeout exceeded when trying to connect"), /db\.internal:6543 did not answer within 5 s/],
  ])("%s", (_name, error, expected) => {
    const text = describeConnectFailure(error, url) as string;
    expect(text).toMatch(expected);
    expect(text).not.toContain("s3cret");
  });

  it("leaves other errors alone", () => {
    expect(describeConnectFailure({ code: "23505" }, url)).toBeUndefined();
    expect(describeConnectFailure(new Error("boom"), url)).toBeUndefined();
  });
});

describe("describeConnectFailure for a command's own option", () => {
  it("names the option, and does not suggest the embedded database", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
    const why = describeConnectFailure(refused, "postgresql://postgres@127.0.0.1:1/x", "--to");
    expect(why).toBe("--to: nothing accepts connections at 127.0.0.1:1; start PostgreSQL there or fix the host and port");
    const auth = Object.assign(new Error("password authentication failed"), { code: "28P01" });
    expect(describeConnectFailure(auth, "postgresql://bob:secret@db:5432/x", "--to")).toMatch(
      /^--to: db:5432 refused user "bob" .*fix the user or password in --to$/,
    );
  });
});
