import { sql } from "kysely";
import { Gauge, type Registry } from "prom-client";
import type { Logger } from "../logger.ts";
import { type Lsn, parseLsn } from "./lsn.ts";
import type { DbNode } from "./pools.ts";
import { type NodeState, readNodeStanding } from "./routing-policy.ts";

/**
 * Polls every node in the background and decides which replicas are in rotation.
 *
 * - up: answered the last probe; for a replica, its replay lag is within the bound.
 * - lagging: a replica that answers but is further behind than the bound (out of rotation for
 *   reads without a token; a read with a token may still use it once it has replayed far enough).
 * - detached: a replica that answers but must not serve reads: promoted (a primary now), on an older
 *   timeline than the primary, or no longer streaming since the primary moved to a new timeline.
 *   Probed at the normal interval; it is back once it streams the current timeline.
 * - down: the last probe or a routed query failed with a connection error, or the primary's entry
 *   reached a node in recovery (a switch under way). Its breaker is open: no routed traffic goes to
 *   it, and it is probed with exponential backoff until it answers.
 *
 * Roles are read from the nodes on every probe, never assumed: after a failover the primary's entry
 * reaches the new primary (HAProxy follows Patroni's leader) and each replica's standing follows.
 */
const PRIMARY_MAX_BACKOFF_MS = 1_000;

export interface NodeHealth {
  readonly name: string;
  readonly role: DbNode["role"];
  readonly state: NodeState;
  /** Primary: its current WAL position. Replica: its replay position. */
  readonly lsn: Lsn | null;
  /** The timeline the node writes (primary) or replays (replica); null until known. */
  readonly timeline: number | null;
  /** Replicas only: how far behind the primary, in milliseconds (0 when caught up). */
  readonly lagMs: number | null;
  /** Why it is down or detached. */
  readonly lastError: string | null;
  readonly checkedAt: number;
}

export interface MonitorOptions {
  readonly intervalMs: number;
  readonly maxReplicaLagMs: number;
  readonly maxBackoffMs: number;
  /**
   * A node that died leaves PgBouncer queueing our probe until its query_wait_timeout; a probe
   * that takes longer than this counts as a failure, so rotation reacts within about a second.
   */
  readonly probeTimeoutMs: number;
}

interface MutableHealth {
  name: string;
  role: DbNode["role"];
  state: NodeState;
  lsn: Lsn | null;
  timeline: number | null;
  lagMs: number | null;
  lastError: string | null;
  checkedAt: number;
  consecutiveFailures: number;
  nextProbeAt: number;
}

const STATE_VALUE: Record<NodeState, number> = { down: 0, detached: 0.5, lagging: 1, up: 2 };

export class NodeMonitor {
  readonly #nodes: readonly DbNode[];
  readonly #health = new Map<string, MutableHealth>();
  readonly #options: MonitorOptions;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = true;

