import fc from "fast-check";
import { type Kysely, sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import type { Database } from "../../../src/db/database.ts";
import { deleteChunksOf, insertChunksWithPostings, storeEmbeddings } from "../../../src/ingest/chunks.repository.ts";
import { contentHash } from "../../../src/text/content.ts";
import { compactCollection } from "../../../src/postings/postings-compactor.ts";
import { bm25Search } from "../../../src/retrieval/bm25-search.ts";
import type { SearchScope } from "../../../src/retrieval/search.repository.ts";
import { startTestApp } from "../../helpers/app.ts";
import { adminQuery, adminTenantCollection } from "../../helpers/cluster.ts";

/**
 * Early termination is exact: on random small corpora, in every state the postings can be in
 * (appended in several statements, compacted into tiny blocks, with deleted chunks before and after
 * compaction), and for random readers of documents with random access lists, BM25 with early
 * termination returns the same top k as BM25 computed here, in TypeScript, from the live documents
 * alone (the statistics are the collection's; only the documents the reader may see are ranked). A first round of a few postings and blocks of 2–4
 * postings make the small corpora go through several rounds (the heaviest blocks first, then
 * each term cut at a floor, then every block).
 */
const VOCABULARY = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"];
const PARAMS = { k1: 1.2, b: 0.75 };
let tenantId = "";
let collectionId = "";
let app: App;
let scope: SearchScope;
/** Every chunk shares one cached vector: this test is about the BM25 leg. */
const VECTOR_HASH = contentHash("bm25 early termination property test vector");

beforeAll(async () => {
  app = await startTestApp();
  ({ tenantId, collectionId } = await adminTenantCollection("bm25-et"));
  scope = {
    tenantId,
    collectionIds: [collectionId],
    language: "simple",
    documentIds: null,
    filter: undefined,
    principals: null,
  };
  await app.router.write({}, (tx) =>
    storeEmbeddings(tx, [{ hash: VECTOR_HASH, embedding: [1, ...Array.from({ length: 383 }, () => 0)] }]),
  );
});
afterAll(async () => {
  await adminQuery("primary", "DELETE FROM tenants WHERE id = $1", [tenantId]);
});

/** BM25 by hand over the live documents ('simple' lexemes are the lower-case words themselves). */
function reference(documents: string[][], query: string[]): { index: number; score: number }[] {
  const n = documents.length;
  const avgdl = documents.reduce((s, d) => s + d.length, 0) / Math.max(n, 1);
  const qtf = new Map<string, number>();
  for (const t of query) qtf.set(t, (qtf.get(t) ?? 0) + 1);
  const scored = documents.map((words, index) => {
    let score = 0;
    let matched = false;
    for (const [term, q] of qtf) {
      const tf = words.filter((w) => w === term).length;
      if (tf === 0) continue;
      matched = true;
      const df = documents.filter((d) => d.includes(term)).length;
      const idf = Math.log(1 + (n - df + 0.5) / (df + 0.5));
      score +=
        (q * idf * (tf * (PARAMS.k1 + 1))) / (tf + PARAMS.k1 * (1 - PARAMS.b + (PARAMS.b * words.length) / avgdl));
    }
    return { index, score, matched };
  });
  return scored.filter((s) => s.matched).sort((a, b) => b.score - a.score);
}

const word = fc.constantFrom(...VOCABULARY);
/** Access lists drawn from a few principals; a reader holds some of them (null: the whole tenant). */
const PRINCIPALS = ["user:ana", "user:ben", "group:hr", "group:ops"];
const access: fc.Arbitrary<string[]> = fc.oneof(
  fc.constant<string[]>(["*"]),
  fc.uniqueArray(fc.constantFrom(...PRINCIPALS), { minLength: 1, maxLength: 2 }),
);
const reader = fc.option(fc.uniqueArray(fc.constantFrom(...PRINCIPALS), { maxLength: 2 }), { nil: null });
const corpus = fc.array(fc.array(word, { minLength: 1, maxLength: 12 }), { minLength: 3, maxLength: 40 });
const scenario = fc.record({
  documents: corpus,
  statements: fc.integer({ min: 1, max: 3 }),
  compactBefore: fc.boolean(),
  deleted: fc.array(fc.nat(), { maxLength: 8 }),
  compactAfter: fc.constantFrom("no", "merge", "full"),
  blockSize: fc.integer({ min: 2, max: 4 }),
  query: fc.array(word, { minLength: 1, maxLength: 5 }),
  k: fc.integer({ min: 1, max: 6 }),
  firstRound: fc.integer({ min: 1, max: 4 }),
  access: fc.array(access, { minLength: 40, maxLength: 40 }),
  reader,
  /** Score the reader's chunks themselves (the path for selective filters) rather than the postings. */
  selective: fc.boolean(),
});

async function writeDocuments(tx: Kysely<Database>, documents: string[][]): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    INSERT INTO documents (tenant_id, collection_id, external_id, content_type, content, content_hash, status)
    SELECT ${tenantId}::uuid, ${collectionId}::uuid, 'd' || i, 'text/plain', '', '\\x00', 'ready'
    FROM generate_series(1, ${documents.length}::int) AS i
    RETURNING id
  `.execute(tx);
  return rows.map((r) => r.id);
}

describe("BM25 with early termination", () => {
  it("returns exactly the exhaustive top k, in every state of the postings, for every reader", async () => {
    const paths = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const live = s.documents.map((_, i) => i).filter((i) => !s.deleted.includes(i % s.documents.length));
        const { value: ids } = await app.router.write({ tenantId }, async (tx) => {
          await sql`DELETE FROM documents WHERE collection_id = ${collectionId}::uuid`.execute(tx);
          await sql`DELETE FROM bm25_blocks WHERE collection_id = ${collectionId}::uuid`.execute(tx);
          await sql`DELETE FROM bm25_deletions WHERE collection_id = ${collectionId}::uuid`.execute(tx);
          const ids = await writeDocuments(tx, s.documents);
          const per = Math.ceil(s.documents.length / s.statements);
          for (let from = 0; from < s.documents.length; from += per) {
            await insertChunksWithPostings(
              tx,
              s.documents.slice(from, from + per).map((words, i) => ({
                owner: {
                  tenantId,
                  collectionId,
                  documentId: ids[from + i] ?? "",
                  version: 1,
                  language: "simple",
                  metadata: {},
                  access: s.access[from + i] ?? ["*"],
                },
                chunks: [
                  {
                    content: words.join(" "),
                    headingPath: [],
                    charStart: 0,
                    charEnd: 1,
                    tokenCount: words.length,
                    contentHash: VECTOR_HASH,
                  },
                ],
              })),
            );
          }
          const liveWords = live.map((i) => s.documents[i] ?? []);
          await sql`
              INSERT INTO collection_stats (collection_id, tenant_id, chunk_count, total_length)
              VALUES (${collectionId}::uuid, ${tenantId}::uuid, ${liveWords.length}, ${liveWords.reduce((t, d) => t + d.length, 0)})
              ON CONFLICT (collection_id) DO UPDATE SET chunk_count = excluded.chunk_count, total_length = excluded.total_length
            `.execute(tx);
          return ids;
        });
        const compact = (dead: number) =>
          compactCollection(
            app.router,
            PARAMS,
            { collectionId, tenantId },
            { maxTerms: 1_000, blockSize: s.blockSize, dead: { count: dead, share: 0 } },
          );
        if (s.compactBefore) await compact(Number.MAX_SAFE_INTEGER);
        const gone = ids.filter((_, i) => !live.includes(i));
        if (gone.length > 0) await app.router.write({ tenantId }, (tx) => deleteChunksOf(tx, gone));
        if (s.compactAfter !== "no") await compact(s.compactAfter === "full" ? 1 : Number.MAX_SAFE_INTEGER);

        const principals = s.reader === null ? null : ["*", ...s.reader];
        const readerScope = { ...scope, principals };
        // As the reader: row-level security applies too, as it does to every search.
        const { value } = await app.router.read({ tenantId, primary: true, principals }, async (tx) => {
          const outcome = await bm25Search(tx, readerScope, s.query.join(" "), s.k, PARAMS, s.selective, {
            // Small corpora: rounds for every query, a cut round whenever it leaves a posting unread.
            everyBlockUpTo: 0,
            firstRoundPostings: s.firstRound,
            worthwhileSkip: 0,
          });
          const { rows } = await sql<{ id: string; external_id: string }>`
            SELECT c.id::text AS id, d.external_id FROM chunks c JOIN documents d ON d.id = c.document_id
            WHERE c.id = any(${outcome.hits.map((h) => h.chunkId)}::bigint[])
          `.execute(tx);
          return { outcome, documentOf: new Map(rows.map((r) => [r.id, Number(r.external_id.slice(1)) - 1])) };
        });
        paths.set(value.outcome.path, (paths.get(value.outcome.path) ?? 0) + 1);
        // Reference indexes are positions among the live documents; map them back to the corpus.
        const mayRead = (document: number) =>
          principals === null || (s.access[document] ?? ["*"]).some((p) => principals.includes(p));
        const ranked = reference(
          live.map((i) => s.documents[i] ?? []),
          s.query,
        )
          .map((r) => ({ document: live[r.index] ?? -1, score: r.score }))
          .filter((r) => mayRead(r.document));
        const expected = ranked.slice(0, s.k);
        // The same scores in the same order (which of equal-scored chunks is returned may differ) ...
        expect(value.outcome.hits).toHaveLength(expected.length);
        value.outcome.hits.forEach((hit, i) => expect(hit.score).toBeCloseTo(expected[i]?.score ?? Number.NaN, 9));
        // ... each the score of the document it names.
        for (const hit of value.outcome.hits) {
          const document = value.documentOf.get(hit.chunkId);
          expect(ranked.find((r) => r.document === document)?.score).toBeCloseTo(hit.score, 9);
        }
      }),
      {
        numRuns: 40,
        // One corpus where the first round certifies for sure (a rare, heavy term against a common,
        // light one), so the early path is exercised whatever the random ones do.
        examples: [
          [
            {
              documents: [...Array.from({ length: 30 }, () => ["beta", "beta", "gamma"]), ["alpha", "alpha", "alpha"]],
              statements: 1,
              compactBefore: false,
              deleted: [],
              compactAfter: "no" as const,
              blockSize: 2,
              query: ["alpha", "beta"],
              k: 1,
              firstRound: 1,
              access: Array.from({ length: 40 }, () => ["*"]),
              reader: null,
              selective: false,
            },
          ],
          // One where the first round does not certify and a cut round does (found by a random run).
          [
            {
              documents: [
                ["alpha", "gamma", "iota"],
                ["zeta", "delta", "alpha", "epsilon", "eta", "gamma"],
                ["delta", "kappa", "iota", "kappa", "kappa", "alpha", "beta", "epsilon", "iota", "zeta"],
                ["eta", "delta", "gamma", "delta", "iota", "eta", "gamma", "beta", "zeta", "iota"],
                ["eta", "epsilon", "delta", "gamma", "alpha", "epsilon", "iota", "beta", "eta", "beta"],
                ["eta", "eta", "beta", "kappa", "theta", "beta", "kappa", "iota", "epsilon", "epsilon", "iota"],
                ["eta", "iota", "eta", "alpha", "alpha", "iota", "alpha", "epsilon", "beta"],
                ["kappa", "delta", "theta", "iota", "kappa", "delta", "zeta", "eta", "gamma"],
                ["gamma", "iota"],
                ["epsilon"],
              ],
              statements: 1,
              compactBefore: false,
              deleted: [],
              compactAfter: "merge" as const,
              blockSize: 2,
              query: ["eta", "eta", "beta", "alpha", "epsilon"],
              k: 2,
              firstRound: 1,
              access: Array.from({ length: 40 }, () => ["*"]),
              reader: null,
              selective: false,
            },
          ],
        ],
      },
    );
    // The corpora did go through both early terminations, not only through the exhaustive fallback.
    expect(paths.get("early") ?? 0).toBeGreaterThan(0);
    expect(paths.get("cut") ?? 0).toBeGreaterThan(0);
  });
});
