/**
 * What a database failure means for the caller, recognised from the typed fields that
 * Prisma, its driver adapters, node-postgres and Node's sockets put on their errors.
 * Only this package knows those shapes; everyone else asks `classifyDatabaseError`.
 *
 * - `unavailable`: the database cannot be reached or dropped the connection. Nothing
 *   from this call committed; retry after a pause.
 * - `busy`: no pool connection in time, a transaction timed out, or a serialization
 *   conflict. Nothing committed; retry soon.
 * - `unique`: a unique constraint refused the write.
 */
export type DatabaseErrorKind = "unavailable" | "busy" | "unique";

// Prisma error codes (https://www.prisma.io/docs/orm/reference/error-reference).
const PRISMA_CODES: Record<string, DatabaseErrorKind> = {
  P1001: "unavailable", // can't reach database server
  P1002: "unavailable", // database server timed out
  P1008: "unavailable", // operations timed out
  P1017: "unavailable", // server closed the connection
  P2024: "busy", // timed out fetching a connection from the pool
  P2028: "busy", // transaction API error: no connection within maxWait, or the transaction timed out
  P2034: "busy", // write conflict or deadlock; retry the transaction
  P2037: "busy", // too many database connections
  P2002: "unique",
};

// Driver adapter error kinds (@prisma/driver-adapter-utils `MappedError`).
const ADAPTER_KINDS: Record<string, DatabaseErrorKind> = {
  DatabaseNotReachable: "unavailable",
  ConnectionClosed: "unavailable",
  SocketTimeout: "unavailable",
  TlsConnectionError: "unavailable",
  TooManyConnections: "busy",
  TransactionWriteConflict: "busy",
  TransactionAlreadyClosed: "busy",
  UniqueConstraintViolation: "unique",
};

// Node socket errors seen when the server is down or the network drops.
const SOCKET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"]);

/** SQLSTATE classes: 08 connection exception, 57P0x server shutting down, 53 resources. */
function fromSqlState(state: string): DatabaseErrorKind | undefined {
  if (state === "23505") return "unique";
  if (state === "40001" || state === "40P01" || state === "55P03" || state === "57014") return "busy";
  if (state.startsWith("08") || /^57P0[1-3]$/.test(state) || state === "53300") return "unavailable";
  return undefined;
}

// node-postgres reports pool and connection loss with plain Errors that carry no code;
// these are its exact messages (pg-pool and pg/lib/client.js).
const PG_MESSAGES: [RegExp, DatabaseErrorKind][] = [
  [/^Connection terminated( unexpectedly| due to connection timeout)?$/, "unavailable"],
  [/^timeout exceeded when trying to connect$/, "busy"],
  [/^Client has encountered a connection error and is not queryable$/, "unavailable"],
];

function classifyOne(e: unknown): DatabaseErrorKind | undefined {
  if (!e || typeof e !== "object") return undefined;
  // An adapter's `{ kind: "postgres", code }` carries the SQLSTATE in `code`, like node-postgres does.
  const o = e as { code?: unknown; kind?: unknown; message?: unknown };
  if (typeof o.code === "string") {
    const byPrisma = PRISMA_CODES[o.code];
    if (byPrisma) return byPrisma;
    if (SOCKET_CODES.has(o.code)) return "unavailable";
    if (/^[0-9A-Z]{5}$/.test(o.code)) {
      const bySql = fromSqlState(o.code);
      if (bySql) return bySql;
    }
  }
  if (typeof o.kind === "string") {
    const byKind = ADAPTER_KINDS[o.kind];
    if (byKind) return byKind;
  }
  if (typeof o.message === "string") {
    for (const [re, kind] of PG_MESSAGES) if (re.test(o.message)) return kind;
  }
  return undefined;
}

/** Classifies any thrown value, following `cause` (Prisma and the adapters wrap the driver's error). */
export function classifyDatabaseError(e: unknown): DatabaseErrorKind | undefined {
  let cur: unknown = e;
  for (let depth = 0; depth < 6 && cur; depth++) {
    const kind = classifyOne(cur);
    if (kind) return kind;
    // Prisma's generic codes (P2010 raw query failed, P2039 database error) keep the
    // adapter's error, with the SQLSTATE, in `meta.driverAdapterError`, not in `cause`.
    const o = cur as { cause?: unknown; meta?: { driverAdapterError?: unknown } };
    const next = o.meta?.driverAdapterError ?? o.cause;
    if (next === cur) break;
    cur = next;
  }
  // AggregateError (e.g. a connect attempt to both ::1 and 127.0.0.1) holds its causes in `errors`.
  const list = (e as { errors?: unknown })?.errors;
  if (Array.isArray(list)) {
    for (const x of list) {
      const kind = classifyDatabaseError(x);
      if (kind) return kind;
    }
  }
  return undefined;
}
