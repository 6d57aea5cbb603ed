import { randomUUID } from "node:crypto";
import pg from "pg";
import { TIMELINE_OF_CURRENT_WAL } from "../src/db/node-monitor.ts";
import { offlineKysely } from "./offline-kysely.ts";

/**
 * The load that bench:failover and the failover tests put on the API while the primary fails: one
 * writer creating collections (each with its own Idempotency-Key, retried with that key until the
 * answer is definite) that reads each acknowledged write back with its consistency token, and
 * readers listing collections without a token. What they saw is returned for the caller to assert
 * or print; a sampler records each member's role and timeline, so reads served by a node on an old
 * timeline can be counted from the outside.
 */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
}

/** One API request with the tenant's key; a thrown error counts as no answer. */
export type Send = (method: string, path: string, headers: Record<string, string>, json?: unknown) => Promise<Answer>;

/** Requests to an app in this process, as the holder of `key`. */
export function appSender(
  app: { http: { request: (path: string, init: RequestInit) => Response | Promise<Response> } },
  key: string,
): Send {
  return async (method, path, headers, json) => {
    const response = await app.http.request(path, {
      method,
      headers: {
        Authorization: `Bearer ${key}`,
        ...(json === undefined ? {} : { "Content-Type": "application/json" }),
        ...headers,
      },
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as unknown) : null };
  };
}

export interface FailoverLoadResult {
  /** Collections whose creation was answered 201 (the first answer, or its replay). */
  readonly acknowledged: readonly string[];
  /** Writes a retry learned were applied without getting their answer (409 "applied"). */
  readonly appliedWithoutAnswer: readonly string[];
  /** Attempts answered 5xx or not at all, then retried with the same key. */
  readonly ambiguousAttempts: number;
  /** Retries answered with the first answer (Idempotent-Replayed): the write had happened once. */
  readonly replayed: number;
  /** Writes still without a definite answer when the load stopped. */
  readonly unresolved: readonly string[];
  /** The longest time between two acknowledged writes, and when it started. */
  readonly longestWriteGap: { readonly ms: number; readonly from: number };
  readonly tokenReads: { readonly ok: number; readonly failed: number; readonly missedTheirWrite: number };
  readonly reads: { readonly ok: number; readonly failed: number };
  /** Every successful read: when, on which node (X-Served-By). */
  readonly served: readonly { readonly at: number; readonly node: string }[];
}

export interface FailoverLoad {
  /** Acknowledged writes so far; throws if the writer stopped on an answer it did not expect. */
  acknowledgedCount(): number;
  stop(): Promise<FailoverLoadResult>;
}

const RETRY_PAUSE_MS = 100;
/** Between two reads of one reader, and two writes: a steady load, not as fast as the machine allows. */
const READ_PAUSE_MS = 10;
const WRITE_PAUSE_MS = 20;

