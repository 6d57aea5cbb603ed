import { beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp, testConfig } from "../../helpers/app.ts";
import { adminQuery } from "../../helpers/cluster.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";
import { readScifactCorpus } from "../../../src/evaluation/datasets.ts";

// PGRAG_EXACT_SCAN_THRESHOLD=0: every vector query walks the HNSW index, so filtered queries
// exercise pgvector's iterative scans rather than the exact path.
let app: App;
beforeAll(async () => {
  app = await startTestApp({ PGRAG_EXACT_SCAN_THRESHOLD: "0" }, { workers: true });
});
// The BM25 parameters the app uses, read from the same configuration.
const { k1: K1, b: B } = testConfig({ PGRAG_EXACT_SCAN_THRESHOLD: "0" }).retrieval.bm25;

interface Hit {
  chunk_id: string;
  external_id: string;
  content: string;
  metadata: Record<string, unknown>;
  score: number;
  explain?: {
    vector: { rank: number | null; score: number | null };
    bm25: { rank: number | null; score: number | null };
  };
}
type SearchResponse = {
  results: Hit[];
  served_by: string;
  vector_path: string | null;
  error?: { message: string };
};

async function ingest(
  key: string,
  collection: string,
  docs: { id: string; content: string; metadata?: Record<string, unknown> }[],
) {
  const put = await api<{ consistency_token: string }>(app, "POST", `/v1/collections/${collection}/documents`, {
    key,
    json: {
      documents: docs.map((d) => ({ external_id: d.id, content: d.content, metadata: d.metadata ?? {} })),
    },
  });
  expect(put.status).toBe(202);
  return (
    await waitForDocuments(
      app,
      key,
      collection,
      docs.map((d) => d.id),
    )
  ).token;
}

const search = (key: string, body: Record<string, unknown>, token?: string) =>
  api<SearchResponse>(app, "POST", "/v1/search", { key, json: body, token: token ?? null });

/** Okapi BM25 as in the code under test, computed here by hand from the same statistics. */
function bm25(terms: { tf: number; df: number }[], dl: number, n: number, avgdl: number): number {
  return terms.reduce(
    (sum, { tf, df }) =>
      sum + Math.log(1 + (n - df + 0.5) / (df + 0.5)) * ((tf * (K1 + 1)) / (tf + K1 * (1 - B + (B * dl) / avgdl))),
    0,
  );
}

