import pg from "pg";
import pgvector from "pgvector";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import { readScifactCorpus } from "../../../src/evaluation/datasets.ts";
import { hashEmbedding } from "../../../src/dev/hash-embedding.ts";
import { waitFor } from "../../../harness/wait-for.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { adminClient, adminQuery, clusterUrls } from "../../helpers/cluster.ts";
import { injectDevFaults } from "../../helpers/dev-faults.ts";
import { collectionStats, createCollection, waitForDocuments } from "../../helpers/ingest.ts";
import { chunkIdsInBlocks } from "../../helpers/postings.ts";

interface ImportJson {
  id: string;
  status: string;
  placement: string | null;
  progress: Record<string, number>;
  error: string | null;
  failures: { line: number; external_id: string; error: string }[];
  consistency_token: string | null;
}

// A partition of its own from 50 chunks, so that a few dozen abstracts make one.
const settings = {
  PGRAG_IMPORT_PARTITION_MIN_CHUNKS: "50",
  PGRAG_WORKER_POLL_SECONDS: "0.5",
  PGRAG_MAX_DOCUMENT_BYTES: "100000",
};
let app: App;
beforeAll(async () => {
  app = await startTestApp(settings, { workers: true });
});
const replica = new pg.Pool({ connectionString: (clusterUrls().PGRAG_REPLICA_URLS ?? "").split(",")[0], max: 1 });
afterAll(() => replica.end());

const jsonl = (rows: readonly object[]) => `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`;

function upload(key: string, collection: string, body: string, contentType = "application/x-ndjson") {
  return api<{ import: ImportJson; consistency_token: string }>(app, "POST", `/v1/collections/${collection}/imports`, {
    key,
    body,
    contentType,
  });
}

function waitForImport(key: string, collection: string, id: string, statuses = ["completed", "failed"]) {
  return waitFor(
    `import ${id} ${statuses.join("/")}`,
    async () => {
      const { body } = await api<{ import: ImportJson }>(app, "GET", `/v1/collections/${collection}/imports/${id}`, {
        key,
      });
      return statuses.includes(body.import.status) ? body.import : undefined;
    },
    60_000,
  );
}

async function partitionOf(tenantId: string, collection: string) {
  const [row] = await adminQuery<{ partition: string | null; in_shared: number; in_own: number; hnsw: string | null }>(
    "primary",
    `SELECT p.inhrelid::regclass::text AS partition,
            (SELECT count(*)::int FROM chunk_partitions.shared s WHERE s.collection_id = c.id) AS in_shared,
            (SELECT count(*)::int FROM chunks k WHERE k.collection_id = c.id AND k.tableoid <> 'chunk_partitions.shared'::regclass) AS in_own,
            (SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                    JOIN pg_am am ON am.oid = ic.relam
             WHERE i.indrelid = p.inhrelid AND am.amname = 'hnsw') AS hnsw
     FROM collections c
     LEFT JOIN pg_inherits p ON p.inhparent = 'public.chunks'::regclass
                            AND p.inhrelid::regclass::text = 'chunk_partitions.collection_' || replace(c.id::text, '-', '')
     WHERE c.tenant_id = $1 AND c.name = $2`,
    [tenantId, collection],
  );
  return row;
}

/** Every live chunk's postings are in the collection's blocks, once (so df is exact). */
async function postingsMatchChunks(tenantId: string, collection: string) {
  const inCollection = "JOIN collections c ON c.id = b.collection_id WHERE c.tenant_id = $1 AND c.name = $2";
  const inBlocks = await chunkIdsInBlocks(inCollection, [tenantId, collection]);
  const [row] = await adminQuery<{ live: string[]; in_chunks: string }>(
    "primary",
    `SELECT ARRAY(SELECT k.id::text FROM chunks k WHERE k.collection_id = c.id) AS live,
            (SELECT count(*) FROM chunks k CROSS JOIN LATERAL unnest(k.tsv) WHERE k.collection_id = c.id) AS in_chunks
     FROM collections c WHERE c.tenant_id = $1 AND c.name = $2`,
    [tenantId, collection],
  );
  const live = new Set(row?.live.map(Number));
  return { in_blocks: String(inBlocks.filter((id) => live.has(id)).length), in_chunks: row?.in_chunks };
}

