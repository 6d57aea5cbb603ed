import type { Span } from "@opentelemetry/api";
import { type Kysely, sql } from "kysely";
import pg from "pg";
import { Counter, Gauge, type Registry } from "prom-client";
import { UnavailableError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { TRACING_OFF, type Tracing } from "../tracing.ts";
import { textArrayLiteral } from "./array-literal.ts";
import { isConnectionError, isReadOnlyNodeError } from "./connection-errors.ts";
import type { Database } from "./database.ts";
import { claimKey, unclaimedKey } from "./idempotency.ts";
import { type ConsistencyToken, formatToken, isPrimaryOnly, PRIMARY_ONLY_TOKEN } from "./consistency-token.ts";
import { formatLsn, type Lsn, parseLsn } from "./lsn.ts";
import { type NodeMonitor, TIMELINE_OF_CURRENT_WAL } from "./node-monitor.ts";
import type { DbNode } from "./pools.ts";
import { UnreplicatedCommitError } from "./synchronous-commit.ts";
import {
  chooseFallback,
  clampToken,
  type NodeView,
  pickLeastBusy,
  replicasCaughtUp,
  replicasInRotation,
  positionToReach,
  replicasThatMayCatchUp,
} from "./routing-policy.ts";

/**
 * The single entry point to the database: `write` runs on the primary and returns a consistency
 * token; `read` picks a node. No other module chooses a pool.
 *
 * Guarantee (read-your-writes): a read that carries the token of a write is served by a node whose
 * WAL replay position is at or past the commit of that write, so it sees the write and everything
 * committed before it. The position is checked on the chosen node right before the read runs
 * (replay never moves backwards on a running standby). Reads without a token may see data up to
 * `maxReplicaLagMs` old. A token is a primary WAL position with its timeline; it stays valid across
 * restarts of the API and failovers of the database.
 */

export interface ReadOptions {
  /** The consistency token of the caller's last write, if any. */
  readonly token?: ConsistencyToken | null;
  /**
   * The tenant whose rows the read may see (row-level security); without one, tenant-owned tables
   * show no rows.
   */
  readonly tenantId?: string;
  /**
   * Also return a token covering everything this read saw: the serving node's WAL position read
   * after the read. A client that saw a state passes it on and later reads see at least that state.
   */
  readonly observe?: boolean;
  /**
   * Read on the primary (the caller needs rows as the primary has them now, such as the documents of
   * jobs it just fetched). Unlike a client's token, this is never clamped to a replica's reach.
   */
  readonly primary?: boolean;
  /** Transaction-local settings for the read (e.g. hnsw.ef_search), set with the tenant in one statement. */
  readonly settings?: Readonly<Record<string, string>>;
  /**
   * The requester's principals: row-level security then shows only the documents (and their chunks
   * and originals) whose access lists name one of them or `*`. Null or absent: the whole tenant.
   */
  readonly principals?: readonly string[] | null;
  /** Whose conversations the read sees (row-level security); null or absent: every one of the tenant. */
  readonly owner?: string | null;
}

/** A write's tenant, and the requester it runs for: what it may read, and who owns what it creates. */
export interface WriteOptions {
  readonly tenantId?: string;
  readonly principals?: readonly string[] | null;
  readonly owner?: string | null;
  /** One snapshot for every statement of the transaction (PostgreSQL's REPEATABLE READ). */
  readonly oneSnapshot?: boolean;
}

export interface ReadResult<T> {
  readonly value: T;
  /** The node that served the read (for events and the X-Served-By header). */
  readonly node: string;
  /** With `observe`: a token at or past everything the read saw. */
  readonly observed?: ConsistencyToken;
}

export interface WriteResult<T> {
  readonly value: T;
  readonly token: ConsistencyToken;
}

export interface RouterOptions {
  readonly consistencyWaitMs: number;
  readonly readFallbackToPrimary: boolean;
}

type Executor = Kysely<Database>;

const CONSISTENCY_POLL_MS = 5;

/** WAL a primary may plausibly write between two monitor probes (16 MiB); a token further ahead is checked. */
const PLAUSIBLE_WAL_AHEAD = 16n * 1024n * 1024n;

export class Router {
  readonly #primary: DbNode;
  readonly #replicas: readonly DbNode[];
  readonly #monitor: NodeMonitor;
  readonly #options: RouterOptions;
  readonly #logger: Logger;
  readonly #outstanding = new Map<string, number>();
  readonly #reads: Counter<"node" | "reason">;
  readonly #retries: Counter<"node">;
  readonly #tracing: Tracing;

  constructor(
    nodes: { primary: DbNode; replicas: readonly DbNode[] },
    monitor: NodeMonitor,
    options: RouterOptions,
    logger: Logger,
    registry: Registry,
    tracing: Tracing = TRACING_OFF,
  ) {
    this.#tracing = tracing;
    this.#primary = nodes.primary;
    this.#replicas = nodes.replicas;
    this.#monitor = monitor;
    this.#options = options;
    this.#logger = logger;
    for (const node of [nodes.primary, ...nodes.replicas]) this.#outstanding.set(node.name, 0);
    this.#reads = new Counter({
      name: "pgrag_db_reads_total",
      help: "Routed reads by serving node and why that node was chosen",
      labelNames: ["node", "reason"],
      registers: [registry],
    });
    this.#retries = new Counter({
      name: "pgrag_db_read_retries_total",
      help: "Reads retried on another node after a connection error on this one",
      labelNames: ["node"],
      registers: [registry],
    });
    this.#registerPoolMetrics(registry);
  }

  /**
   * Runs `work` in a transaction on the primary and returns the commit's WAL position as the token.
   * Never retried: a connection error may hide a commit, so the caller decides (and idempotent
   * writes make a retry by the client safe).
   */
  async write<T>(options: WriteOptions, work: (tx: Executor) => Promise<T>): Promise<WriteResult<T>> {
    return this.#tracing.child(
      "db.write",
      () => ({ "pgrag.db.node": this.#primary.name }),
      async (span) => {
        const result = await this.#write(options, work);
        span.setAttribute("pgrag.db.token", formatToken(result.token));
        return result;
      },
    );
  }

  async #write<T>(options: WriteOptions, work: (tx: Executor) => Promise<T>): Promise<WriteResult<T>> {
    const primary = this.#primary;
    if (this.#monitor.health(primary.name).state === "down") {
      throw new UnavailableError("the primary database is unreachable; writes are refused until it is back", {
        retryAfterSeconds: 2,
      });
    }
    // The request's first write claims its idempotency key, in the same transaction.
    const claim = options.tenantId === undefined ? undefined : unclaimedKey();
    const tenantId = options.tenantId;
    const claiming =
      claim && tenantId !== undefined
        ? async (tx: Executor) => {
            await claimKey(tx, tenantId, claim);
            return work(tx);
          }
        : work;
    let value: T;
    try {
      value = await this.#track(primary, () =>
        inTransaction(
          primary.db,
          options.tenantId,
          requesterSettings(undefined, options),
          claiming,
          options.oneSnapshot ?? false,
        ),
      );
      if (claim && tenantId !== undefined) claim.claimedBy = tenantId;
    } catch (error) {
      if (error instanceof UnreplicatedCommitError) {
        throw new UnavailableError(
          "the write was not acknowledged: the primary committed it but its synchronous standby did not confirm it, so a failover may lose it; its outcome is unknown",
          { cause: error, retryAfterSeconds: 2 },
        );
      }
      if (isReadOnlyNodeError(error)) {
        this.#monitor.reportFailure(primary.name, error);
        throw new UnavailableError("the database is changing its primary; the write was not applied, retry it", {
          cause: error,
          retryAfterSeconds: 1,
        });
      }
      if (!isConnectionError(error)) throw error;
      this.#monitor.reportFailure(primary.name, error);
      throw new UnavailableError(
        "the primary database became unreachable during the write; it may or may not have been applied",
        {
          cause: error,
          retryAfterSeconds: 2,
        },
      );
    }
    return { value, token: await this.#commitPosition() };
  }

  /**
   * Raw SQL on the primary for libraries that issue their own statements (the job queue). Their
   * statements are single round trips or carry their own BEGIN/COMMIT, which transaction pooling keeps.
   */
  primarySqlExecutor(): { executeSql(text: string, values?: unknown[]): Promise<{ rows: unknown[] }> } {
    const pool = this.#primary.pool;
    return { executeSql: (text, values) => pool.query(text, values) };
  }

  /**
   * Runs `work` on a replica (or the primary), honouring the consistency token. A node that fails
   * with a connection error is taken out of rotation and the read moves on to the next candidate,
   * so a read fails only when no node can serve it. Waiting for a replica to reach the token is
   * bounded once per read (`consistencyWaitMs`), however many nodes are tried.
   */
  async read<T>(options: ReadOptions, work: (db: Executor) => Promise<T>): Promise<ReadResult<T>> {
    const attributes = () => ({
      "pgrag.db.token": options.token == null ? "none" : formatToken(options.token),
      "pgrag.db.primary_required": options.primary === true,
    });
    return this.#tracing.child("db.read", attributes, (span) => this.#read(options, work, span));
  }

  async #read<T>(options: ReadOptions, work: (db: Executor) => Promise<T>, span: Span): Promise<ReadResult<T>> {
    const token = options.primary
      ? PRIMARY_ONLY_TOKEN.lsn
      : options.token == null
        ? null
        : await this.#withinPrimary(options.token);
    const deadline = Date.now() + this.#options.consistencyWaitMs;
    const failed: string[] = [];
    let lastError: unknown;
    const started = performance.now();
    while (failed.length <= this.#replicas.length) {
      const replica =
        token === null
          ? pickLeastBusy(replicasInRotation(this.#replicaViews(), failed))?.node
          : await this.#pickReplicaAtLeast(token, failed, deadline);
      const node = replica ?? (failed.includes(this.#primary.name) ? undefined : this.#fallback(token));
      if (!node) break;
      const reason = failed.length > 0 ? "retry" : replica ? "replica" : "fallback";
      if (span.isRecording()) {
        span.setAttributes({
          "pgrag.db.node": node.name,
          "pgrag.db.reason": reason,
          "pgrag.db.retries": failed.length,
          // Time spent choosing: waiting for a replica to replay up to the token, and failed attempts.
          "pgrag.db.wait_ms": performance.now() - started,
        });
      }
      try {
        const result = await this.#readOn(
          node,
          token,
          options.tenantId,
          requesterSettings(options.settings, options),
          work,
          reason,
        );
        return options.observe ? { ...result, observed: await this.#tokenOf(node) } : result;
      } catch (error) {
        if (!isConnectionError(error)) throw error;
        lastError = error;
        failed.push(node.name);
        this.#monitor.reportFailure(node.name, error);
        this.#retries.inc({ node: node.name });
        this.#logger.warn({ node: node.name, error: (error as Error).message }, "read failed on node; trying another");
      }
    }
    throw new UnavailableError("no database node could serve the read", {
      cause: lastError,
      retryAfterSeconds: 1,
    });
  }

  /**
   * The position a token asks for, judged against the primary's timeline, and clamped to the primary's
   * position when it is far ahead of what the monitor last saw (at most an interval ago). A token a
   * little ahead is normal — a write that committed since — and is taken as it is: a forged one of
   * that kind only costs its sender the bounded consistency wait. A token further ahead, or from a
   * timeline the monitor has not seen yet (a failover it has not noticed), is checked against a probe
   * of the primary started after this read arrived (an earlier one could predate the write), then
   * clamped; with the primary unreachable it stays.
   */
  async #withinPrimary(token: ConsistencyToken): Promise<Lsn> {
    if (isPrimaryOnly(token)) return token.lsn;
    const known = this.#monitor.health(this.#primary.name);
    const wanted = positionToReach(token, known);
    const newerTimeline = token.timeline !== null && known.timeline !== null && token.timeline > known.timeline;
    if (known.lsn !== null && !newerTimeline && wanted <= known.lsn + PLAUSIBLE_WAL_AHEAD) return wanted;
    const fresh = await this.#monitor.refreshNode(this.#primary);
    return fresh.state === "down" ? wanted : clampToken(positionToReach(token, fresh), fresh.lsn);
  }

  async #readOn<T>(
    node: DbNode,
    token: Lsn | null,
    tenantId: string | undefined,
    settings: Readonly<Record<string, string>> | undefined,
    work: (db: Executor) => Promise<T>,
    reason: string,
  ): Promise<ReadResult<T>> {
    const value = await this.#track(node, async () => {
      if (token !== null && node.role === "replica") await this.#assertReplayedTo(node, token);
      // A tenant's reads run in a transaction: the tenant is a SET LOCAL for row-level security,
      // and all statements of the read share one snapshot.
      if (tenantId === undefined && settings === undefined) return work(node.db);
      return inTransaction(node.db, tenantId, settings, work);
    });
    this.#reads.inc({ node: node.name, reason });
    return { value, node: node.name };
  }

  /** A token for what a node has: its replay position, with the timeline the monitor last saw it on. */
  async #tokenOf(node: DbNode): Promise<ConsistencyToken> {
    const { rows } = await sql<{ lsn: string }>`
      SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn
    `.execute(node.db);
    const lsn = parseLsn(rows[0]?.lsn ?? "");
    return lsn === null ? PRIMARY_ONLY_TOKEN : { lsn, timeline: this.#monitor.health(node.name).timeline };
  }

  /** Re-checks on the serving node itself; replay never moves backwards, so the read that follows sees the write. */
  async #assertReplayedTo(node: DbNode, token: Lsn): Promise<void> {
    const { rows } = await sql<{
      ok: boolean;
    }>`SELECT pg_last_wal_replay_lsn() >= ${formatLsn(token)}::pg_lsn AS ok`.execute(node.db);
    if (!rows[0]?.ok) {
      // Only a restart between choosing and reading can get here; treat it like a vanished node.
      const error = new Error(`${node.name} has not replayed up to ${formatLsn(token)}`);
      Object.assign(error, { code: "08000" });
      throw error;
    }
  }

  #fallback(token: Lsn | null): DbNode {
    const decision = chooseFallback({
      token,
      primaryState: this.#monitor.health(this.#primary.name).state,
      readFallbackToPrimary: this.#options.readFallbackToPrimary,
      replicas: this.#replicaViews(),
    });
    if (decision.kind === "unavailable") throw new UnavailableError(decision.message, { retryAfterSeconds: 1 });
    return decision.kind === "replica" ? decision.node.node : this.#primary;
  }

  /**
   * A replica that has replayed up to the token, waiting until the read's deadline for one to catch
   * up; undefined when none does (the caller then goes to the primary).
   */
  async #pickReplicaAtLeast(token: Lsn, exclude: readonly string[], deadline: number): Promise<DbNode | undefined> {
    if (token === PRIMARY_ONLY_TOKEN.lsn) return undefined;
    for (;;) {
      const choice = pickLeastBusy(replicasCaughtUp(this.#replicaViews(), token, exclude));
      if (choice) return choice.node;
      const waiting = replicasThatMayCatchUp(this.#replicaViews(), exclude);
      if (Date.now() >= deadline || waiting.length === 0) return undefined;
      await Promise.all([
        new Promise((resolve) => setTimeout(resolve, CONSISTENCY_POLL_MS)),
        ...waiting.map((r) => this.#monitor.refreshNode(r.node)),
      ]);
    }
  }

  #replicaViews(): (NodeView & { readonly node: DbNode })[] {
    // A replica's standing was judged at its last probe; the primary's timeline may have moved since
    // (its probe runs before a token read): a replica behind it is out now, not at its next probe.
    const primaryTimeline = this.#monitor.health(this.#primary.name).timeline;
    return this.#replicas.map((node) => {
      const { state, lsn, timeline } = this.#monitor.health(node.name);
      const behind = timeline !== null && primaryTimeline !== null && timeline < primaryTimeline;
      const standing = behind && state !== "down" ? "detached" : state;
      return { name: node.name, state: standing, lsn, outstanding: this.#outstanding.get(node.name) ?? 0, node };
    });
  }

  async #track<T>(node: DbNode, run: () => Promise<T>): Promise<T> {
    this.#outstanding.set(node.name, (this.#outstanding.get(node.name) ?? 0) + 1);
    try {
      return await run();
    } finally {
      this.#outstanding.set(node.name, (this.#outstanding.get(node.name) ?? 1) - 1);
    }
  }

  /**
   * The primary's WAL position after our commit: at least the end of our commit record, since a
   * synchronous commit is flushed before COMMIT returns. If it cannot be read, a token that only the
   * primary satisfies keeps the guarantee.
   */
  async #commitPosition(): Promise<ConsistencyToken> {
    try {
      const { rows } = await sql<{ lsn: string; timeline: number }>`
        SELECT pg_current_wal_lsn()::text AS lsn, ${TIMELINE_OF_CURRENT_WAL} AS timeline
      `.execute(this.#primary.db);
      const lsn = parseLsn(rows[0]?.lsn ?? "");
      return lsn === null ? PRIMARY_ONLY_TOKEN : { lsn, timeline: rows[0]?.timeline ?? null };
    } catch (error) {
      this.#logger.warn(
        { error: (error as Error).message },
        "could not read the commit position; token pins reads to the primary",
      );
      return PRIMARY_ONLY_TOKEN;
    }
  }

  #registerPoolMetrics(registry: Registry): void {
    const nodes = [this.#primary, ...this.#replicas];
    const outstanding = this.#outstanding;
    new Gauge({
      name: "pgrag_db_pool_connections",
      help: "Client-side pool connections per node by state (total, idle, waiting requests)",
      labelNames: ["node", "state"],
      registers: [registry],
      collect() {
        for (const node of nodes) {
          this.set({ node: node.name, state: "total" }, node.pool.totalCount);
          this.set({ node: node.name, state: "idle" }, node.pool.idleCount);
          this.set({ node: node.name, state: "waiting" }, node.pool.waitingCount);
        }
      },
    });
    new Gauge({
      name: "pgrag_db_outstanding_requests",
      help: "Routed requests in flight per node",
      labelNames: ["node"],
      registers: [registry],
      collect() {
        for (const node of nodes) this.set({ node: node.name }, outstanding.get(node.name) ?? 0);
      },
    });
  }
}

