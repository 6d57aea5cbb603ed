import { beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import { parseToken } from "../../../src/db/consistency-token.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { injectDevFaults } from "../../helpers/dev-faults.ts";
import { startTestApp } from "../../helpers/app.ts";
import { adminQuery } from "../../helpers/cluster.ts";
import { collectionStats, createCollection, waitForDocuments } from "../../helpers/ingest.ts";
import { chunkIdsInBlocks } from "../../helpers/postings.ts";
import { readScifactCorpus } from "../../../src/evaluation/datasets.ts";
import { deleteChunksOf, insertChunksWithPostings, storeEmbeddings } from "../../../src/ingest/chunks.repository.ts";
import { contentHash } from "../../../src/text/content.ts";
import { compareExternalIds } from "../../../src/ingest/documents.repository.ts";
import { waitFor } from "../../../harness/wait-for.ts";

const BATCH_BYTES = 8_000;
let app: App;
beforeAll(async () => {
  app = await startTestApp(
    // A read with a token waits up to 5 s for a replica (not the default 250 ms): on a loaded CI
    // machine replay can lag that long, and these tests check that a replica serves the token.
    // Compaction 2 s after the batch that asks for it (30 s by default), so the test sees it run.
    {
      PGRAG_WORKER_POLL_SECONDS: "0.5",
      PGRAG_MAX_DOCUMENT_BYTES: "200000",
      PGRAG_CONSISTENCY_WAIT_MS: "5000",
      PGRAG_COMPACTION_DELAY_SECONDS: "2",
      // A few SciFact abstracts per slice: every batch here is cut to its byte budget.
      PGRAG_WORKER_BATCH_BYTES: String(BATCH_BYTES),
    },
    { workers: true },
  );
});
const dev = () => {
  const server = app.devInference();
  if (!server) throw new Error("the test app runs the in-process dev inference server");
  return server;
};

/** Write transactions the workers ran so far (the write stage's count). */
async function writeTransactions(): Promise<number> {
  const stages = await app.registry.getSingleMetric("pgrag_ingest_stage_seconds")?.get();
  const values = (stages?.values ?? []) as { metricName?: string; labels: { stage?: string }; value: number }[];
  return values.find((v) => v.metricName?.endsWith("_count") && v.labels.stage === "write")?.value ?? 0;
}

async function chunkRows(documentId: string) {
  return adminQuery<{ ordinal: number; content: string; has_embedding: boolean; version: number }>(
    "primary",
    "SELECT ordinal, content, embedding IS NOT NULL AS has_embedding, document_version AS version FROM chunks WHERE document_id = $1 ORDER BY ordinal",
    [documentId],
  );
}

describe("ingestion", () => {
  it("turns a batch of SciFact abstracts into chunks with embeddings, visible on a replica with the token", async () => {
    const { key, tenantId } = await newTenantKey(app);
    await createCollection(app, key, "scifact");
    const abstracts = await readScifactCorpus(25);
    const writesBefore = await writeTransactions();
    const put = await api<{
      documents: { external_id: string; changed: boolean }[];
      consistency_token: string;
    }>(app, "POST", "/v1/collections/scifact/documents", {
      key,
      json: {
        documents: abstracts.map((a) => ({
          external_id: a._id,
          title: a.title,
          content: a.text,
          metadata: { corpus: "scifact" },
        })),
      },
    });
    expect(put.status).toBe(202);
    expect(put.headers.get("X-Consistency-Token")).toBe(put.body.consistency_token);
    expect(put.body.documents.every((d) => d.changed)).toBe(true);

    const { documents, token } = await waitForDocuments(
      app,
      key,
      "scifact",
      abstracts.map((a) => a._id),
    );
    for (const doc of documents.values()) {
      expect(doc.chunk_count).toBeGreaterThan(0);
      const rows = await chunkRows(doc.id);
      expect(rows).toHaveLength(doc.chunk_count);
      expect(rows.every((r) => r.has_embedding)).toBe(true);
    }
    // However the jobs were fetched (the batch size is 64), no slice loaded more than the byte
    // budget unless it was one document: at least ⌈total ÷ budget⌉ write transactions.
    const totalBytes = abstracts.reduce((sum, a) => sum + Buffer.byteLength(a.text), 0);
    expect((await writeTransactions()) - writesBefore).toBeGreaterThanOrEqual(Math.ceil(totalBytes / BATCH_BYTES));
    // The token of the read that saw "ready" brings a replica to at least that state.
    const first = documents.get(abstracts[0]?._id ?? "");
    expect(parseToken(token)).not.toBeNull();
    const onReplica = await app.router.read({ token: parseToken(token), tenantId }, (db) =>
      db
        .selectFrom("chunks")
        .select((eb) => eb.fn.countAll<string>().as("n"))
        .where("document_id", "=", first?.id ?? "")
        .where("embedding", "is not", null)
        .executeTakeFirstOrThrow(),
    );
    expect(Number(onReplica.value.n)).toBe(first?.chunk_count);
    expect(onReplica.node).toMatch(/^replica/);
    const s = await collectionStats("scifact", tenantId);
    expect(Number(s?.chunk_count)).toBe(Number(s?.actual_chunks));
    expect(Number(s?.total_length)).toBe(Number(s?.actual_length));
  });

  it("replaces a changed document's chunks atomically, leaves an unchanged one alone, and deletes", async () => {
    const { key, tenantId } = await newTenantKey(app);
    await createCollection(app, key, "notes");
    const put = (content: string) =>
      api<{ document: { changed: boolean; version: number } }>(app, "PUT", "/v1/collections/notes/documents/n1", {
        key,
        json: { content, content_type: "text/markdown", title: "Note" },
      });
    expect((await put("# Note\n\nPgBouncer pools connections in transaction mode.")).status).toBe(202);
    const { documents } = await waitForDocuments(app, key, "notes", ["n1"]);
    const id = documents.get("n1")?.id ?? "";
    expect((await chunkRows(id)).map((r) => r.content).join(" ")).toContain("PgBouncer");

    const embeddedBefore = dev().stats.embeddedInputs;
    const unchanged = await put("# Note\n\nPgBouncer pools connections in transaction mode.");
    expect(unchanged.status).toBe(200);
    expect(unchanged.body.document).toMatchObject({ changed: false, version: 1 });

    const changed = await put("# Note\n\nStreaming replicas replay the primary's WAL.");
    expect(changed.body.document).toMatchObject({ changed: true, version: 2 });
    // Ready at version 2: version 1 is ready too until the worker has the change, so read again until then.
    await waitFor("n1 ready at version 2", async () => {
      const current = (await waitForDocuments(app, key, "notes", ["n1"], ["ready"])).documents;
      return current.get("n1")?.version === 2 || undefined;
    });
    const rows = await chunkRows(id);
    expect(rows.every((r) => r.version === 2)).toBe(true);
    const text = rows.map((r) => r.content).join(" ");
    expect(text).toContain("WAL");
    expect(text).not.toContain("PgBouncer");
    expect(dev().stats.embeddedInputs - embeddedBefore).toBe(1); // only the changed text
    let s = await collectionStats("notes", tenantId);
    expect(Number(s?.chunk_count)).toBe(Number(s?.actual_chunks));
    expect(Number(s?.total_length)).toBe(Number(s?.actual_length));

    const deleted = await api(app, "DELETE", "/v1/collections/notes/documents/n1", { key });
    expect(deleted.status).toBe(200);
    expect(await chunkRows(id)).toEqual([]);
    s = await collectionStats("notes", tenantId);
    expect([Number(s?.chunk_count), Number(s?.total_length)]).toEqual([0, 0]);
    expect(
      (
        await api(app, "GET", "/v1/collections/notes/documents/n1", {
          key,
          token: deleted.headers.get("X-Consistency-Token"),
        })
      ).status,
    ).toBe(404);
  });

  it("upserts a batch in one go: new, changed and unchanged documents each get their own answer, in order", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "mixed");
    type Written = { documents: { external_id: string; version: number | null; changed: boolean; id: string }[] };
    const post = (documents: { external_id: string; content: string }[]) =>
      api<Written>(app, "POST", "/v1/collections/mixed/documents", { key, json: { documents } });
    const first = await post([
      { external_id: "b", content: "Bravo text about replicas." },
      { external_id: "a", content: "Alpha text about PgBouncer." },
    ]);
    expect(first.status).toBe(202);
    const ids = new Map(first.body.documents.map((d) => [d.external_id, d.id]));
    await waitForDocuments(app, key, "mixed", ["a", "b"], ["ready"]);
    const second = await post([
      { external_id: "b", content: "Bravo text about replicas." },
      { external_id: "c", content: "Charlie text about HNSW." },
      { external_id: "a", content: "Alpha text, rewritten." },
    ]);
    expect(second.body.documents).toEqual([
      { external_id: "b", id: ids.get("b"), version: 1, changed: false, status: "unchanged" },
      { external_id: "c", id: expect.any(String), version: 1, changed: true, status: "pending" },
      { external_id: "a", id: ids.get("a"), version: 2, changed: true, status: "pending" },
    ]);
    const { documents } = await waitForDocuments(app, key, "mixed", ["a", "b", "c"], ["ready"]);
    expect([...documents.values()].map((d) => [d.external_id, d.version]).sort()).toEqual([
      ["a", 2],
      ["b", 1],
      ["c", 1],
    ]);
  });

  it("caches vectors exactly as float4s (they travel in pgvector's binary form)", async () => {
    const values = [0.1, -2.5, 3e-8, 123456.789, -0, 1 / 3, ...Array.from({ length: 378 }, (_, i) => Math.sin(i))];
    const hash = contentHash(`binary vector ${crypto.randomUUID()}`);
    await app.router.write({}, (tx) => storeEmbeddings(tx, [{ hash, embedding: values }]));
    const [row] = await adminQuery<{ embedding: string }>(
      "primary",
      "SELECT embedding::text FROM embedding_cache WHERE content_hash = $1",
      [hash],
    );
    // The text form prints each float4 in its shortest form, which rounds back to the same float4.
    const stored = (JSON.parse(row?.embedding ?? "[]") as number[]).map((v) => Math.fround(v));
    expect(stored).toEqual(values.map((v) => Math.fround(v)));
  });

  it("orders external ids as PostgreSQL's C collation does: uploads and workers lock documents in one order", async () => {
    // Case, digits, accents, a character past U+FFFF (a surrogate pair in JavaScript) and U+FFFD,
    // which JavaScript's < puts after it and UTF-8 bytes before it.
    const ids = ["doc-10", "doc-9", "Doc-1", "doc-é", "doc-e", "doc-😀", "doc-\uFFFD", "doc-Z", "doc-_", ""];
    const rows = await adminQuery<{ id: string }>(
      "primary",
      `SELECT id FROM unnest($1::text[]) AS id ORDER BY id COLLATE "C"`,
      [ids],
    );
    expect([...ids].sort(compareExternalIds)).toEqual(rows.map((r) => r.id));
  });

  it("takes two uploads of the same documents in opposite orders at once without a deadlock", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "crossed");
    const ids = Array.from({ length: 1000 }, (_, i) => `doc-${String(i).padStart(4, "0")}`);
    const upload = (order: string[], run: string) =>
      api(app, "POST", "/v1/collections/crossed/documents", {
        key,
        json: { documents: order.map((id) => ({ external_id: id, content: `${id} written by upload ${run}` })) },
      });
    // Both uploads change every stored document, locking each row until they commit: in request
    // order they would meet in the middle, each waiting for the other (a deadlock, a 500 for one of
    // them: measured so); in external-id order the second waits for the first, then updates.
    expect((await upload(ids, "zero")).status).toBe(202);
    const [forward, backward] = await Promise.all([upload(ids, "one"), upload([...ids].reverse(), "two")]);
    expect([forward.status, backward.status]).toEqual([202, 202]);
  });

  it("refuses to write chunks whose embedding is not in the cache, rather than write them without vectors", async () => {
    const { key, tenantId } = await newTenantKey(app);
    await createCollection(app, key, "uncached");
    const put = await api<{ document: { id: string } }>(app, "PUT", "/v1/collections/uncached/documents/u1", {
      key,
      json: { content: "A text whose chunks get written by hand below." },
    });
    await waitForDocuments(app, key, "uncached", ["u1"]);
    const [collection] = await adminQuery<{ id: string }>(
      "primary",
      "SELECT id FROM collections WHERE tenant_id = $1 AND name = 'uncached'",
      [tenantId],
    );
    const chunk = (content: string) => ({ content, headingPath: [], charStart: 0, charEnd: 1, tokenCount: 3 });
    const owner = {
      tenantId,
      collectionId: collection?.id ?? "",
      documentId: put.body.document.id,
      version: 2,
      language: "english",
      metadata: {},
      access: ["*"],
    };
    const cachedText = "A text whose chunks get written by hand below.";
    // As the worker replaces a document: its old chunks go first, in the same transaction.
    const write = app.router.write({ tenantId }, async (tx) => {
      await deleteChunksOf(tx, [put.body.document.id]);
      return insertChunksWithPostings(tx, [
        {
          owner,
          chunks: [
            { ...chunk(cachedText), contentHash: contentHash(cachedText) },
            { ...chunk("never embedded"), contentHash: contentHash(`never embedded ${crypto.randomUUID()}`) },
          ],
        },
      ]);
    });
    await expect(write).rejects.toThrow(/1 of 2 chunks have no embedding in embedding_cache/);
    const versions = await adminQuery<{ document_version: number }>(
      "primary",
      "SELECT DISTINCT document_version FROM chunks WHERE document_id = $1",
      [put.body.document.id],
    );
    expect(versions).toEqual([{ document_version: 1 }]);
  });

  it("compacts the postings blocks that batches append, in the background (pg-boss job)", async () => {
    const { key, tenantId } = await newTenantKey(app);
    await createCollection(app, key, "compacted");
    const abstracts = await readScifactCorpus(40);
    // Two requests, two worker batches: common terms get a block from each, which compaction merges.
    for (const half of [abstracts.slice(0, 20), abstracts.slice(20)]) {
      await api(app, "POST", "/v1/collections/compacted/documents", {
        key,
        json: { documents: half.map((a) => ({ external_id: a._id, title: a.title, content: a.text })) },
      });
      await waitForDocuments(
        app,
        key,
        "compacted",
        half.map((a) => a._id),
      );
    }
    const blocks = () =>
      adminQuery<{ fresh_pairs: number; compacted: number }>(
        "primary",
        `SELECT (SELECT count(*)::int FROM (SELECT term FROM bm25_blocks b WHERE b.collection_id = c.id AND NOT compacted
                                          GROUP BY term HAVING count(*) >= 2) t) AS fresh_pairs,
                (SELECT count(*)::int FROM bm25_blocks b WHERE b.collection_id = c.id AND compacted) AS compacted
         FROM collections c WHERE c.tenant_id = $1 AND c.name = 'compacted'`,
        [tenantId],
      );
    await waitFor("the appended blocks compacted", async () => {
      const [state] = await blocks();
      return state?.fresh_pairs === 0 && (state?.compacted ?? 0) > 0;
    });
    // Deferred: each compaction job the batches asked for was to start 2 s after it was asked for,
    // and none ran sooner.
    const jobs = await adminQuery<{ delay: number; early: boolean }>(
      "primary",
      `SELECT extract(epoch FROM j.start_after - j.created_on)::float8 AS delay,
              coalesce(j.started_on < j.start_after, false) AS early
       FROM (SELECT name, data, start_after, created_on, started_on FROM pgboss.job
             UNION ALL SELECT name, data, start_after, created_on, started_on FROM pgboss.archive) j
       JOIN collections c ON c.id = (j.data ->> 'collectionId')::uuid
       WHERE j.name = 'compact-postings' AND c.tenant_id = $1 AND c.name = 'compacted'`,
      [tenantId],
    );
    expect(jobs.length).toBeGreaterThan(0);
    for (const job of jobs) expect(job).toEqual({ delay: expect.closeTo(2, 1), early: false });

    // Deletes through the API leave their postings in the blocks; the delete itself asks for the
    // compaction that drops them (no ingestion batch follows a delete to ask for it).
    const deletions = () =>
      adminQuery<{ dead_terms: number; heavy_terms: number }>(
        "primary",
        `SELECT count(*)::int AS dead_terms, count(*) FILTER (WHERE dead >= 16)::int AS heavy_terms
         FROM (SELECT term, sum(postings) AS dead FROM bm25_deletions d JOIN collections c ON c.id = d.collection_id
               WHERE c.tenant_id = $1 AND c.name = 'compacted' GROUP BY term) t`,
        [tenantId],
      );
    // The deleted documents' chunks, whose postings are in the blocks now.
    const gone = (
      await adminQuery<{ id: string }>(
        "primary",
        `SELECT k.id::text FROM chunks k JOIN documents d ON d.id = k.document_id
         WHERE d.tenant_id = $1 AND d.external_id = any($2::text[])`,
        [tenantId, abstracts.slice(0, 30).map((a) => a._id)],
      )
    ).map((r) => r.id);
    // The terms that will have 16 dead postings or more: worth rewriting, so compaction drops them.
    const heavy = (
      await adminQuery<{ term: string }>(
        "primary",
        `SELECT u.lexeme AS term FROM chunks k CROSS JOIN LATERAL unnest(k.tsv) AS u
         WHERE k.id = any($1::bigint[]) GROUP BY u.lexeme HAVING count(*) >= 16`,
        [gone],
      )
    ).map((r) => r.term);
    expect(heavy.length).toBeGreaterThan(0);
    const postingsOfGone = async () => {
      const ids = await chunkIdsInBlocks(
        `JOIN collections c ON c.id = b.collection_id
         WHERE c.tenant_id = $1 AND c.name = 'compacted' AND b.term = any($2::text[])`,
        [tenantId, heavy],
      );
      const goneIds = new Set(gone.map(Number));
      return ids.filter((id) => goneIds.has(id)).length;
    };
    expect(await postingsOfGone()).toBeGreaterThan(0);
    for (const abstract of abstracts.slice(0, 30)) {
      expect((await api(app, "DELETE", `/v1/collections/compacted/documents/${abstract._id}`, { key })).status).toBe(
        200,
      );
    }
    // Compaction may run during the deletes or after them; either way it ends with the heavy terms'
    // dead postings out of their blocks and no term left with enough of them to be worth a rewrite.
    await waitFor("the deleted chunks' postings dropped", async () => {
      const [state] = await deletions();
      return state?.heavy_terms === 0 && (await postingsOfGone()) === 0;
    });
  });

  it("turns an HTML upload into Markdown whose headings become the chunks' heading paths", async () => {
    const { key } = await newTenantKey(app);
    // min_tokens 0: every heading starts a chunk, however short the section.
    await createCollection(app, key, "web", { chunking: { max_tokens: 384, overlap_tokens: 0, min_tokens: 0 } });
    const html =
      "<html><body><h1>Guide</h1><p>Intro text about replicas.</p><h2>Install</h2><p>Run the install script as root.</p></body></html>";
    const put = await api(app, "PUT", "/v1/collections/web/documents/page?title=Guide", {
      key,
      body: html,
      contentType: "text/html; charset=utf-8",
    });
    expect(put.status).toBe(202);
    const { documents } = await waitForDocuments(app, key, "web", ["page"]);
    const rows = await adminQuery<{ content: string; heading_path: string[] }>(
      "primary",
      "SELECT content, heading_path FROM chunks WHERE document_id = $1 ORDER BY ordinal",
      [documents.get("page")?.id],
    );
    expect(rows.map((r) => r.content).join("\n")).toContain("# Guide");
    expect(rows.map((r) => r.content).join("\n")).not.toContain("<p>");
    expect(rows.at(-1)?.heading_path).toEqual(["Guide", "Install"]);
  });

  it("never embeds identical chunk text twice", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "dups");
    // Several chunks of text no earlier test can have embedded.
    const run = crypto.randomUUID();
    const text = Array.from({ length: 120 }, (_, i) => `Sentence ${i} of run ${run} mentions term${i}.`).join(" ");
    const before = dev().stats.embeddedInputs;
    await api(app, "POST", "/v1/collections/dups/documents", {
      key,
      json: {
        documents: [
          { external_id: "a", content: text },
          { external_id: "b", content: text },
        ],
      },
    });
    const { documents } = await waitForDocuments(app, key, "dups", ["a", "b"]);
    expect(documents.get("a")?.chunk_count).toBeGreaterThan(1);
    expect(dev().stats.embeddedInputs - before).toBe(documents.get("a")?.chunk_count);
  });

  it("recovers from a backend answering 500 before 200", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "flaky");
    injectDevFaults(dev(), { failStatus: 500, failNext: 2 });
    await api(app, "PUT", "/v1/collections/flaky/documents/f1", {
      key,
      json: { content: `flaky backend ${crypto.randomUUID()}` },
    });
    const { documents } = await waitForDocuments(app, key, "flaky", ["f1"]);
    expect(documents.get("f1")?.status).toBe("ready");
    expect(dev().faults.failNext).toBe(0);
  });

  it("fails a document whose embeddings have the wrong dimension, with the reason, writing no chunks", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "wrongdim");
    injectDevFaults(dev(), { wrongDimension: true });
    await api(app, "PUT", "/v1/collections/wrongdim/documents/w1", {
      key,
      json: { content: `dimension check ${crypto.randomUUID()}` },
    });
    const { documents } = await waitForDocuments(app, key, "wrongdim", ["w1"], ["failed", "ready"]);
    const doc = documents.get("w1");
    expect(doc?.status).toBe("failed");
    expect(doc?.error).toMatch(/dimension 383.*dimension 384/);
    expect(await chunkRows(doc?.id ?? "")).toEqual([]);
  });
});

