/**
 * `npm run bench:vectors [-- --sizes 100000 --dimension 384 --queries 100 | --data sift]`: the three HNSW index types
 * (vector, halfvec, binary quantization re-ranked exactly) on the same vectors: build time, index size,
 * p50/p95 latency of top-10 queries and recall@10 against exact search, unfiltered and with a 1%
 * metadata filter (iterative index scans). The vectors are the dev embeddings (hashed words) of a
 * SciFact-derived corpus — chunks of 4–8 sentences recombined from the abstracts, seeded — and the
 * queries are SciFact's claims; or (`--data sift`) the repository's sift5k, centred (SIFT's values are
 * all positive, which would make every binary code alike) — real image descriptors, 128 dimensions;
 * with `--project D`, sift5k mapped to D dimensions by a seeded Gaussian random projection: a
 * stand-in for a large embedding model, whose binary codes have D bits (distances are kept up to a
 * factor, so the exact neighbours are nearly those of the 128-d vectors).
 * `--types vector,binary` measures only those index types (sizes are relative to vector's when it is among them).
 * `--binary-m M` builds the binary index with another HNSW degree, to weigh its size against recall.
 * Each type's search runs through the API's own vectorSearchIndexed in a scratch schema
 * (bench_vectors), dropped at the end.
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import pgvector from "pgvector";
import { loadConfig, type VectorIndexType } from "../src/config.ts";
import type { Database } from "../src/db/database.ts";
import { hashEmbedding } from "../src/dev/hash-embedding.ts";
import { jsonLines, SCIFACT_DIR, SIFT5K_DIR } from "../src/evaluation/datasets.ts";
import {
  defaultBinaryOversampling,
  hnswSettings,
  type SearchScope,
  vectorSearchIndexed,
} from "../src/retrieval/search.repository.ts";
import { vectorIndexOf } from "../src/retrieval/search.service.ts";
import { readVectors } from "./fvecs.ts";
import { inScratchSchema, sentencesOf } from "./scratch-schema.ts";
import { seeded } from "./seeded-random.ts";
import { formatMs, percentile } from "./stats.ts";

const { values: args } = parseArgs({
  options: {
    sizes: { type: "string", default: "100000" },
    dimension: { type: "string", default: "384" },
    queries: { type: "string", default: "100" },
    data: { type: "string", default: "scifact" },
    project: { type: "string", default: "0" },
    // The binary index's HNSW m, as migration 1732435200015 builds it (the others keep pgvector's 16).
    "binary-m": { type: "string", default: "8" },
    types: { type: "string", default: "vector,halfvec,binary" },
  },
});
const SIFT = args.data === "sift";
const PROJECT = Number(args.project);
const siftBase = SIFT ? projected(centred(readVectors(`${SIFT5K_DIR}/sift5k_base.fvecs`, "f"))) : [];
const SIZES = SIFT ? [siftBase.length] : args.sizes.split(",").map(Number);
const DIMENSION = SIFT ? PROJECT || 128 : Number(args.dimension);
const QUERIES = Number(args.queries);
const K = 10;
// pgvector indexes vector up to 2,000 dimensions and halfvec up to 4,000.
const TYPES = (["vector", "halfvec", "binary"] as const satisfies VectorIndexType[]).filter(
  (type) =>
    args.types.split(",").includes(type) && DIMENSION <= { vector: 2_000, halfvec: 4_000, binary: 64_000 }[type],
);
const INDEX: Record<VectorIndexType, string> = {
  vector: "(embedding vector_cosine_ops)",
  halfvec: `((embedding::halfvec(${DIMENSION})) halfvec_cosine_ops)`,
  binary: `((binary_quantize(embedding)::bit(${DIMENSION})) bit_hamming_ops) WITH (m = ${Number(args["binary-m"])})`,
};

const config = loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn" });
const pool = new pg.Pool({ connectionString: config.database.migrationUrl, max: 1 });
const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
const tenantId = randomUUID();
const collectionId = randomUUID();
const scope = (filter?: { metadata: { cat: number } }): SearchScope => ({
  tenantId,
  collectionIds: [collectionId],
  language: "english",
  documentIds: null,
  principals: null,
  filter,
});

/** Runs `work` against the scratch schema's tables. */
const inScratch = <T>(work: (tx: Kysely<Database>) => Promise<T>, settings?: Record<string, string>) =>
  inScratchSchema(db, "bench_vectors", work, settings);

