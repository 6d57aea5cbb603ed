import { Kysely, type LogEvent, PostgresDialect } from "kysely";
import pg from "pg";
import { TRACING_OFF, type Tracing } from "../tracing.ts";
import type { Database } from "./database.ts";
import { refuseUnreplicatedCommits } from "./synchronous-commit.ts";

export type NodeRole = "primary" | "replica";

/** One database node as the API sees it: a pooled connection through PgBouncer and Kysely on top. */
export interface DbNode {
  readonly name: string;
  readonly role: NodeRole;
  readonly pool: pg.Pool;
  readonly db: Kysely<Database>;
}

export interface PoolOptions {
  readonly size: number;
  readonly applicationName: string;
  /**
   * How long a query waits for a connection before that counts as the node being unreachable
   * (3 s by default: a node behind PgBouncer that is down surfaces quickly, so the router goes
   * elsewhere). The embedded database's one connection is busy, not down, while a write holds it.
   */
  readonly connectionWaitMs?: number;
  /** Each statement becomes a span (with its node) inside a traced request or job. */
  readonly tracing?: Tracing;
}

// bigint (int8) and numeric stay strings by default in pg; ids are bigint and must not lose precision,
// but counts from count(*) are small: they are cast to int in SQL where a number is wanted.

/** The only place that creates a connection pool. */
export function createDbNode(name: string, role: NodeRole, url: string, options: PoolOptions): DbNode {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.size,
    application_name: `${options.applicationName}:${name}`,
    // PgBouncer itself fails queued clients after its query_wait_timeout.
    connectionTimeoutMillis: options.connectionWaitMs ?? 3_000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
  });
  // An idle client that loses its server (node restart, PgBouncer restart) emits 'error' on the pool;
  // pg then discards it. Without a listener the process would crash.
  pool.on("error", () => {});
  // The same can happen to a client that is checked out between two queries (PgBouncer sends
  // "server conn crashed?" as a FATAL message); the next query on it fails and the router handles that.
  pool.on("connect", (client) => {
    client.on("error", () => {});
    refuseUnreplicatedCommits(client);
  });
  const tracing = options.tracing ?? TRACING_OFF;
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({ pool }),
    ...(tracing.enabled ? { log: (event: LogEvent) => traceStatement(tracing, name, event) } : {}),
  });
  return { name, role, pool, db };
}

function traceStatement(tracing: Tracing, node: string, event: LogEvent): void {
  tracing.record(
    "db.statement",
    {
      "db.system.name": "postgresql",
      "db.query.text": statementText(event.query.sql),
      "pgrag.db.node": node,
    },
    event.queryDurationMillis,
    event.level === "error" ? event.error : undefined,
  );
}

/**
 * A statement as a trace shows it. Values are parameters, never in the text, except in the
 * statement that opens a transaction: its settings (tenant, principals) are literals, left out.
 */
export function statementText(text: string): string {
  return text.replace(/(set_config\('[^']*', )E?'(?:[^'\\]|''|\\.)*'/g, "$1…");
}

export async function closeDbNode(node: DbNode): Promise<void> {
  await node.db.destroy();
}
