/**
 * `npm run bench:bm25-scale [-- --dataset DIR] [--scales 5183,100000,1000000] [--queries 200]`:
 * BM25 at scale on a realistic corpus — the platform's choice of path, every block, early
 * termination for every query, and the previous layout (one row per posting, up to
 * BENCH_BASELINE_MAX chunks) — same data, same run.
 *
 * The corpus: the dataset's documents (SciFact by default, so its judged queries still apply; read
 * and loaded DOCUMENTS_PER_STATEMENT at a time), then synthetic chunks recombined from their
 * sentences — 4 to 8 sentences each, chosen by a hash of the chunk number (seeded, the same corpus
 * every run) — so term statistics look like real text. It is generated in SQL into a scratch schema
 * (bench_bm25: chunks, bm25_blocks, bm25_deletions, collection_stats of the platform's shapes) and
 * the postings are built by the bulk path (rebuildPostings), timed against a GIN index built over
 * the same tsvectors; the very bm25Search of the API then runs there (search_path set per
 * transaction). Queries: the dataset's claims (5–20 terms) and short 1–3-term queries drawn from
 * them (seeded). Printed per scale: load and build times, postings bytes / text bytes, p50/p95/p99
 * by query length and path, the share certified by early termination, top-10 agreement with every
 * block, nDCG@10 of the judged queries. BENCH_KEEP_SCHEMA=1 keeps the last scale's scratch schema.
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { loadConfig } from "../src/config.ts";
import type { Database } from "../src/db/database.ts";
import { readBeirQueries } from "../src/evaluation/beir.ts";
import { jsonLines, SCIFACT_DIR } from "../src/evaluation/datasets.ts";
import { mean, ndcgAt } from "../src/evaluation/metrics.ts";
import { rebuildPostings } from "../src/postings/postings.repository.ts";
import { BM25_TUNING, type Bm25Outcome, type Bm25Tuning, bm25Search } from "../src/retrieval/bm25-search.ts";
import type { SearchScope } from "../src/retrieval/search.repository.ts";
import { replicasReleaseDeletedRows } from "./replica-slots.ts";
import { inScratchSchema, sentencesOf } from "./scratch-schema.ts";
import { seeded } from "./seeded-random.ts";
import { formatMs, percentile } from "./stats.ts";

const { values: args } = parseArgs({
  options: {
    dataset: { type: "string", default: SCIFACT_DIR },
    scales: { type: "string", default: process.env.BENCH_SCALES ?? "5183,100000,300000,1000000" },
    queries: { type: "string", default: process.env.BENCH_QUERIES ?? "200" },
    "agreement-sample": { type: "string", default: "50" },
  },
});
const SCALES = args.scales.split(",").map(Number);
const QUERIES = Number(args.queries);
const AGREEMENT_SAMPLE = Number(args["agreement-sample"]);
const BASELINE_MAX = Number(process.env.BENCH_BASELINE_MAX ?? 300_000);
const K = 10;

const config = loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn" });
const pool = new pg.Pool({ connectionString: config.database.migrationUrl, max: 1 });
const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
const tenantId = randomUUID();
const collectionId = randomUUID();
const scope: SearchScope = {
  tenantId,
  collectionIds: [collectionId],
  language: "english",
  documentIds: null,
  principals: null,
  filter: undefined,
};
const params = config.retrieval.bm25;

/** Runs `work` against the scratch schema's tables. */
const inScratch = <T>(work: (tx: Kysely<Database>) => Promise<T>, settings?: Record<string, string>) =>
  inScratchSchema(db, "bench_bm25", work, settings);

/** Documents loaded per statement: a large dataset streams through in bounded memory. */
const DOCUMENTS_PER_STATEMENT = 2_000;