describe("bad input", () => {
  it("answers each with a 4xx that says what is wrong, and writes nothing", async () => {
    const { key, tenantId } = await newTenantKey(app);
    await createCollection(app, key, "strict");
    const cases: [string, Parameters<typeof api>[3], number, RegExp][] = [
      ["/v1/collections/strict/documents/e", { json: { content: "   \n " } }, 400, /empty/],
      ["/v1/collections/missing/documents/e", { json: { content: "text" } }, 404, /no collection "missing"/],
      [
        "/v1/collections/strict/documents/e",
        { body: "%PDF-1.4", contentType: "application/pdf" },
        422,
        /not a readable PDF/,
      ],
      [
        "/v1/collections/strict/documents/e",
        { body: new Uint8Array([0x68, 0xff, 0xfe, 0x69]), contentType: "text/plain" },
        400,
        /not valid UTF-8/,
      ],
      [
        "/v1/collections/strict/documents/e",
        { json: { content: "x".repeat(200_001) } },
        413,
        /larger than the limit of 200000 bytes/,
      ],
      ["/v1/collections/strict/documents/e", { json: { content: 42 } }, 400, /content/],
      [
        "/v1/collections/strict/documents/e",
        { body: "{not json", contentType: "application/json" },
        400,
        /not valid JSON/,
      ],
    ];
    for (const [path, options, status, message] of cases) {
      const response = await api<{ error: { code: string; message: string } }>(app, "PUT", path, {
        key,
        ...options,
      });
      expect(response.status, `${path} ${JSON.stringify(options).slice(0, 80)}`).toBe(status);
      expect(response.body.error.message).toMatch(message);
    }
    const batches: [{ external_id: string; content: string }[], RegExp][] = [
      [
        [
          { external_id: "good", content: "fine text" },
          { external_id: "bad", content: "" },
        ],
        /documents\[1\] \(bad\): the document is empty/,
      ],
      [
        [
          { external_id: "x", content: "first" },
          { external_id: "y", content: "other" },
          { external_id: "x", content: "second" },
        ],
        /documents\[2\] repeats the external_id "x" of documents\[0\]/,
      ],
    ];
    for (const [documents, message] of batches) {
      const batch = await api<{ error: { message: string } }>(app, "POST", "/v1/collections/strict/documents", {
        key,
        json: { documents },
      });
      expect(batch.status).toBe(400);
      expect(batch.body.error.message).toMatch(message);
    }
    const stored = await adminQuery("primary", "SELECT count(*)::int AS n FROM documents WHERE tenant_id = $1", [
      tenantId,
    ]);
    expect(stored[0]?.n).toBe(0);
    expect((await api(app, "PUT", "/v1/collections/strict/documents/e", { json: { content: "no key" } })).status).toBe(
      401,
    );
  });
});