const sentences: string[] = [];
for await (const d of jsonLines<{ text: string }>(`${SCIFACT_DIR}/corpus.jsonl`)) {
  sentences.push(...sentencesOf(d.text));
}
const claims: string[] = [];
for await (const q of jsonLines<{ text: string }>(`${SCIFACT_DIR}/queries.jsonl`)) claims.push(q.text);
const queryVectors = SIFT
  ? projected(
      centred(
        readVectors(`${SIFT5K_DIR}/sift5k_query.fvecs`, "f"),
        siftMean(readVectors(`${SIFT5K_DIR}/sift5k_base.fvecs`, "f")),
      ).slice(0, QUERIES),
    )
  : claims.slice(0, QUERIES).map((q) => hashEmbedding(q, DIMENSION));

/** The seeded Gaussian projection to PROJECT dimensions (the same matrix for base and queries). */
function projected(rows: number[][]): number[][] {
  if (!PROJECT) return rows;
  const random = seeded(11);
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const matrix = Array.from({ length: PROJECT }, () => Array.from({ length: rows[0]?.length ?? 0 }, gaussian));
  return rows.map((r) => matrix.map((m) => m.reduce((sum, w, d) => sum + w * (r[d] ?? 0), 0)));
}

function siftMean(rows: number[][]): number[] {
  return (rows[0] ?? []).map((_, d) => rows.reduce((s, r) => s + (r[d] ?? 0), 0) / rows.length);
}

/** Rows minus the mean (of `mean`, or their own): centred around 0, as embeddings are. */
function centred(rows: number[][], mean = siftMean(rows)): number[][] {
  return rows.map((r) => r.map((v, d) => v - (mean[d] ?? 0)));
}