export function startFailoverLoad(send: Send, options: { readers: number; prefix?: string }): FailoverLoad {
  const prefix = options.prefix ?? `fo-${randomUUID().slice(0, 8)}`;
  let running = true;
  const acknowledged: string[] = [];
  const appliedWithoutAnswer: string[] = [];
  const unresolved: string[] = [];
  const served: { at: number; node: string }[] = [];
  let ambiguousAttempts = 0;
  let replayed = 0;
  let lastAck = Date.now();
  let longestWriteGap = { ms: 0, from: lastAck };
  const tokenReads = { ok: 0, failed: 0, missedTheirWrite: 0 };
  const reads = { ok: 0, failed: 0 };

  const attempt = async (method: string, path: string, headers: Record<string, string>, json?: unknown) => {
    try {
      return await send(method, path, headers, json);
    } catch {
      return undefined;
    }
  };

  const listed = (answer: Answer | undefined) => {
    const names = (answer?.body as { collections?: { name: string }[] } | undefined)?.collections;
    return answer?.status === 200 && names ? new Set(names.map((c) => c.name)) : undefined;
  };

  const write = async (name: string) => {
    const headers = { "Idempotency-Key": randomUUID() };
    for (let tries = 0; running || tries === 0; tries++) {
      const answer = await attempt("POST", "/v1/collections", headers, { name });
      if (answer?.status === 201) {
        if (answer.headers.get("Idempotent-Replayed") === "true") replayed++;
        return answer.headers.get("X-Consistency-Token");
      }
      if (answer?.status === 409 && answer.headers.get("Idempotent-Replayed") === "true") {
        appliedWithoutAnswer.push(name);
        return null;
      }
      if (answer !== undefined && answer.status < 500 && answer.status !== 429) {
        throw new Error(`a write was refused (${answer.status}): ${JSON.stringify(answer.body)}`);
      }
      ambiguousAttempts++;
      await pause(RETRY_PAUSE_MS);
    }
    unresolved.push(name);
    return undefined;
  };

  let writerError: unknown;
  const writer = (async () => {
    for (let i = 0; running; i++) {
      const name = `${prefix}-${i}`;
      const token = await write(name);
      if (token === undefined) break;
      const now = Date.now();
      if (token !== null) acknowledged.push(name);
      if (now - lastAck > longestWriteGap.ms) longestWriteGap = { ms: now - lastAck, from: lastAck };
      lastAck = now;
      await pause(WRITE_PAUSE_MS);
      if (token === null) continue;
      const read = await attempt("GET", "/v1/collections", { "X-Consistency-Token": token });
      const names = listed(read);
      if (!names) tokenReads.failed++;
      else if (names.has(name)) tokenReads.ok++;
      else tokenReads.missedTheirWrite++;
    }
  })().catch((error: unknown) => {
    writerError = error;
    running = false;
  });

  const readers = Array.from({ length: options.readers }, async () => {
    while (running) {
      const read = await attempt("GET", "/v1/collections", {});
      if (listed(read)) {
        reads.ok++;
        served.push({ at: Date.now(), node: read?.headers.get("X-Served-By") ?? "?" });
        await pause(READ_PAUSE_MS);
      } else {
        reads.failed++;
        await pause(RETRY_PAUSE_MS);
      }
    }
  });

  return {
    acknowledgedCount: () => {
      if (writerError) throw writerError;
      return acknowledged.length;
    },
    async stop() {
      running = false;
      await Promise.all([writer, ...readers]);
      if (writerError) throw writerError;
      return {
        acknowledged,
        appliedWithoutAnswer,
        ambiguousAttempts,
        replayed,
        unresolved,
        longestWriteGap,
        tokenReads,
        reads,
        served,
      };
    },
  };
}