  constructor(nodes: readonly DbNode[], options: MonitorOptions, logger: Logger, registry: Registry) {
    this.#nodes = nodes;
    this.#options = options;
    this.#logger = logger;
    for (const node of nodes) {
      // Until the first probe answers, a node is assumed up: start-up should not wait for it.
      this.#health.set(node.name, {
        name: node.name,
        role: node.role,
        state: "up",
        lsn: null,
        timeline: null,
        lagMs: node.role === "primary" ? null : 0,
        lastError: null,
        checkedAt: 0,
        consecutiveFailures: 0,
        nextProbeAt: 0,
      });
    }
    this.#registerMetrics(registry);
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  health(name: string): NodeHealth {
    const health = this.#health.get(name);
    if (!health) throw new Error(`unknown database node ${name}`);
    return health;
  }

  snapshot(): NodeHealth[] {
    return [...this.#health.values()].map((h) => ({ ...h }));
  }

  /** A routed query met a connection error: take the node out now rather than at the next probe. */
  reportFailure(name: string, error: unknown): void {
    const health = this.#health.get(name);
    if (health) this.#markDown(health, error, Date.now());
  }

  /** Probe every node whose breaker allows it, now. Used by the loop, /readyz and tests. */
  async probeAll(force = false): Promise<void> {
    const now = Date.now();
    const primary = this.#nodes.find((n) => n.role === "primary");
    // The primary first: replica lag is measured against its WAL position.
    if (primary) await this.#probeIfDue(primary, now, force);
    await Promise.all(this.#nodes.filter((n) => n.role === "replica").map((n) => this.#probeIfDue(n, now, force)));
  }

  /** Re-reads one node's position now: a replica's while a read waits for its token, the primary's to check a token. */
  async refreshNode(node: DbNode): Promise<NodeHealth> {
    await this.#probe(node);
    return this.health(node.name);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.probeAll()
        .catch((error: unknown) => this.#logger.error({ err: error }, "node monitor iteration failed"))
        .finally(() => this.#schedule(this.#options.intervalMs));
    }, delayMs);
    this.#timer.unref();
  }

  async #probeIfDue(node: DbNode, now: number, force: boolean): Promise<void> {
    const health = this.health(node.name) as MutableHealth;
    if (!force && health.state === "down" && now < health.nextProbeAt) return;
    await this.#probe(node);
  }

  async #probe(node: DbNode): Promise<void> {
    const health = this.#health.get(node.name) as MutableHealth;
    const now = Date.now();
    try {
      await withTimeout(
        this.#probeQuery(node, health, now),
        this.#options.probeTimeoutMs,
        `${node.name} did not answer the health probe`,
      );
    } catch (error) {
      this.#markDown(health, error, now);
    }
  }

  async #probeQuery(node: DbNode, health: MutableHealth, now: number): Promise<void> {
    if (node.role === "replica") return this.#probeReplica(node, health, now);
    const { rows } = await sql<{ in_recovery: boolean; lsn: string | null; timeline: number | null }>`
      SELECT pg_is_in_recovery() AS in_recovery,
             CASE WHEN NOT pg_is_in_recovery() THEN pg_current_wal_lsn()::text END AS lsn,
             CASE WHEN NOT pg_is_in_recovery() THEN ${TIMELINE_OF_CURRENT_WAL} END AS timeline
    `.execute(node.db);
    const row = rows[0];
    // Reached through HAProxy during a switch, the primary's entry can land on a node that is (still
    // or already) a standby: writes there would fail, so it counts as down until the leader answers.
    if (!row || row.in_recovery) throw new Error(`${node.name} reached a node in recovery: no primary yet`);
    health.lsn = parseLsn(row.lsn ?? "");
    health.timeline = row.timeline;
    this.#markAnswered(health, "up", now);
  }

  async #probeReplica(node: DbNode, health: MutableHealth, now: number): Promise<void> {
    const { rows } = await sql<{
      in_recovery: boolean;
      lsn: string | null;
      since_replay_ms: number | null;
      streaming: boolean;
      receiver_timeline: number | null;
      own_timeline: number | null;
      checkpoint_timeline: number | null;
    }>`
      SELECT pg_is_in_recovery() AS in_recovery,
             (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn,
             (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::float8 AS since_replay_ms,
             r.pid IS NOT NULL AS streaming,
             r.received_tli AS receiver_timeline,
             CASE WHEN NOT pg_is_in_recovery() THEN ${TIMELINE_OF_CURRENT_WAL} END AS own_timeline,
             (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline
      FROM (SELECT 1) AS one
      LEFT JOIN pg_stat_wal_receiver AS r ON true
    `.execute(node.db);
    const row = rows[0];
    if (!row) throw new Error(`${node.name} answered the probe with no row`);
    health.lsn = row.lsn ? parseLsn(row.lsn) : null;
    // Streaming: the receiver's timeline (hidden without pg_read_all_stats: unknown, and trusted).
    // Not streaming: the last one seen, which a restartpoint's would lag behind; a node first seen
    // not streaming gets its last restartpoint's.
    health.timeline = !row.in_recovery
      ? row.own_timeline
      : row.streaming
        ? row.receiver_timeline
        : (health.timeline ?? row.checkpoint_timeline);
    const primary = [...this.#health.values()].find((h) => h.role === "primary");
    const primaryLsn = primary?.lsn ?? null;
    // Caught up with the last primary position seen ⇒ no lag, however long ago the last commit was
    // (an idle primary makes the replay timestamp old without any lag). Behind it ⇒ the age of the last
    // replayed commit bounds how stale the replica's data is.
    const caughtUp = primaryLsn === null || (health.lsn !== null && health.lsn >= primaryLsn);
    health.lagMs = caughtUp ? 0 : Math.max(0, row.since_replay_ms ?? Number.POSITIVE_INFINITY);
    const standing = readNodeStanding(
      { inRecovery: row.in_recovery, streaming: row.streaming, timeline: health.timeline, lagMs: health.lagMs },
      primary?.timeline ?? null,
      this.#options.maxReplicaLagMs,
    );
    this.#markAnswered(health, standing.state, now, standing.reason);
  }

  #markAnswered(health: MutableHealth, state: NodeState, now: number, reason: string | null = null): void {
    if (health.state !== state) {
      this.#logger.info(
        { node: health.name, from: health.state, to: state, lagMs: health.lagMs, timeline: health.timeline, reason },
        "node state changed",
      );
    }
    health.state = state;
    health.lastError = reason;
    health.checkedAt = now;
    health.consecutiveFailures = 0;
    health.nextProbeAt = 0;
  }

  #markDown(health: MutableHealth, error: unknown, now: number): void {
    const message = error instanceof Error ? error.message : String(error);
    if (health.state !== "down") this.#logger.warn({ node: health.name, error: message }, "node down");
    health.state = "down";
    health.lastError = message;
    health.checkedAt = now;
    health.consecutiveFailures += 1;
    // Writes have nowhere else to go: the primary is probed at least every second while down, so
    // writes resume within a second of its return (a replica may back off further; reads go elsewhere).
    const cap =
      health.role === "primary"
        ? Math.min(this.#options.maxBackoffMs, PRIMARY_MAX_BACKOFF_MS)
        : this.#options.maxBackoffMs;
    const backoff = Math.min(this.#options.intervalMs * 2 ** (health.consecutiveFailures - 1), cap);
    health.nextProbeAt = now + backoff;
  }

  #registerMetrics(registry: Registry): void {
    const snapshot = () => this.snapshot();
    new Gauge({
      name: "pgrag_db_node_state",
      help: "Database node state as seen by the router: 2 up (in rotation), 1 lagging, 0 down",
      labelNames: ["node", "role"],
      registers: [registry],
      collect() {
        for (const h of snapshot()) this.set({ node: h.name, role: h.role }, STATE_VALUE[h.state]);
      },
    });
    new Gauge({
      name: "pgrag_db_replica_lag_seconds",
      help: "Replica replay lag behind the primary",
      labelNames: ["node"],
      registers: [registry],
      collect() {
        for (const h of snapshot())
          if (h.role === "replica" && h.lagMs !== null) this.set({ node: h.name }, h.lagMs / 1000);
      },
    });
  }
}

/** The timeline a primary writes: the first eight hex digits of its current WAL file's name. */
export const TIMELINE_OF_CURRENT_WAL = sql`('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int`;

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