describe("BM25", () => {
  it("scores a small corpus exactly as the formula, and keeps N, avgdl and df right through replace and delete", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "fruit", { language: "simple" });
    let token = await ingest(key, "fruit", [
      { id: "d1", content: "apple banana apple" },
      { id: "d2", content: "banana cherry" },
      { id: "d3", content: "cherry cherry cherry date" },
    ]);
    const scores = async (t: string) => {
      const response = await search(
        key,
        { collection: "fruit", query: "apple cherry", mode: "bm25", explain: true },
        t,
      );
      expect(response.status).toBe(200);
      return new Map(response.body.results.map((h) => [h.external_id, h.explain?.bm25.score ?? Number.NaN]));
    };
    let got = await scores(token);
    // N = 3, avgdl = 9/3; df(apple) = 1, df(cherry) = 2.
    expect(got.get("d1")).toBeCloseTo(bm25([{ tf: 2, df: 1 }], 3, 3, 3), 9);
    expect(got.get("d2")).toBeCloseTo(bm25([{ tf: 1, df: 2 }], 2, 3, 3), 9);
    expect(got.get("d3")).toBeCloseTo(bm25([{ tf: 3, df: 2 }], 4, 3, 3), 9);
    expect([...got.keys()]).toEqual(["d1", "d3", "d2"]);

    const replaced = await api<{ consistency_token: string }>(app, "PUT", "/v1/collections/fruit/documents/d1", {
      key,
      json: { content: "apple apple apple apple cherry" },
    });
    token = (await waitForDocuments(app, key, "fruit", ["d1"])).token;
    await expect
      .poll(async () => (await scores(token)).get("d1"))
      .toBeCloseTo(
        bm25(
          [
            { tf: 4, df: 1 },
            { tf: 1, df: 3 },
          ],
          5,
          3,
          11 / 3,
        ),
        9,
      );
    expect(replaced.status).toBe(202);
    got = await scores(token);
    expect(got.get("d3")).toBeCloseTo(bm25([{ tf: 3, df: 3 }], 4, 3, 11 / 3), 9);

    const deleted = await api<{ consistency_token: string }>(app, "DELETE", "/v1/collections/fruit/documents/d3", {
      key,
    });
    got = await scores(deleted.body.consistency_token);
    // N = 2, avgdl = (5 + 2) / 2; df(cherry) = 2.
    expect(got.has("d3")).toBe(false);
    expect(got.get("d1")).toBeCloseTo(
      bm25(
        [
          { tf: 4, df: 1 },
          { tf: 1, df: 2 },
        ],
        5,
        2,
        3.5,
      ),
      9,
    );
    expect(got.get("d2")).toBeCloseTo(bm25([{ tf: 1, df: 2 }], 2, 2, 3.5), 9);
  });

  it("ORs query terms, and copes with punctuation, stop words only and very long queries", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "sci");
    const abstracts = await readScifactCorpus(60);
    const token = await ingest(
      key,
      "sci",
      abstracts.map((a) => ({ id: a._id, content: `${a.title}\n\n${a.text}` })),
    );
    const first = abstracts[0];
    // Two words that are rarely in the same abstract: an AND would return (almost) nothing.
    const or = await search(key, { collection: "sci", query: "diffusion zebrafish", mode: "bm25", k: 20 }, token);
    expect(or.body.results.length).toBeGreaterThan(1);
    for (const query of ["!!! ??? ((( )))", "the of and to", ") & | ! :* <-> '", ""]) {
      const response = await search(key, { collection: "sci", query: query || " ", mode: "bm25" }, token);
      if (query === "") expect(response.status).toBe(400);
      else expect([response.status, response.body.results]).toEqual([200, []]);
    }
    const long = `${first?.text} ${first?.text}`.split(/\s+/).slice(0, 400).join(" ");
    const longResponse = await search(key, { collection: "sci", query: long, mode: "hybrid" }, token);
    expect(longResponse.status).toBe(200);
    expect(longResponse.body.results[0]?.external_id).toBe(first?._id);
  });
});

describe("hybrid search", () => {
  it("fuses both legs, reports per-leg ranks and scores, and serves from a replica", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "mix");
    const abstracts = await readScifactCorpus(80);
    const token = await ingest(
      key,
      "mix",
      abstracts.map((a) => ({ id: a._id, content: `${a.title}\n\n${a.text}` })),
    );
    const target = abstracts[5];
    const response = await search(
      key,
      {
        collection: "mix",
        query: target?.title ?? "",
        k: 10,
        fusion: "rrf",
        weights: { vector: 1, bm25: 1 },
        explain: true,
      },
      token,
    );
    expect(response.status).toBe(200);
    expect(response.body.served_by).toMatch(/^replica/);
    expect(response.body.results[0]?.external_id).toBe(target?._id);
    const top = response.body.results[0]?.explain;
    expect(top?.vector.rank).not.toBeNull();
    expect(top?.bm25.rank).not.toBeNull();
    const rrf = (rank: number | null | undefined) => (rank ? 1 / (60 + rank) : 0);
    for (const hit of response.body.results)
      expect(hit.score).toBeCloseTo(rrf(hit.explain?.vector.rank) + rrf(hit.explain?.bm25.rank), 12);
    const scores = response.body.results.map((h) => h.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    const weighted = await search(
      key,
      {
        collection: "mix",
        query: target?.title ?? "",
        fusion: "weighted",
        weights: { vector: 0, bm25: 1 },
        explain: true,
      },
      token,
    );
    expect(weighted.body.results.map((h) => h.external_id)[0]).toBe(target?._id);
  });
});

