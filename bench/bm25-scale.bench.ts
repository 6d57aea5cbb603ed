/**
 * `npm run bench:bm25-scale`: BM25 query latency as the corpus grows to 1M chunks (synthetic).
 *
 * Synthetic postings (20 distinct terms per chunk, Zipf-like term frequencies over a 50k vocabulary,
 * lengths 40–79) go into a scratch schema holding tables of the same shape as chunk_terms and
 * collection_stats; the very SQL of bm25Search then runs against them (search_path points at the
 * scratch schema inside the transaction). Prints p50/p95 of 5-term queries at 100k, 300k and 1M
 * chunks. The scratch schema is dropped at the end.
 */
import { randomUUID } from "node:crypto";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { loadConfig } from "../src/config.ts";
import type { Database } from "../src/db/database.ts";
import { bm25Search, type SearchScope } from "../src/retrieval/search.repository.ts";
import { waitFor } from "../harness/wait-for.ts";
import { formatMs, percentile } from "./stats.ts";

const SCALES = (process.env.BENCH_SCALES ?? "100000,300000,1000000").split(",").map(Number);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 200);
const TERMS_PER_CHUNK = 20;
const VOCABULARY = 50_000;

const config = loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn" });
const pool = new pg.Pool({ connectionString: config.database.migrationUrl, max: 1 });
const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
const tenantId = randomUUID();
const collectionId = randomUUID();
const scope: SearchScope = {
  tenantId,
  collectionIds: [collectionId],
  language: "simple",
  documentIds: null,
  filter: undefined,
};
// log-uniform term ids: a Zipf-like distribution (few very common terms, a long tail)
const zipfTerm = () => `t${Math.floor(Math.exp(Math.random() * Math.log(VOCABULARY)))}`;

try {
  await sql`DROP SCHEMA IF EXISTS bench_bm25 CASCADE`.execute(db);
  await sql`CREATE SCHEMA bench_bm25`.execute(db);
  await sql`CREATE TABLE bench_bm25.chunk_terms (LIKE public.chunk_terms INCLUDING ALL)`.execute(db);
  await sql`CREATE TABLE bench_bm25.collection_stats (LIKE public.collection_stats INCLUDING ALL)`.execute(db);
  console.log(
    `bench:bm25-scale — ${TERMS_PER_CHUNK} terms/chunk, ${VOCABULARY} term vocabulary, ${QUERIES} queries of 5 terms per scale`,
  );
  console.log("chunks     postings     p50         p95         postings read per query (median)");
  let loaded = 0;
  for (const scale of SCALES) {
    const started = performance.now();
    for (let from = loaded + 1; from <= scale; from += 100_000) {
      const to = Math.min(scale, from + 99_999);
      await sql`
        INSERT INTO bench_bm25.chunk_terms (collection_id, term, chunk_id, tenant_id, tf, dl)
        SELECT ${collectionId}::uuid, 't' || floor(exp(random() * ln(${VOCABULARY}::float8)))::int, c, ${tenantId}::uuid,
               1 + floor(-ln(1 - random()) * 0.7)::int, 40 + (c % 40)
        FROM generate_series(${from}::bigint, ${to}::bigint) AS c, generate_series(1, ${TERMS_PER_CHUNK}) AS j
        ON CONFLICT DO NOTHING
      `.execute(db);
    }
    loaded = scale;
    await sql`DELETE FROM bench_bm25.collection_stats`.execute(db);
    await sql`
      INSERT INTO bench_bm25.collection_stats (collection_id, tenant_id, chunk_count, total_length)
      SELECT ${collectionId}::uuid, ${tenantId}::uuid, ${scale}::bigint, sum(dl) FROM (SELECT DISTINCT chunk_id, dl FROM bench_bm25.chunk_terms) d
    `.execute(db);
    // The visibility map makes the postings scan index-only, as autovacuum does after ingestion.
    // A VACUUM right after the load cannot set it while the replicas' hot_standby_feedback still
    // reports a snapshot from before the load (it is refreshed every few seconds): vacuum until
    // every page is all-visible, or the scan would fetch a heap row per posting.
    await sql`ANALYZE bench_bm25.chunk_terms`.execute(db);
    await waitFor(
      "every postings page all-visible",
      async () => {
        await sql`VACUUM bench_bm25.chunk_terms`.execute(db);
        const { rows: pages } = await sql<{ visible: number; total: number }>`
          SELECT relallvisible AS visible, relpages AS total FROM pg_class WHERE oid = 'bench_bm25.chunk_terms'::regclass
        `.execute(db);
        return (pages[0]?.visible ?? 0) >= (pages[0]?.total ?? 1);
      },
      60_000,
    );
    const loadSeconds = (performance.now() - started) / 1000;
    const latencies: number[] = [];
    const postingsRead: number[] = [];
    for (let q = 0; q < QUERIES; q++) {
      const query = Array.from({ length: 5 }, zipfTerm).join(" ");
      const start = performance.now();
      await db.transaction().execute(async (tx) => {
        await sql`SET LOCAL search_path = bench_bm25, public`.execute(tx);
        await bm25Search(tx, scope, query, 40, config.retrieval.bm25);
      });
      latencies.push(performance.now() - start);
      if (q % 20 === 0) {
        const { rows } = await sql<{ n: number }>`
          SELECT count(*)::int AS n FROM bench_bm25.chunk_terms WHERE collection_id = ${collectionId}::uuid AND term = any(${query.split(" ")}::text[])
        `.execute(db);
        postingsRead.push(rows[0]?.n ?? 0);
      }
    }
    const { rows } = await sql<{ n: string }>`SELECT count(*) AS n FROM bench_bm25.chunk_terms`.execute(db);
    console.log(
      `${String(scale).padEnd(10)} ${String(rows[0]?.n).padEnd(12)} ${formatMs(percentile(latencies, 50)).padEnd(11)} ${formatMs(percentile(latencies, 95)).padEnd(11)} ${percentile(postingsRead, 50)}   (loaded in ${loadSeconds.toFixed(0)} s)`,
    );
  }
} finally {
  await sql`DROP SCHEMA IF EXISTS bench_bm25 CASCADE`.execute(db);
  await db.destroy();
}