/** The scratch schema, with the dataset's documents as chunks 1..D; returns D and the sentences to recombine. */
async function setUp(corpusFile: string): Promise<{ documents: number; sentences: number }> {
  await sql`DROP SCHEMA IF EXISTS bench_bm25 CASCADE`.execute(db);
  await sql`CREATE SCHEMA bench_bm25`.execute(db);
  await sql`
    CREATE TABLE bench_bm25.chunks (
      id bigint PRIMARY KEY, tenant_id uuid NOT NULL, collection_id uuid NOT NULL, document_id uuid,
      metadata jsonb NOT NULL DEFAULT '{}', external_id text, text_bytes integer NOT NULL, tsv tsvector NOT NULL
    )`.execute(db);
  await sql`CREATE TABLE bench_bm25.bm25_blocks (LIKE public.bm25_blocks INCLUDING ALL)`.execute(db);
  await sql`ALTER TABLE bench_bm25.bm25_blocks SET (toast_tuple_target = 8160)`.execute(db);
  await sql`CREATE TABLE bench_bm25.bm25_deletions (LIKE public.bm25_deletions INCLUDING ALL)`.execute(db);
  await sql`CREATE TABLE bench_bm25.collection_stats (LIKE public.collection_stats INCLUDING ALL)`.execute(db);
  await sql`CREATE TABLE bench_bm25.sentences (id integer PRIMARY KEY, text_bytes integer NOT NULL, tsv tsvector NOT NULL)`.execute(
    db,
  );
  await sql`CREATE AGGREGATE bench_bm25.tsv_concat(tsvector) (SFUNC = tsvector_concat, STYPE = tsvector, INITCOND = '')`.execute(
    db,
  );
  let documents = 0;
  let sentences = 0;
  let batch: { _id: string; title: string; text: string }[] = [];
  const load = async () => {
    // The dataset's documents are chunks 1..D, as the API would chunk short abstracts: one each.
    await sql`
      INSERT INTO bench_bm25.chunks (id, tenant_id, collection_id, external_id, text_bytes, tsv)
      SELECT ${documents}::bigint + i, ${tenantId}::uuid, ${collectionId}::uuid, d.id, octet_length(d.body), to_tsvector('english', d.body)
      FROM unnest(${batch.map((d) => d._id)}::text[], ${batch.map((d) => `${d.title} ${d.text}`)}::text[])
        WITH ORDINALITY AS d(id, body, i)
    `.execute(db);
    const split = batch.flatMap((d) => sentencesOf(d.text));
    await sql`
      INSERT INTO bench_bm25.sentences (id, text_bytes, tsv)
      SELECT ${sentences}::int + i - 1, octet_length(s), to_tsvector('english', s) FROM unnest(${split}::text[]) WITH ORDINALITY AS t(s, i)
    `.execute(db);
    documents += batch.length;
    sentences += split.length;
    batch = [];
  };
  for await (const d of jsonLines<{ _id: string; title: string; text: string }>(corpusFile)) {
    batch.push(d);
    if (batch.length >= DOCUMENTS_PER_STATEMENT) await load();
  }
  if (batch.length > 0) await load();
  return { documents, sentences };
}

/** Synthetic chunks up to `scale`: 4–8 sentences each, picked by hashing the chunk number. */
async function grow(from: number, scale: number, sentences: number): Promise<void> {
  for (let start = from; start <= scale; start += 50_000) {
    const end = Math.min(scale, start + 49_999);
    await sql`
      INSERT INTO bench_bm25.chunks (id, tenant_id, collection_id, text_bytes, tsv)
      SELECT g, ${tenantId}::uuid, ${collectionId}::uuid, sum(s.text_bytes + 1)::int, bench_bm25.tsv_concat(s.tsv ORDER BY j)
      FROM generate_series(${start}::bigint, ${end}::bigint) AS g
      CROSS JOIN LATERAL generate_series(1, 4 + (hashint8(g)::bigint & 2147483647) % 5) AS j
      JOIN bench_bm25.sentences s ON s.id = (hashint8(g * 16 + j)::bigint & 2147483647) % ${sentences}
      GROUP BY g
    `.execute(db);
  }
}

/** The previous layout (one row per posting, exhaustive SQL), built from the same chunks. */
async function buildBaseline(): Promise<void> {
  await sql`DROP TABLE IF EXISTS bench_bm25.chunk_terms`.execute(db);
  await sql`
    CREATE TABLE bench_bm25.chunk_terms AS
    SELECT c.collection_id, u.lexeme AS term, c.id AS chunk_id, c.tenant_id, coalesce(cardinality(u.positions), 1) AS tf,
           (SELECT sum(coalesce(cardinality(positions), 1)) FROM unnest(c.tsv))::int AS dl
    FROM bench_bm25.chunks c CROSS JOIN LATERAL unnest(c.tsv) AS u
  `.execute(db);
  await sql`ALTER TABLE bench_bm25.chunk_terms ADD PRIMARY KEY (collection_id, term, chunk_id) INCLUDE (tf, dl, tenant_id)`.execute(
    db,
  );
  await sql`VACUUM ANALYZE bench_bm25.chunk_terms`.execute(db);
}