/** A superuser query on one member over its socket, bounded: a frozen member fails it, never hangs it. */
export async function memberQuery<R extends pg.QueryResultRow>(
  socketDir: string,
  port: number,
  text: string,
  values: unknown[] = [],
  database = "pgrag",
): Promise<R[]> {
  const client = new pg.Client({
    host: socketDir,
    port,
    user: "postgres",
    database,
    connectionTimeoutMillis: 2_000,
    query_timeout: 5_000,
  });
  client.on("error", () => {});
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** One look at a member: whether it is the primary, its timeline and position, and (a primary) its history. */
export interface MemberSample {
  readonly at: number;
  readonly member: string;
  readonly primary: boolean;
  /**
   * A primary's timeline, or the one a replica's WAL receiver streams; null for a replica without a
   * receiver (its upstream lost or changing), whose timeline a sample cannot tell.
   */
  readonly timeline: number | null;
  /** A primary's current WAL position, a replica's replay position. */
  readonly lsn: bigint;
  /** A primary's timeline history: where each earlier timeline ended (its switch point). */
  readonly switchPoints: ReadonlyMap<number, bigint>;
}

const CURRENT_TIMELINE_SQL = TIMELINE_OF_CURRENT_WAL.compile(offlineKysely()).sql;
const SAMPLE_SQL = `
  SELECT NOT pg_is_in_recovery() AS primary,
         CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming')
              ELSE ${CURRENT_TIMELINE_SQL} END AS timeline,
         (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::text AS lsn,
         CASE WHEN NOT pg_is_in_recovery() AND ${CURRENT_TIMELINE_SQL} > 1
              THEN pg_read_file('pg_wal/' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) || '.history') END AS history`;

/** "1\t0/5000A8\treason" lines: timeline 1 ended at 0/5000A8. */
function switchPointsOf(history: string | null): Map<number, bigint> {
  const points = new Map<number, bigint>();
  for (const line of (history ?? "").split("\n")) {
    const [timeline, lsn] = line.split("\t");
    const [hi, lo] = (lsn ?? "").split("/");
    if (timeline && hi && lo) points.set(Number(timeline), (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`));
  }
  return points;
}

/**
 * Samples every member's role, timeline and position (as the superuser, over its socket) until
 * stopped. A member that does not answer within a second (stopped, frozen) is skipped that round.
 */
export function sampleTimelines(members: readonly { name: string; port: number }[], socketDir: string) {
  const samples: MemberSample[] = [];
  let running = true;
  const look = async (member: { name: string; port: number }) => {
    try {
      const [row] = await memberQuery<{
        primary: boolean;
        timeline: number | null;
        lsn: string;
        history: string | null;
      }>(socketDir, member.port, SAMPLE_SQL, [], "postgres");
      if (row) {
        samples.push({
          at: Date.now(),
          member: member.name,
          primary: row.primary,
          timeline: row.timeline,
          lsn: BigInt(row.lsn.split(".")[0] ?? "0"),
          switchPoints: switchPointsOf(row.history),
        });
      }
    } catch {
      // Not answering (stopped, frozen): no sample this round.
    }
  };
  const loop = (async () => {
    while (running) {
      await Promise.all(members.map(look));
      await pause(200);
    }
  })();
  return {
    async stop(): Promise<MemberSample[]> {
      running = false;
      await loop;
      return samples;
    },
  };
}

/**
 * Reads served by a node on an old timeline: by the time of the read a primary on a newer timeline
 * had been sampled, and the serving node was last seen on an older timeline and past that
 * timeline's switch point in the new primary's history (so holding WAL the new history lacks), or
 * still acting as a primary. A replica on an older timeline but before the switch point serves
 * history the new primary shares, and does not count. A replica sampled without a WAL receiver
 * keeps the timeline it was last seen streaming (it receives nothing meanwhile); one never seen
 * on a timeline is not judged.
 */
export function readsOnOldTimelines(
  served: readonly { at: number; node: string }[],
  samples: readonly MemberSample[],
): number {
  const ordered = [...samples].sort((a, b) => a.at - b.at);
  const latest = new Map<string, MemberSample>();
  let newestPrimary: MemberSample | undefined;
  let next = 0;
  let count = 0;
  for (const read of [...served].sort((a, b) => a.at - b.at)) {
    for (; next < ordered.length && (ordered[next] as MemberSample).at <= read.at; next++) {
      const sample = ordered[next] as MemberSample;
      const known = sample.timeline ?? latest.get(sample.member)?.timeline ?? null;
      latest.set(sample.member, { ...sample, timeline: known });
      if (sample.primary && (sample.timeline ?? 0) >= (newestPrimary?.timeline ?? 0)) newestPrimary = sample;
    }
    const own = latest.get(read.node);
    const current = newestPrimary?.timeline ?? null;
    if (!own || own.timeline === null || current === null || own.timeline >= current) continue;
    const switchPoint = newestPrimary?.switchPoints.get(own.timeline);
    if (own.primary || switchPoint === undefined || own.lsn > switchPoint) count++;
  }
  return count;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