describe("bulk imports", () => {
  it("load a JSONL upload into a partition of their own, indexes built once, replacing and keeping what was there", async () => {
    const { key, tenantId } = await newTenantKey(app);
    await createCollection(app, key, "bulk");
    const abstracts = await readScifactCorpus(70);
    // Ten documents the ordinary way first: nine stay as they are, one the import replaces.
    const before = abstracts.slice(0, 10);
    await api(app, "POST", "/v1/collections/bulk/documents", {
      key,
      json: { documents: before.map((a) => ({ external_id: a._id, title: a.title, content: a.text })) },
    });
    await waitForDocuments(
      app,
      key,
      "bulk",
      before.map((a) => a._id),
    );
    const replaced = before[0];
    if (!replaced) throw new Error("no abstracts");
    const lines = [
      // BEIR's own field names, as in a corpus.jsonl.
      ...abstracts.slice(10).map((a) => ({ _id: a._id, title: a.title, text: a.text })),
      { external_id: replaced._id, title: "Replaced", content: "Zebrafish regenerate their hearts after injury." },
      // Identical to what is stored: left alone.
      { external_id: before[1]?._id, title: before[1]?.title, content: before[1]?.text },
    ];
    const started = await upload(key, "bulk", jsonl(lines));
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.body.import).toMatchObject({ status: "queued", progress: { documents_seen: lines.length } });

    const done = await waitForImport(key, "bulk", started.body.import.id);
    expect(done).toMatchObject({
      status: "completed",
      placement: "own_partition",
      error: null,
      progress: { documents_seen: 62, documents_staged: 61, documents_unchanged: 1, documents_failed: 0 },
    });
    expect(done.consistency_token).toMatch(/^[1-9][0-9]*:[0-9A-F]+\/[0-9A-F]+$/);

    // Every chunk of the collection now lives in its partition, which has its own HNSW graph.
    const placed = await partitionOf(tenantId, "bulk");
    expect(placed?.partition).toMatch(/^chunk_partitions\.collection_/);
    expect(placed?.hnsw).toBeTruthy();
    expect(placed?.in_shared).toBe(0);
    expect(placed?.in_own).toBeGreaterThan(50);
    const stats = await collectionStats("bulk", tenantId);
    expect(stats?.chunk_count).toBe(stats?.actual_chunks);
    expect(stats?.total_length).toBe(stats?.actual_length);
    const postings = await postingsMatchChunks(tenantId, "bulk");
    expect(postings?.in_blocks).toBe(postings?.in_chunks);

    // With the import's token, a replica serves the new text (both legs) and the documents are ready.
    for (const mode of ["bm25", "vector"]) {
      const found = await api<{ results: { external_id: string; title: string }[] }>(app, "POST", "/v1/search", {
        key,
        token: done.consistency_token,
        json: { collection: "bulk", query: "Zebrafish regenerate their hearts after injury.", mode, k: 3 },
      });
      expect(found.status).toBe(200);
      expect(found.body.results[0], mode).toMatchObject({ external_id: replaced._id, title: "Replaced" });
    }
    const { documents } = await waitForDocuments(
      app,
      key,
      "bulk",
      abstracts.map((a) => a._id),
    );
    expect(documents.size).toBe(70);
    expect(documents.get(replaced._id)?.version).toBe(2);
    expect(documents.get(before[1]?._id ?? "")?.version).toBe(1);

    // The collection's searches use its partition's graph, under row-level security on a replica.
    const client = await replica.connect();
    try {
      await client.query("BEGIN");
      await client.query("SELECT set_config('pgrag.tenant_id', $1, true)", [tenantId]);
      // The collection's id as a parameter, as the API sends it: the plan prunes to its partition.
      const { rows: ids } = await client.query<{ id: string }>("SELECT id FROM collections WHERE name = 'bulk'");
      const { rows } = await client.query(
        "EXPLAIN (COSTS OFF) SELECT id FROM chunks WHERE collection_id = $2 ORDER BY embedding <=> $1::vector LIMIT 10",
        [pgvector.toSql(hashEmbedding("zebrafish heart", 384)), ids[0]?.id],
      );
      await client.query("COMMIT");
      const plan = rows.map((r) => r["QUERY PLAN"]).join("\n");
      expect(plan).toMatch(/Index Scan using \S+ on collection_\w+ chunks/);
      expect(plan).not.toMatch(/Seq Scan/);
    } finally {
      client.release();
    }

    // A later import appends to the partition; ordinary writes and deletes keep working on it.
    const more = await upload(key, "bulk", jsonl([{ external_id: "extra", content: "Axolotls regrow their limbs." }]));
    expect(await waitForImport(key, "bulk", more.body.import.id)).toMatchObject({
      status: "completed",
      placement: "append",
    });
    expect((await api(app, "DELETE", `/v1/collections/bulk/documents/${replaced._id}`, { key })).status).toBe(200);
    const after = await collectionStats("bulk", tenantId);
    expect(after?.chunk_count).toBe(after?.actual_chunks);
    expect((await partitionOf(tenantId, "bulk"))?.in_shared).toBe(0);
  });

  it("attach a partition without making others wait behind its lock or scanning the shared partition under it", async () => {
    const { key, tenantId } = await newTenantKey(app);
    await createCollection(app, key, "beside");
    // Another session reads the shared partition and keeps its transaction open, so nothing can lock
    // the shared partition exclusively until it ends.
    const reader = await adminClient("primary");
    const newcomer = await adminClient("primary", "pgrag", { lock_timeout: "20s" });
    try {
      await reader.query("BEGIN");
      await reader.query("SELECT count(*) FROM chunk_partitions.shared");
      const started = await upload(
        key,
        "beside",
        jsonl((await readScifactCorpus(60)).map((a) => ({ _id: a._id, title: a.title, text: a.text }))),
      );
      expect(started.status).toBe(202);
      const id = started.body.import.id;
      // The import comes to its lock-taking steps and keeps asking, 100 ms at a time.
      await waitFor(
        "the import to wait for the shared partition's lock",
        async () =>
          (
            await adminQuery<{ n: number }>(
              "primary",
              `SELECT count(*)::int AS n FROM pg_locks
               WHERE relation = 'chunk_partitions.shared'::regclass AND mode = 'AccessExclusiveLock' AND NOT granted`,
            )
          )[0]?.n === 1 || undefined,
        60_000,
      );
      // Meanwhile other sessions read and write the shared partition: none is queued behind the import
      // for good (with a lock request that never gave up, each would wait for the reader to end).
      for (let i = 0; i < 5; i++) {
        await newcomer.query("BEGIN");
        await newcomer.query("SELECT count(*) FROM chunk_partitions.shared");
        await newcomer.query("UPDATE chunk_partitions.shared SET ordinal = ordinal WHERE false");
        await newcomer.query("COMMIT");
      }
      const waiting = await waitForImport(key, "beside", id, ["indexing", "completed", "failed"]);
      expect(waiting.status).toBe("indexing");
      await reader.query("COMMIT");
      const done = await waitForImport(key, "beside", id);
      expect(done).toMatchObject({ status: "completed", placement: "own_partition" });
      // The attach found the shared partition proven free of the collection's rows by a validated
      // constraint (checked beforehand under a lock that let reads and writes go on), not by a scan.
      const [constraint] = await adminQuery<{ convalidated: boolean }>(
        "primary",
        `SELECT c.convalidated FROM pg_constraint c JOIN collections k ON c.conname = 'not_collection_' || replace(k.id::text, '-', '')
         WHERE c.conrelid = 'chunk_partitions.shared'::regclass AND k.tenant_id = $1 AND k.name = 'beside'`,
        [tenantId],
      );
      expect(constraint?.convalidated).toBe(true);
      expect((await partitionOf(tenantId, "beside"))?.in_own).toBeGreaterThan(50);
    } finally {
      await reader.query("ROLLBACK").catch(() => undefined);
      await reader.end();
      await newcomer.end();
    }
  });

  it("append a small import to the shared partition, listing the documents refused alone with their reasons", async () => {
    const { key, tenantId } = await newTenantKey(app);
    await createCollection(app, key, "small");
    const abstracts = await readScifactCorpus(3);
    const started = await upload(
      key,
      "small",
      jsonl([
        ...abstracts.map((a) => ({ external_id: a._id, title: a.title, content: a.text })),
        { external_id: "huge", content: "word ".repeat(30_000) },
      ]),
    );
    const done = await waitForImport(key, "small", started.body.import.id);
    expect(done).toMatchObject({
      status: "completed",
      placement: "append",
      progress: { documents_staged: 3, documents_failed: 1 },
      failures: [
        { line: 4, external_id: "huge", error: expect.stringMatching(/larger than the limit of 100000 bytes/) },
      ],
    });
    const placed = await partitionOf(tenantId, "small");
    expect(placed?.partition).toBeNull();
    expect(placed?.in_shared).toBeGreaterThan(0);
    const stats = await collectionStats("small", tenantId);
    expect(stats?.chunk_count).toBe(stats?.actual_chunks);
  });

  it("refuse bad uploads with the line and the reason, and leave the collection as it was", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "careful");
    const good = { external_id: "a", content: "fine" };
    const cases: [string, string, RegExp][] = [
      [jsonl([good, good]).replace("\n", "\n\n"), "application/x-ndjson", /line 3: external_id "a" repeats line 1/],
      [
        `${JSON.stringify(good)}\n{"external_id": "b", "content": \n`,
        "application/x-ndjson",
        /line 2 is not valid JSON/,
      ],
      [jsonl([good, { external_id: "c" }]), "application/x-ndjson", /line 2: invalid request: content/],
      [
        jsonl([{ ...good, content_type: "image/png" }]),
        "application/x-ndjson",
        /line 1: invalid request: content_type/,
      ],
      [jsonl([good]), "application/json", /Content-Type: application\/x-ndjson/],
    ];
    for (const [body, type, message] of cases) {
      const refused = await upload(key, "careful", body, type);
      expect(refused.status, body).toBe(400);
      expect((refused.body as unknown as { error: { message: string } }).error.message).toMatch(message);
    }
    const listed = await api<{ imports: ImportJson[] }>(app, "GET", "/v1/collections/careful/imports", { key });
    expect(listed.body.imports.map((i) => i.status)).toEqual(["failed", "failed", "failed", "failed"]);
    const docs = await api<{ documents: unknown[] }>(app, "GET", "/v1/collections/careful/documents", { key });
    expect(docs.body.documents).toEqual([]);
    expect((await upload(key, "nowhere", jsonl([good]))).status).toBe(404);
  });

  it("fail as a whole when the backend's embeddings cannot be used, keeping the reason and the collection as it was", async () => {
    const { key, tenantId } = await newTenantKey(app);
    await createCollection(app, key, "kept");
    await api(app, "PUT", "/v1/collections/kept/documents/old", { key, json: { content: "An older note." } });
    await waitForDocuments(app, key, "kept", ["old"]);
    const before = await collectionStats("kept", tenantId);
    injectDevFaults(app.devInference(), { wrongDimension: true });
    const started = await upload(key, "kept", jsonl([{ external_id: "new", content: "A new note." }]));
    const failed = await waitForImport(key, "kept", started.body.import.id);
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatch(/dimension/);
    expect(await collectionStats("kept", tenantId)).toEqual(before);
    const staging = await adminQuery<{ n: number }>(
      "primary",
      "SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'chunk_partitions' AND c.relname = $1",
      [`import_${started.body.import.id.replaceAll("-", "")}`],
    );
    expect(staging[0]?.n).toBe(0);
  });
});