/**
 * A transaction's settings with its requester's: the principals (always with `*`) as an array
 * literal, and the owner of its conversations. Absent ones stay unset: the whole tenant.
 */
function requesterSettings(
  settings: Readonly<Record<string, string>> | undefined,
  requester: { principals?: readonly string[] | null; owner?: string | null },
): Readonly<Record<string, string>> | undefined {
  const { principals, owner } = requester;
  if (!principals && !owner) return settings;
  return {
    ...settings,
    ...(principals ? { "pgrag.principals": textArrayLiteral([...new Set(["*", ...principals])]) } : {}),
    ...(owner ? { "pgrag.owner": owner } : {}),
  };
}

/**
 * The statement that opens a transaction with its local settings (the tenant for row-level
 * security, search settings): BEGIN and the set_config calls as one simple-protocol query, one
 * round trip instead of two. That protocol has no parameters, so the values are escaped literals.
 * set_config(..., true) is SET LOCAL: nothing outlives the transaction, so nothing leaks to the next
 * client of a pooled server connection.
 */
export function beginStatement(settings: Readonly<Record<string, string>>, oneSnapshot = false): string {
  const entries = Object.entries(settings);
  const begin = oneSnapshot ? "BEGIN ISOLATION LEVEL REPEATABLE READ" : "BEGIN";
  if (entries.length === 0) return begin;
  return `${begin}; SELECT ${entries.map(([name, value]) => `set_config(${pg.escapeLiteral(name)}, ${pg.escapeLiteral(value)}, true)`).join(", ")}`;
}

async function inTransaction<T>(
  db: Executor,
  tenantId: string | undefined,
  settings: Readonly<Record<string, string>> | undefined,
  work: (tx: Executor) => Promise<T>,
  oneSnapshot = false,
): Promise<T> {
  const all = { ...(tenantId === undefined ? {} : { "pgrag.tenant_id": tenantId }), ...settings };
  return db.connection().execute(async (connection) => {
    let value: T;
    try {
      await sql.raw(beginStatement(all, oneSnapshot)).execute(connection);
      value = await work(connection);
    } catch (error) {
      // Also after a failed set_config: BEGIN ran, and the connection must not go back to the pool
      // inside an aborted transaction.
      await sql
        .raw("ROLLBACK")
        .execute(connection)
        .catch(() => undefined);
      throw error;
    }
    await sql.raw("COMMIT").execute(connection);
    return value;
  });
}