describe("filters", () => {
  it("apply inside both legs: metadata eq, in, ranges, exists, and document ids", async () => {
    const { key } = await newTenantKey(app);
    // One chunk per abstract, so that counting chunks counts documents.
    await createCollection(app, key, "filtered", { chunking: { max_tokens: 4096, overlap_tokens: 0 } });
    const abstracts = await readScifactCorpus(200);
    const docs = abstracts.map((a, i) => ({
      id: a._id,
      content: `${a.title}\n\n${a.text}`,
      metadata: {
        year: 2000 + (i % 20),
        group: i % 50 === 0 ? "rare" : "common",
        ...(i % 2 === 0 ? { reviewed: true } : {}),
      },
    }));
    const token = await ingest(key, "filtered", docs);
    const query = "cells and patients treatment";
    const check = async (filter: Record<string, unknown>, expected: (d: (typeof docs)[number]) => boolean, k = 10) => {
      for (const mode of ["vector", "bm25", "hybrid"]) {
        const response = await search(key, { collection: "filtered", query, mode, k, filter }, token);
        expect(response.status, JSON.stringify(response.body)).toBe(200);
        const allowed = new Set(docs.filter(expected).map((d) => d.id));
        for (const hit of response.body.results)
          expect(allowed.has(hit.external_id), `${mode} ${hit.external_id}`).toBe(true);
        if (mode === "vector") expect(response.body.results.length).toBe(Math.min(k, allowed.size));
      }
    };
    // 1% selectivity through the HNSW index: iterative scans still return every match.
    await check({ metadata: { group: "rare" } }, (d) => d.metadata.group === "rare", 4);
    await check(
      { metadata: { group: { in: ["rare"] }, year: { gte: 2000, lt: 2005 } } },
      (d) => d.metadata.group === "rare" && d.metadata.year < 2005,
    );
    await check({ metadata: { year: { gt: 2017 } } }, (d) => d.metadata.year > 2017);
    await check({ metadata: { reviewed: { exists: false } } }, (d) => !("reviewed" in d.metadata));
    const ids = docs.slice(0, 3).map((d) => d.id);
    await check({ document_ids: ids }, (d) => ids.includes(d.id), 3);
  });

  it("keep injection attempts inert and reject malformed filters with a message", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "inert");
    const token = await ingest(key, "inert", [
      { id: "x", content: "Robert'); DROP TABLE chunks;-- was here", metadata: { "a'b": 'c"d' } },
    ]);
    const hostile = [
      "'); DROP TABLE chunks; --",
      "x' OR '1'='1",
      "$1::text",
      "a:* & !b | (c <-> d)",
      "\\\\ \u0000".replace("\u0000", ""),
    ];
    for (const query of hostile) {
      const response = await search(
        key,
        { collection: "inert", query, filter: { metadata: { "a'b') OR true --": "x" } } },
        token,
      );
      expect(response.status).toBe(200);
      expect(response.body.results).toEqual([]);
    }
    const match = await search(
      key,
      { collection: "inert", query: "Robert DROP TABLE", filter: { metadata: { "a'b": 'c"d' } } },
      token,
    );
    expect(match.body.results.map((h) => h.external_id)).toEqual(["x"]);
    expect((await adminQuery("primary", "SELECT to_regclass('public.chunks') IS NOT NULL AS ok"))[0]?.ok).toBe(true);
    const bad = await search(
      key,
      { collection: "inert", query: "x", filter: { metadata: { year: { between: [1, 2] } } } },
      token,
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error?.message).toMatch(/filter\.metadata\.year/);
  });
});

describe("request bounds", () => {
  it("answers empty results, k bounds and unknown collections clearly", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "bounds");
    const token = await ingest(key, "bounds", [
      { id: "one", content: "PostgreSQL streaming replication with PgBouncer." },
    ]);
    const none = await search(key, { collection: "bounds", query: "zzzyzzx qqqpqq", mode: "bm25" }, token);
    expect([none.status, none.body.results]).toEqual([200, []]);
    expect((await search(key, { collection: "bounds", query: "replication", k: 1 }, token)).body.results).toHaveLength(
      1,
    );
    for (const k of [0, 101, 2.5]) {
      const response = await search(key, { collection: "bounds", query: "x", k }, token);
      expect(response.status).toBe(400);
      expect(response.body.error?.message).toMatch(/^invalid request: k/);
    }
    const unknown = await search(key, { collection: "nope", query: "x" }, token);
    expect([unknown.status, unknown.body.error?.message]).toEqual([404, 'no collection "nope"']);
    const both = await search(key, { query: "x" }, token);
    expect(both.body.error?.message).toMatch(/exactly one of collection or collections/);
  });
});