/** The previous release's exhaustive BM25 SQL over chunk_terms, kept here as the reference it was. */
async function baselineSearch(tx: Kysely<Database>, query: string): Promise<void> {
  await sql`
    WITH query_terms AS (
      SELECT lexeme AS term, coalesce(cardinality(positions), 1) AS qtf FROM unnest(to_tsvector('english', ${query}))
    ),
    corpus AS (
      SELECT greatest(sum(chunk_count), 1)::float8 AS n, ${params.k1}::float8 * (1 - ${params.b}::float8) AS norm_fixed,
             ${params.k1}::float8 * ${params.b}::float8 / (greatest(sum(total_length), 1)::float8 / greatest(sum(chunk_count), 1)::float8) AS norm_per_length
      FROM collection_stats WHERE collection_id = ${collectionId}::uuid
    ),
    postings AS MATERIALIZED (
      SELECT p.chunk_id, p.term, p.tf, p.dl, q.qtf FROM query_terms q JOIN chunk_terms p ON p.term = q.term
      WHERE p.collection_id = ${collectionId}::uuid AND p.tenant_id = ${tenantId}::uuid
    ),
    term_weights AS (
      SELECT term, ln(1 + (corpus.n - count(*) + 0.5) / (count(*) + 0.5)) * (${params.k1}::float8 + 1) AS weight
      FROM postings CROSS JOIN corpus GROUP BY term, corpus.n
    )
    SELECT p.chunk_id, sum(p.qtf * w.weight * p.tf / (p.tf + corpus.norm_fixed + corpus.norm_per_length * p.dl)) AS score
    FROM postings p JOIN term_weights w USING (term) CROSS JOIN corpus
    GROUP BY p.chunk_id ORDER BY score DESC, p.chunk_id LIMIT ${K}
  `.execute(tx);
}

const relationBytes = async (name: string) =>
  Number(
    (
      await sql<{ bytes: string }>`SELECT pg_total_relation_size(${`bench_bm25.${name}`}::regclass) AS bytes`.execute(
        db,
      )
    ).rows[0]?.bytes ?? 0,
  );

const { queries: judged, qrels } = await readBeirQueries(args.dataset, "test").catch(() =>
  readBeirQueries(args.dataset, "train"),
);
const allQueries: { text: string }[] = [];
for await (const q of jsonLines<{ text: string }>(`${args.dataset}/queries.jsonl`)) allQueries.push(q);
const claims = allQueries.slice(0, QUERIES).map((q) => q.text);
const random = seeded(17);
const short = claims.slice(0, Math.ceil(QUERIES / 2)).map((claim) => {
  const words = claim.split(/\W+/).filter((w) => w.length > 3);
  const n = 1 + Math.floor(random() * 3);
  return Array.from({ length: n }, () => words[Math.floor(random() * words.length)] ?? "cell").join(" ");
});

