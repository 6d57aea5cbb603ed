import { randomUUID } from "node:crypto";
import pg from "pg";
import { Kysely, PostgresDialect, sql } from "kysely";
import pgvector from "pgvector";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../../harness/wait-for.ts";
import { adminQuery, clusterUrls } from "../../helpers/cluster.ts";
import { readScifactCorpus } from "../../../src/evaluation/datasets.ts";
import type { Database } from "../../../src/db/database.ts";
import { rebuildPostings } from "../../../src/postings/postings.repository.ts";
import { testConfig } from "../../helpers/app.ts";

const DIM = 384;
const CHUNKS = 2_000;
const urls = clusterUrls();
const owner = new pg.Pool({ connectionString: urls.PGRAG_MIGRATION_URL, max: 1 });
const replica = new pg.Pool({ connectionString: (urls.PGRAG_REPLICA_URLS ?? "").split(",")[0], max: 1 });
afterAll(async () => Promise.all([owner.end(), replica.end()]));

function randomUnitVector(): number[] {
  const v = Array.from({ length: DIM }, () => Math.random() - 0.5);
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

let tenantId = "";
let collectionId = "";

/**
 * EXPLAIN as the application role on a replica, with the tenant (and a requester's principals, if
 * given) set: row-level security applies.
 */
async function explainAsTenant(sql: string, values: unknown[], principals?: string): Promise<string> {
  const client = await replica.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT set_config('pgrag.tenant_id', $1, true)", [tenantId]);
    if (principals) await client.query("SELECT set_config('pgrag.principals', $1, true)", [principals]);
    const { rows } = await client.query(`EXPLAIN (COSTS OFF) ${sql}`, values);
    await client.query("COMMIT");
    return rows.map((r) => r["QUERY PLAN"]).join("\n");
  } finally {
    client.release();
  }
}

async function fillCollection(client: pg.PoolClient, abstracts: { title: string; text: string }[]): Promise<void> {
  const collection = await client.query<{ id: string }>(
    "INSERT INTO collections (tenant_id, name) VALUES ($1, 'scifact') RETURNING id",
    [tenantId],
  );
  collectionId = collection.rows[0]?.id ?? "";
  const document = await client.query<{ id: string }>(
    `INSERT INTO documents (tenant_id, collection_id, external_id, content_type, content, content_hash, status)
     VALUES ($1, $2, 'all', 'text/plain', '', '\\x00', 'ready') RETURNING id`,
    [tenantId, collectionId],
  );
  await client.query(
    `INSERT INTO chunks (tenant_id, collection_id, document_id, document_version, ordinal, content,
                         char_start, char_end, token_count, language, embedding)
     SELECT $1, $2, $3, 1, ord, content, 0, length(content), 1, 'english', embedding::vector
     FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS t(content, embedding, ord)`,
    [
      tenantId,
      collectionId,
      document.rows[0]?.id,
      abstracts.map((a) => `${a.title} ${a.text}`),
      abstracts.map(() => pgvector.toSql(randomUnitVector())),
    ],
  );
}

beforeAll(async () => {
  const abstracts = await readScifactCorpus(CHUNKS);
  const tenant = await owner.query<{ id: string }>("INSERT INTO tenants (name) VALUES ($1) RETURNING id", [
    `explain-${randomUUID()}`,
  ]);
  tenantId = tenant.rows[0]?.id ?? "";
  // Row-level security binds the owner too: it writes the tenant's rows naming the tenant.
  const client = await owner.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT set_config('pgrag.tenant_id', $1, true)", [tenantId]);
    await fillCollection(client, abstracts);
    await client.query("COMMIT");
  } finally {
    client.release();
  }
  // The bulk path builds the collection's BM25 blocks from its chunks.
  await new Kysely<Database>({ dialect: new PostgresDialect({ pool: owner }) }).transaction().execute(async (tx) => {
    await sql`SELECT set_config('pgrag.tenant_id', ${tenantId}, true)`.execute(tx);
    await rebuildPostings(tx, { collectionId, tenantId, ...testConfig().retrieval.bm25 });
  });
  await owner.query("ANALYZE chunks, bm25_blocks");
  // Statistics reach the replicas through WAL like everything else: wait until both have replayed
  // past the ANALYZE (other test files may have filled the table already, so counting rows is not enough).
  const { rows: position } = await owner.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn");
  for (const node of ["replica1", "replica2"]) {
    await waitFor(`statistics on ${node}`, async () => {
      const rows = await adminQuery<{ ok: boolean }>(node, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok", [
        position[0]?.lsn,
      ]);
      return rows[0]?.ok;
    });
  }
});

