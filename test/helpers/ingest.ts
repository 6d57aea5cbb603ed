import { expect } from "vitest";
import type { App } from "../../src/app.ts";
import { api, newTenantKey } from "./api.ts";
import { adminQuery } from "./cluster.ts";
import { waitFor } from "../../harness/wait-for.ts";
import { readScifactCorpus } from "../../src/evaluation/datasets.ts";

export interface DocumentJson {
  id: string;
  external_id: string;
  version: number;
  status: string;
  error: string | null;
  chunk_count: number;
}

export async function createCollection(
  app: App,
  key: string,
  name: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const response = await api<{ consistency_token: string }>(app, "POST", "/v1/collections", {
    key,
    json: { name, ...extra },
  });
  if (response.status !== 201) throw new Error(`collection not created: ${JSON.stringify(response.body)}`);
  return response.body.consistency_token;
}

/** Polls the document list until every named document has one of the final statuses. */
export async function waitForDocuments(
  app: App,
  key: string,
  collection: string,
  externalIds: readonly string[],
  statuses: readonly string[] = ["ready"],
  timeoutMs = 60_000,
): Promise<{ documents: Map<string, DocumentJson>; token: string }> {
  return waitFor(
    `documents ${statuses.join("/")} in ${collection}`,
    async () => {
      const response = await api<{ documents: DocumentJson[]; consistency_token: string }>(
        app,
        "GET",
        `/v1/collections/${collection}/documents?limit=1000`,
        { key },
      );
      const documents = new Map(response.body.documents.map((d) => [d.external_id, d]));
      const done = externalIds.every((id) => statuses.includes(documents.get(id)?.status ?? ""));
      return done ? { documents, token: response.body.consistency_token } : undefined;
    },
    timeoutMs,
  );
}

/** A new tenant with collection `collection` holding the first `count` SciFact abstracts, all ready. */
export async function seedScifact(app: App, count: number, collection = "sci") {
  const { key, tenantId } = await newTenantKey(app);
  await createCollection(app, key, collection);
  const abstracts = await readScifactCorpus(count);
  await api(app, "POST", `/v1/collections/${collection}/documents`, {
    key,
    json: { documents: abstracts.map((a) => ({ external_id: a._id, title: a.title, content: a.text })) },
  });
  const { token } = await waitForDocuments(
    app,
    key,
    collection,
    abstracts.map((a) => a._id),
  );
  return { key, tenantId, abstracts, token };
}

/** A collection's BM25 statistics as stored, and as counted from its chunks (they must agree). */
export async function collectionStats(collection: string, tenantId: string) {
  const rows = await adminQuery<{
    chunk_count: string;
    total_length: string;
    actual_chunks: string;
    actual_length: string;
  }>(
    "primary",
    `SELECT s.chunk_count, s.total_length,
            (SELECT count(*) FROM chunks WHERE collection_id = c.id) AS actual_chunks,
            (SELECT coalesce(sum(coalesce(cardinality(u.positions), 1)), 0)
             FROM chunks ch CROSS JOIN LATERAL unnest(ch.tsv) AS u WHERE ch.collection_id = c.id) AS actual_length
     FROM collections c LEFT JOIN collection_stats s ON s.collection_id = c.id
     WHERE c.name = $1 AND c.tenant_id = $2`,
    [collection, tenantId],
  );
  return rows[0];
}

/**
 * After a crash and a restart: the tenant has exactly `documents` documents, each with its chunks
 * once (no ordinal twice, none of an older version), and the statistics count exactly those chunks.
 */
export async function expectEveryDocumentWrittenOnce(tenantId: string, documents: number): Promise<void> {
  const rows = await adminQuery<{
    id: string;
    chunk_count: number;
    chunks: number;
    distinct_ordinals: number;
    stale: number;
  }>(
    "primary",
    `SELECT d.id, d.chunk_count, count(c.id)::int AS chunks, count(DISTINCT c.ordinal)::int AS distinct_ordinals,
            count(c.id) FILTER (WHERE c.document_version <> d.version)::int AS stale
     FROM documents d LEFT JOIN chunks c ON c.document_id = d.id
     WHERE d.tenant_id = $1 GROUP BY d.id`,
    [tenantId],
  );
  expect(rows).toHaveLength(documents);
  for (const row of rows) {
    expect(row.chunks).toBe(row.chunk_count);
    expect(row.distinct_ordinals).toBe(row.chunks);
    expect(row.stale).toBe(0);
  }
  const [totals] = await adminQuery<{ stats: string; actual: string }>(
    "primary",
    `SELECT s.chunk_count AS stats, (SELECT count(*) FROM chunks WHERE tenant_id = $1) AS actual
     FROM collection_stats s WHERE s.tenant_id = $1`,
    [tenantId],
  );
  expect(Number(totals?.stats)).toBe(Number(totals?.actual));
}