try {
  await sql`DROP SCHEMA IF EXISTS bench_vectors CASCADE`.execute(db);
  await sql`CREATE SCHEMA bench_vectors`.execute(db);
  await sql`
    CREATE TABLE bench_vectors.chunks (
      id bigint PRIMARY KEY, tenant_id uuid NOT NULL, collection_id uuid NOT NULL, document_id uuid,
      metadata jsonb NOT NULL, embedding ${sql.raw(`vector(${DIMENSION})`)} NOT NULL
    )`.execute(db);
  console.log(
    `bench:vectors — ${SIFT ? `sift5k, centred${PROJECT ? ", randomly projected" : ""}` : "dev embeddings of a SciFact-derived corpus"} (${DIMENSION} dimensions); ${queryVectors.length} queries; top ${K}; ef_search ${config.retrieval.efSearch}; ` +
      `binary re-ranks ${config.retrieval.binaryOversampling ?? defaultBinaryOversampling(DIMENSION)}× its results`,
  );
  const random = seeded(7);
  let loaded = 0;
  for (const size of SIZES) {
    const loadStart = performance.now();
    for (; loaded < size;) {
      const batch = Math.min(5_000, size - loaded);
      const ids = Array.from({ length: batch }, (_, i) => loaded + i + 1);
      const vectors = ids.map((id) => {
        if (SIFT) return pgvector.toSql(siftBase[id - 1] ?? []);
        const n = 4 + Math.floor(random() * 5);
        const text = Array.from({ length: n }, () => sentences[Math.floor(random() * sentences.length)]).join(" ");
        return pgvector.toSql(hashEmbedding(text, DIMENSION));
      });
      await sql`
        INSERT INTO bench_vectors.chunks (id, tenant_id, collection_id, metadata, embedding)
        SELECT id, ${tenantId}::uuid, ${collectionId}::uuid, jsonb_build_object('cat', id % 100), e::vector
        FROM unnest(${ids}::bigint[], ${vectors}::text[]) AS t(id, e)
      `.execute(db);
      loaded += batch;
    }
    await sql`VACUUM ANALYZE bench_vectors.chunks`.execute(db);
    const loadSeconds = (performance.now() - loadStart) / 1000;

    // Exact answers, once per size: a sequential scan sorted by the full-precision distance. Recall
    // counts a hit whose exact distance is within the 10th exact distance, so ties (frequent with
    // hashed-word embeddings) do not count as misses.
    const exact = async (filter?: { metadata: { cat: number } }) => {
      const out: number[] = [];
      for (const q of queryVectors) {
        const { rows } = await inScratch(
          (tx) =>
            sql<{ distance: number }>`
              SELECT embedding <=> ${pgvector.toSql(q)}::vector AS distance FROM chunks
              WHERE ${filter ? sql`(metadata ->> 'cat')::int = ${filter.metadata.cat}` : sql`true`}
              ORDER BY 1 LIMIT ${K}`.execute(tx),
          { enable_indexscan: "off", enable_bitmapscan: "off" },
        );
        out.push(rows.at(-1)?.distance ?? Number.POSITIVE_INFINITY);
      }
      return out;
    };
    const filter = { metadata: { cat: 7 } };
    const truth = await exact();
    const truthFiltered = await exact(filter);
    console.log(`\n${size.toLocaleString("en")} vectors (loaded in ${loadSeconds.toFixed(0)} s)`);
    console.log(
      "index    build s   size MB   p50 / p95            recall@10   filtered 1%: p50 / p95       recall@10  rows",
    );
    let vectorIndexBytes = 0;
    for (const type of TYPES) {
      const buildStart = performance.now();
      await sql.raw(`SET maintenance_work_mem = '2GB'`).execute(db);
      await sql.raw(`CREATE INDEX bench_index ON bench_vectors.chunks USING hnsw ${INDEX[type]}`).execute(db);
      const buildSeconds = (performance.now() - buildStart) / 1000;
      const bytes = Number(
        (await sql<{ b: string }>`SELECT pg_relation_size('bench_vectors.bench_index') AS b`.execute(db)).rows[0]?.b ??
          0,
      );
      if (type === "vector") vectorIndexBytes = bytes;
      const run = async (kth: number[], f?: { metadata: { cat: number } }) => {
        const ms: number[] = [];
        let found = 0;
        let rows = 0;
        for (const [i, q] of queryVectors.entries()) {
          const start = performance.now();
          const hits = await inScratch(
            (tx) => vectorSearchIndexed(tx, scope(f), q, K, { ...vectorIndexOf(config), type, dimension: DIMENSION }),
            hnswSettings(config.retrieval.efSearch),
          );
          ms.push(performance.now() - start);
          rows += hits.length;
          found += hits.filter((h) => 1 - h.score <= (kth[i] ?? 0) + 1e-6).length;
        }
        return { ms, recall: found / (K * queryVectors.length), rows: rows / queryVectors.length };
      };
      const plain = await run(truth);
      const filtered = await run(truthFiltered, filter);
      console.log(
        `${type.padEnd(8)} ${buildSeconds.toFixed(1).padStart(7)}   ${(bytes / 2 ** 20).toFixed(1).padStart(7)}` +
          `${type === "vector" || !vectorIndexBytes ? "" : ` (${(bytes / vectorIndexBytes).toFixed(2)}×)`}`.padEnd(9) +
          `${formatMs(percentile(plain.ms, 50))} / ${formatMs(percentile(plain.ms, 95))}`.padEnd(21) +
          `${plain.recall.toFixed(3).padStart(9)}   ` +
          `${formatMs(percentile(filtered.ms, 50))} / ${formatMs(percentile(filtered.ms, 95))}`.padEnd(28) +
          `${filtered.recall.toFixed(3).padStart(9)}  ${filtered.rows.toFixed(1)}`,
      );
      await sql`DROP INDEX bench_vectors.bench_index`.execute(db);
    }
  }
} finally {
  await sql`DROP SCHEMA IF EXISTS bench_vectors CASCADE`.execute(db);
  await db.destroy();
}
