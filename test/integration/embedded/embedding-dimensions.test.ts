import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { CompiledQuery, sql } from "kysely";
import { pino } from "pino";
import { describe, expect, it, onTestFinished } from "vitest";
import { createApp } from "../../../src/app.ts";
import { ConfigError, loadConfig } from "../../../src/config.ts";
import { readScifactCorpus } from "../../../src/evaluation/datasets.ts";
import { vectorSearchIndexed } from "../../../src/retrieval/search.repository.ts";
import { vectorIndexOf } from "../../../src/retrieval/search.service.ts";
import { offlineKysely } from "../../../harness/offline-kysely.ts";
import { api } from "../../helpers/api.ts";
import { waitForDocuments } from "../../helpers/ingest.ts";

/**
 * Any embedding size, end to end on a real PostgreSQL (the embedded PGlite, so each dimension gets a
 * fresh database of its own): migrate, ingest through the worker, search with the vector leg through
 * the index type the dimension calls for, and with the filtered (iterative scan) path.
 */
const CASES = [
  // The binary index is re-ranked, so a sparser graph (m = 8) is enough and keeps it small.
  {
    dimension: 3072,
    index: "halfvec",
    indexName: "chunks_embedding_halfvec_idx",
    options: ["m=16", "ef_construction=64"],
  },
  { dimension: 4096, index: "binary", indexName: "chunks_embedding_bit_idx", options: ["m=8", "ef_construction=64"] },
] as const;

describe("embedding dimensions beyond pgvector's 2,000 for vector indexes", () => {
  for (const [i, c] of CASES.entries()) {
    it(`migrates, ingests and searches at ${c.dimension} dimensions through a ${c.index} index`, async () => {
      const dataDir = join(mkdtempSync(join(tmpdir(), `pgrag-dim-${c.dimension}-`)), "data");
      const config = loadConfig({
        PGRAG_EMBEDDED_DATA_DIR: dataDir,
        PGRAG_EMBEDDED_PORT: String(55990 + i),
        PGRAG_PORT: "0",
        PGRAG_LOG_LEVEL: "silent",
        PGRAG_EMBEDDING_DIM: String(c.dimension),
        // Every vector query walks the index, filtered ones included.
        PGRAG_EXACT_SCAN_THRESHOLD: "0",
      });
      expect(config.embedding.indexType).toBe(c.index);
      const app = createApp(config, { logger: pino({ level: "silent" }) });
      onTestFinished(() => app.stop());
      await app.start({ listen: false });
      const key = app.devApiKey() ?? "";
      expect((await api(app, "POST", "/v1/collections", { key, json: { name: "sci" } })).status).toBe(201);
      const abstracts = await readScifactCorpus(12);
      await api(app, "POST", "/v1/collections/sci/documents", {
        key,
        json: {
          documents: abstracts.map((a, n) => ({
            external_id: a._id,
            title: a.title,
            content: a.text,
            metadata: { half: n % 2 },
          })),
        },
      });
      await waitForDocuments(
        app,
        key,
        "sci",
        abstracts.map((a) => a._id),
      );
      const { value: recorded } = await app.router.read({ primary: true }, (db) =>
        sql<{ index_type: string; dimension: number; indexes: string[]; options: string[] }>`
          SELECT s.index_type, s.dimension,
                 ARRAY(SELECT indexname::text FROM pg_indexes WHERE tablename = 'chunks' AND indexdef LIKE '%hnsw%') AS indexes,
                 (SELECT c.reloptions FROM pg_class c WHERE c.oid = to_regclass('public.' || ${c.indexName})) AS options
          FROM embedding_settings s
        `.execute(db),
      );
      expect(recorded.rows[0]).toEqual({
        index_type: c.index,
        dimension: c.dimension,
        indexes: [c.indexName],
        options: c.options,
      });
      // The search's ORDER BY is the index's expression: with sequential scans and sorts made
      // prohibitive (a dozen rows would not use any index), its plan walks the HNSW index.
      const compiled: CompiledQuery[] = [];
      const scope = {
        tenantId: randomUUID(),
        collectionIds: [randomUUID()],
        language: "english",
        documentIds: null,
        principals: null,
        filter: undefined,
      };
      await vectorSearchIndexed(
        offlineKysely((event) => void compiled.push(event.query)),
        scope,
        Array.from({ length: c.dimension }, (_, d) => (d % 7) - 3),
        10,
        vectorIndexOf(app.config),
      );
      const [query] = compiled;
      const { value: plan } = await app.router.read(
        { primary: true, settings: { enable_seqscan: "off", enable_sort: "off" } },
        (db) =>
          db.executeQuery<{ "QUERY PLAN": string }>(
            CompiledQuery.raw(`EXPLAIN ${query?.sql}`, [...(query?.parameters ?? [])]),
          ),
      );
      expect(plan.rows.map((r) => r["QUERY PLAN"]).join("\n")).toContain(`Index Scan using ${c.indexName}`);
      for (const [n, target] of [abstracts[3], abstracts[4]].entries()) {
        const found = await api<{ results: { external_id: string }[]; vector_path: string }>(
          app,
          "POST",
          "/v1/search",
          {
            key,
            json: {
              collection: "sci",
              query: target?.title,
              mode: "vector",
              k: 3,
              ...(n === 1 ? { filter: { metadata: { half: 0 } } } : {}),
            },
          },
        );
        expect(found.status).toBe(200);
        expect(found.body.vector_path).toBe("index");
        expect(found.body.results[0]?.external_id).toBe(target?._id);
      }
    });
  }

  it("refuses an index type that cannot hold the dimension, saying what can", () => {
    expect(() => loadConfig({ PGRAG_EMBEDDING_DIM: "3072", PGRAG_VECTOR_INDEX: "vector" })).toThrow(ConfigError);
    expect(() => loadConfig({ PGRAG_EMBEDDING_DIM: "3072", PGRAG_VECTOR_INDEX: "vector" })).toThrow(
      /a vector HNSW index takes at most 2,000 dimensions, PGRAG_EMBEDDING_DIM is 3072: use halfvec or binary/,
    );
    expect(() => loadConfig({ PGRAG_EMBEDDING_DIM: "4096", PGRAG_VECTOR_INDEX: "halfvec" })).toThrow(/use binary/);
    expect(loadConfig({ PGRAG_EMBEDDING_DIM: "384", PGRAG_VECTOR_INDEX: "binary" }).embedding.indexType).toBe("binary");
    expect(loadConfig({ PGRAG_EMBEDDING_DIM: "384" }).embedding.indexType).toBe("vector");
  });
});
