import { TransactionQueueFullError } from "./admission.ts";

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
  if (e instanceof TransactionQueueFullError) return "busy";
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

/** Every error in a thrown value's `cause`, `meta.driverAdapterError` and `errors` chains. */
function* chain(e: unknown, depth = 0): Generator<Record<string, unknown>> {
  if (!e || typeof e !== "object" || depth > 6) return;
  const o = e as Record<string, unknown> & { cause?: unknown; meta?: { driverAdapterError?: unknown }; errors?: unknown };
  yield o;
  if (Array.isArray(o.errors)) for (const x of o.errors) yield* chain(x, depth + 1);
  const next = o.meta?.driverAdapterError ?? o.cause;
  if (next !== e) yield* chain(next, depth + 1);
}

/**
 * Why PostgreSQL at `url` could not be opened, as one sentence that names the setting it
 * came from (DATABASE_URL, or a command's option such as `--to`) and says what to do;
 * undefined when the error is not a connection problem. The URL's password never appears.
 */
export function describeConnectFailure(e: unknown, url: string, setting = "DATABASE_URL"): string | undefined {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return undefined;
  }
  const host = decodeURIComponent(target.hostname || target.searchParams.get("host") || "localhost");
  const where = `${host}:${target.port || "5432"}`;
  const database = decodeURIComponent(target.pathname.replace(/^\//, "")) || decodeURIComponent(target.username) || "postgres";
  const user = decodeURIComponent(target.username) || "(the current OS user)";
  const unset = setting === "DATABASE_URL" ? "; or unset DATABASE_URL to use the embedded database" : "";
  for (const o of chain(e)) {
    const code = typeof o.code === "string" ? o.code : undefined;
    const message = typeof o.message === "string" ? o.message : "";
    switch (code) {
      case "ECONNREFUSED":
        return `${setting}: nothing accepts connections at ${where}; start PostgreSQL there or fix the host and port${unset}`;
      case "ENOTFOUND":
      case "EAI_AGAIN":
        return `${setting}: the host "${host}" cannot be resolved; fix the host name${unset}`;
      case "ETIMEDOUT":
      case "EHOSTUNREACH":
      case "ENETUNREACH":
        return `${setting}: ${where} cannot be reached (${code}); check the host, the port and any firewall${unset}`;
      case "3D000":
        return `${setting}: database "${database}" does not exist on ${where}; create it (createdb -h ${host} -p ${target.port || "5432"} ${database}) or name an existing one`;
      case "28000":
      case "28P01":
        return `${setting}: ${where} refused user "${user}" (${message}); fix the user or password in ${setting}`;
      case "42501":
        return `${setting}: user "${user}" may not do what Countersign needs on "${database}" (${message}); grant it CREATE on the database, or use its owner`;
    }
    if (/^timeout exceeded when trying to connect$|^Connection terminated due to connection timeout$/.test(message)) {
      return `${setting}: ${where} did not answer within 5 s; check that PostgreSQL is running there${unset}`;
    }
  }
  return undefined;
}