describe("index use on a replica", () => {
  it("answers a full-text match from the GIN index on the tsvector (as a superuser, outside row-level security)", async () => {
    // Under row-level security the planner may not evaluate @@ (not LEAKPROOF) before the policy, so
    // the GIN index serves queries outside it; the API's full-text leg reads BM25 postings. Sequential
    // scans are made prohibitive: which partitions other test files left small decides, otherwise,
    // whether a scan of the shared one is cheaper than its index.
    const rows = await adminQuery(
      "replica1",
      "EXPLAIN (COSTS OFF) SELECT id FROM chunks WHERE tsv @@ websearch_to_tsquery('english', $1)",
      ["mitochondrial apoptosis"],
      "pgrag",
      { enable_seqscan: "off" },
    );
    expect(rows.map((r) => r["QUERY PLAN"]).join("\n")).toMatch(/Bitmap Index Scan on chunks_tsv_idx/);
  });

  it("answers a nearest-neighbour query from the HNSW index under row-level security, for any reader", async () => {
    const query = "SELECT id FROM chunks ORDER BY embedding <=> $1::vector LIMIT 10";
    // The whole tenant, and a requester whose principals name documents open to everyone: the access
    // policy is estimated from the readers column's statistics, and keeps the graph walk.
    for (const principals of [undefined, "{*,user:ana,group:hr}"]) {
      const plan = await explainAsTenant(query, [pgvector.toSql(randomUnitVector())], principals);
      // The shared partition's graph (an imported collection's partition has its own: see imports.test.ts).
      expect(plan).toMatch(/Index Scan using chunks_embedding_hnsw_idx on shared chunks/);
      expect(plan).not.toMatch(/Seq Scan/);
      // The policy inlined as one indexable operator, never a function called per row.
      expect(plan).toMatch(/readers && COALESCE/);
    }
  });

  it("finds a selective reader's chunks through the GIN index on readers", async () => {
    const plan = await explainAsTenant(
      "SELECT count(*) FROM chunks WHERE collection_id = $1::uuid",
      [collectionId],
      "{group:nobody-here}",
    );
    expect(plan).toMatch(/Bitmap Index Scan on (shared_)?chunks_readers_idx|Index Cond: \(readers &&/);
  });

  it("reads BM25 block headers with an index-only scan, and blocks by their key, under row-level security", async () => {
    const terms = ["mitochondri", "apoptosi"];
    // As bm25Statistics reads them: a term's headers aggregated into lists.
    const headers = await explainAsTenant(
      `SELECT q.term, b.* FROM unnest($3::text[]) AS q(term) CROSS JOIN LATERAL (
         SELECT string_agg(block_id::text, ','), string_agg(postings::text, ','), string_agg(max_tf::text, ','),
                string_agg(min_dl::text, ',') FROM bm25_blocks
         WHERE term = q.term AND collection_id = any($1::uuid[]) AND tenant_id = $2::uuid
       ) AS b`,
      [[collectionId], tenantId, terms],
    );
    expect(headers).toMatch(/Index Only Scan using bm25_blocks_pkey on bm25_blocks/);
    // As a round reads them: each block by its key, (term, block id) pairs.
    const blocks = await explainAsTenant(
      `SELECT r.i, b.first_chunk, b.last_chunk, b.data
       FROM unnest($3::text[], $4::bigint[]) WITH ORDINALITY AS r(term, block_id, i)
       CROSS JOIN LATERAL (
         SELECT first_chunk, last_chunk, data FROM bm25_blocks
         WHERE collection_id = any($1::uuid[]) AND tenant_id = $2::uuid AND term = r.term AND block_id = r.block_id
         OFFSET 0
       ) AS b`,
      [[collectionId], tenantId, [terms[0], terms[0], terms[1]], ["1", "2", "3"]],
    );
    expect(blocks).toMatch(/Index Scan using bm25_blocks_pkey on bm25_blocks/);
    // A lookup per block, whatever the statistics say: never a hash of the collection's blocks.
    expect(blocks).toMatch(/Index Cond: .*\(term = r\.term\) AND \(block_id = r\.block_id\)/);
    expect(blocks).not.toMatch(/Hash Join/);
    // Index-only in fact, not just in plan: new blocks must become all-visible soon, so autovacuum
    // runs after 1% new rows instead of PostgreSQL's 20%.
    const { rows } = await owner.query<{ options: string[] }>(
      "SELECT reloptions AS options FROM pg_class WHERE oid = 'bm25_blocks'::regclass",
    );
    expect(rows[0]?.options).toEqual(
      expect.arrayContaining([
        "autovacuum_vacuum_insert_scale_factor=0.01",
        "autovacuum_vacuum_insert_threshold=10000",
      ]),
    );
  });
});