try {
  const { documents, sentences } = await setUp(`${args.dataset}/corpus.jsonl`);
  console.log(
    `bench:bm25-scale — ${documents} documents of ${args.dataset}, ${sentences} sentences to recombine; ` +
      `${claims.length} claims and ${short.length} short queries per scale; top ${K}`,
  );
  let loaded = documents;
  for (const scale of SCALES) {
    const started = performance.now();
    if (scale > loaded) await grow(loaded + 1, scale, sentences);
    loaded = Math.max(loaded, scale);
    await sql`DELETE FROM bench_bm25.chunks WHERE id > ${scale}`.execute(db);
    // Dead rows gone before the GIN build: it reads recently dead rows, whose TOAST autovacuum may
    // already have removed ("missing chunk number 0", seen after a scale below the last one).
    await replicasReleaseDeletedRows(db);
    await sql`VACUUM bench_bm25.chunks`.execute(db);
    const { rows: totals } = await sql<{ n: string; length: string; text: string }>`
      SELECT count(*) AS n, sum((SELECT sum(coalesce(cardinality(positions), 1)) FROM unnest(tsv))) AS length,
             sum(text_bytes) AS text FROM bench_bm25.chunks
    `.execute(db);
    await sql`DELETE FROM bench_bm25.collection_stats`.execute(db);
    await sql`
      INSERT INTO bench_bm25.collection_stats (collection_id, tenant_id, chunk_count, total_length)
      VALUES (${collectionId}::uuid, ${tenantId}::uuid, ${totals[0]?.n ?? 0}, ${totals[0]?.length ?? 0})
    `.execute(db);
    const generated = performance.now();
    await inScratch((tx) => rebuildPostings(tx, { collectionId, tenantId, ...params }), { work_mem: "512MB" });
    const postingsBuilt = performance.now();
    // The reference for build time: PostgreSQL's own inverted index over the same tsvectors.
    await inScratch((tx) => sql`CREATE INDEX chunks_tsv_gin ON bench_bm25.chunks USING gin (tsv)`.execute(tx), {
      maintenance_work_mem: "512MB",
    });
    const ginSeconds = (performance.now() - postingsBuilt) / 1000;
    await sql`DROP INDEX bench_bm25.chunks_tsv_gin`.execute(db);
    // FULL: the previous scale's blocks, replaced by the rebuild, would otherwise count in the size.
    await replicasReleaseDeletedRows(db);
    await sql`VACUUM (FULL, ANALYZE) bench_bm25.bm25_blocks`.execute(db);
    await sql`VACUUM ANALYZE bench_bm25.chunks`.execute(db);
    const built = performance.now();
    const textBytes = Number(totals[0]?.text ?? 1);
    const blockBytes = await relationBytes("bm25_blocks");

    const run = async (query: string, tuning: Partial<Bm25Tuning> = {}) => {
      const start = performance.now();
      const outcome: Bm25Outcome = await inScratch((tx) => bm25Search(tx, scope, query, K, params, false, tuning));
      return { ms: performance.now() - start, outcome };
    };
    const runAll = async (queries: string[], tuning: Partial<Bm25Tuning> = {}) => {
      const runs = [];
      for (const q of queries) runs.push(await run(q, tuning));
      return runs;
    };
    for (const q of claims.slice(0, 10)) await run(q); // warm the caches
    // The platform's choice, then each path alone on the same queries, for a like-for-like comparison.
    const [claimRuns, shortRuns] = [await runAll(claims), await runAll(short)];
    const everything = [...claimRuns, ...shortRuns];
    const share = (path: Bm25Outcome["path"]) =>
      everything.filter((r) => r.outcome.path === path).length / everything.length;
    const early = share("early") + share("cut");
    const everyBlock = { everyBlockUpTo: Number.POSITIVE_INFINITY, everyBlockCorpusUpTo: Number.POSITIVE_INFINITY };
    const [claimsAll, shortAll] = [await runAll(claims, everyBlock), await runAll(short, everyBlock)];
    const rounds = { everyBlockUpTo: 0 };
    const [claimsRounds, shortRounds] = [await runAll(claims, rounds), await runAll(short, rounds)];
    const roundsEarly = [...claimsRounds, ...shortRounds].filter((r) => r.outcome.path !== "exhaustive").length;
    let agree = 0;
    const sample = [
      ...claims.slice(0, Math.ceil(AGREEMENT_SAMPLE / 2)),
      ...short.slice(0, Math.floor(AGREEMENT_SAMPLE / 2)),
    ];
    const scoresOf = (o: Bm25Outcome) => o.hits.map((h) => h.score.toFixed(9)).join(",");
    for (const q of sample) {
      const [fast, full] = [await run(q, rounds), await run(q, everyBlock)];
      if (scoresOf(fast.outcome) === scoresOf(full.outcome)) agree++;
    }

    const ndcgs: number[] = [];
    const external = new Map<string, string>();
    for (const query of judged) {
      const { outcome } = await run(query.text);
      const ids = outcome.hits.map((h) => h.chunkId).filter((id) => !external.has(id));
      if (ids.length > 0) {
        const { rows } = await sql<{ id: string; external_id: string | null }>`
          SELECT id::text, external_id FROM bench_bm25.chunks WHERE id = any(${ids}::bigint[])
        `.execute(db);
        for (const r of rows) external.set(r.id, r.external_id ?? "");
      }
      const ranked = outcome.hits.map((h) => external.get(h.chunkId) ?? "").filter(Boolean);
      ndcgs.push(ndcgAt(ranked, qrels.get(query._id) ?? new Map(), 10));
    }

    const ms = (runs: { ms: number }[], p: number) =>
      formatMs(
        percentile(
          runs.map((r) => r.ms),
          p,
        ),
      );
    console.log(
      `\n${scale.toLocaleString("en")} chunks: generated in ${((generated - started) / 1000).toFixed(0)} s, postings built (bulk) in ${((postingsBuilt - generated) / 1000).toFixed(0)} s ` +
        `(a GIN index on the same tsvectors: ${ginSeconds.toFixed(0)} s, ${((postingsBuilt - generated) / 1000 / ginSeconds).toFixed(2)}×; with the compacting VACUUM FULL ${((built - generated) / 1000 - ginSeconds).toFixed(0)} s); ` +
        `postings ${(blockBytes / 2 ** 20).toFixed(0)} MB = ${(blockBytes / textBytes).toFixed(2)}× the text (${(textBytes / 2 ** 20).toFixed(0)} MB)`,
    );
    console.log(
      `  as the platform chooses (every block up to ${BM25_TUNING.everyBlockUpTo.toLocaleString("en")} postings in up to ${BM25_TUNING.everyBlockCorpusUpTo.toLocaleString("en")} chunks, else early termination): ` +
        `all p50 ${ms(everything, 50)} p95 ${ms(everything, 95)} p99 ${ms(everything, 99)}; ` +
        `claims p50 ${ms(claimRuns, 50)} p95 ${ms(claimRuns, 95)} p99 ${ms(claimRuns, 99)}; short p50 ${ms(shortRuns, 50)} p95 ${ms(shortRuns, 95)}; ` +
        `certified early ${(100 * early).toFixed(0)}% (first round ${(100 * share("early")).toFixed(0)}%, cut rounds ${(100 * share("cut")).toFixed(0)}%)`,
    );
    console.log(
      `  every block: claims p50 ${ms(claimsAll, 50)} p95 ${ms(claimsAll, 95)}; short p50 ${ms(shortAll, 50)} p95 ${ms(shortAll, 95)}`,
    );
    console.log(
      `  early termination for every query: claims p50 ${ms(claimsRounds, 50)} p95 ${ms(claimsRounds, 95)}; short p50 ${ms(shortRounds, 50)} p95 ${ms(shortRounds, 95)}; ` +
        `certified early ${((100 * roundsEarly) / everything.length).toFixed(0)}%; top-${K} identical to every block on ${agree}/${sample.length} sampled; ` +
        `nDCG@10 of ${judged.length} judged queries ${mean(ndcgs).toFixed(3)}`,
    );
    if (scale <= BASELINE_MAX) {
      const baselineStart = performance.now();
      await buildBaseline();
      const baselineBuilt = (performance.now() - baselineStart) / 1000;
      const baselineBytes = await relationBytes("chunk_terms");
      const baselineMs: number[] = [];
      for (const q of claims) {
        const start = performance.now();
        await inScratch((tx) => baselineSearch(tx, q));
        baselineMs.push(performance.now() - start);
      }
      console.log(
        `  previous layout (row per posting, exhaustive): claims p50 ${formatMs(percentile(baselineMs, 50))} p95 ${formatMs(percentile(baselineMs, 95))}; ` +
          `postings ${(baselineBytes / 2 ** 20).toFixed(0)} MB = ${(baselineBytes / textBytes).toFixed(2)}× the text (built in ${baselineBuilt.toFixed(0)} s); ` +
          `claims p50 ratio ${(
            percentile(baselineMs, 50) /
            percentile(
              claimRuns.map((r) => r.ms),
              50,
            )
          ).toFixed(1)}×`,
      );
      await sql`DROP TABLE bench_bm25.chunk_terms`.execute(db);
    }
  }
} finally {
  // BENCH_KEEP_SCHEMA=1 keeps the last scale's corpus and postings, to study queries on them by hand.
  if (process.env.BENCH_KEEP_SCHEMA !== "1") await sql`DROP SCHEMA IF EXISTS bench_bm25 CASCADE`.execute(db);
  await db.destroy();
}
