/**
 * `npm run bench:recall`: recall@10 of pgvector's HNSW index against exact search on sift5k
 * (data/sift5k, texmex fvecs/ivecs) at several hnsw.ef_search values, for L2 (against the
 * shipped ground truth) and cosine (against an exact scan computed here), plus filtered queries at
 * 1% selectivity through iterative index scans. Uses a scratch schema, dropped at the end.
 */
import pg from "pg";
import pgvector from "pgvector";
import { loadConfig } from "../src/config.ts";
import { SIFT5K_DIR } from "../src/evaluation/datasets.ts";
import { readVectors } from "./fvecs.ts";

const dir = SIFT5K_DIR;
const base = readVectors(`${dir}/sift5k_base.fvecs`, "f");
const queries = readVectors(`${dir}/sift5k_query.fvecs`, "f");
const truthL2 = readVectors(`${dir}/sift5k_groundtruth.ivecs`, "i").map((row) => row.slice(0, 10));
const config = loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn" });
const client = new pg.Client({ connectionString: config.database.migrationUrl });
await client.connect();

const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * (b[i] as number), 0);
const cosineDistance = (a: number[], b: number[]) => 1 - dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));
const l2 = (a: number[], b: number[]) => a.reduce((s, x, i) => s + (x - (b[i] as number)) ** 2, 0);
const exactTop = (q: number[], ids: number[], distance: (a: number[], b: number[]) => number) =>
  ids
    .map((id) => ({ id, d: distance(q, base[id] as number[]) }))
    .sort((a, b) => a.d - b.d || a.id - b.id)
    .slice(0, 10)
    .map((x) => x.id);
const recall = (got: number[], truth: number[]) => got.filter((id) => truth.includes(id)).length / truth.length;

const CATEGORIES = 100; // category = id % 100: each filter keeps 1% of the rows
try {
  await client.query("DROP SCHEMA IF EXISTS bench_sift CASCADE; CREATE SCHEMA bench_sift");
  await client.query(
    "CREATE TABLE bench_sift.items (id int PRIMARY KEY, category int NOT NULL, embedding vector(128) NOT NULL)",
  );
  await client.query(
    "INSERT INTO bench_sift.items SELECT i - 1, (i - 1) % $2, e::vector FROM unnest($1::text[]) WITH ORDINALITY AS t(e, i)",
    [base.map((v) => pgvector.toSql(v)), CATEGORIES],
  );
  await client.query(
    "CREATE INDEX ON bench_sift.items USING hnsw (embedding vector_l2_ops) WITH (m = 16, ef_construction = 64)",
  );
  await client.query(
    "CREATE INDEX ON bench_sift.items USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)",
  );
  await client.query("ANALYZE bench_sift.items");
  const allIds = base.map((_, i) => i);
  const truthCosine = queries.map((q) => exactTop(q, allIds, cosineDistance));

  const run = async (ef: number, operator: "<->" | "<=>", filtered: boolean) => {
    let sum = 0;
    let short = 0;
    for (const [qi, q] of queries.entries()) {
      const category = qi % CATEGORIES;
      await client.query("BEGIN");
      await client.query(
        "SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)",
        [String(ef)],
      );
      const { rows } = await client.query<{ id: number }>(
        `WITH nearest AS MATERIALIZED (
           SELECT id, embedding ${operator} $1::vector AS d FROM bench_sift.items
           ${filtered ? "WHERE category = $2" : ""} ORDER BY embedding ${operator} $1::vector LIMIT 10)
         SELECT id FROM nearest ORDER BY d, id`,
        filtered ? [pgvector.toSql(q), category] : [pgvector.toSql(q)],
      );
      await client.query("COMMIT");
      const ids = rows.map((r) => r.id);
      if (ids.length < 10) short++;
      const truth = filtered
        ? exactTop(
            q,
            allIds.filter((id) => id % CATEGORIES === category),
            operator === "<->" ? l2 : cosineDistance,
          )
        : operator === "<->"
          ? (truthL2[qi] as number[])
          : (truthCosine[qi] as number[]);
      sum += recall(ids, truth);
    }
    return { recall: sum / queries.length, short };
  };

  // Check that the planner really uses the index for these queries.
  const plan = await client.query(
    "EXPLAIN SELECT id FROM bench_sift.items ORDER BY embedding <=> $1::vector LIMIT 10",
    [pgvector.toSql(queries[0] as number[])],
  );
  console.log(
    `plan: ${plan.rows.map((r) => r["QUERY PLAN"]).find((l: string) => l.includes("Index")) ?? "NO INDEX USED"}`,
  );
  console.log(
    `bench:recall — sift5k: ${base.length} base vectors (128-d), ${queries.length} queries, HNSW m=16 ef_construction=64`,
  );
  console.log(
    "ef_search  L2 recall@10  cosine recall@10  filtered 1% L2  filtered 1% cosine  (filtered: queries with < 10 rows)",
  );
  for (const ef of [10, 20, 40, 64, 100, 200]) {
    const a = await run(ef, "<->", false);
    const b = await run(ef, "<=>", false);
    const c = await run(ef, "<->", true);
    const d = await run(ef, "<=>", true);
    const mark = ef === config.retrieval.efSearch ? " (default)" : "";
    console.log(
      `${String(ef).padStart(9)}  ${a.recall.toFixed(3).padStart(12)}  ${b.recall.toFixed(3).padStart(16)}  ${c.recall.toFixed(3).padStart(14)}  ${d.recall.toFixed(3).padStart(18)}  (${c.short}/${d.short})${mark}`,
    );
  }
} finally {
  await client.query("DROP SCHEMA IF EXISTS bench_sift CASCADE");
  await client.end();
}
