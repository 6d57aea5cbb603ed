import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import { adminTransaction } from "../../../src/tenancy/admin-transaction.ts";
import { createApiKey } from "../../../src/tenancy/api-keys.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";

/**
 * Random documents with random access lists, read by random users: every way of reading — search in
 * each mode, chat citations, the document list, a document, its chunks, its original — returns only
 * documents the user may see, and search in each mode finds every one it may see (each document
 * holds the word searched for, and k exceeds their number).
 */
const PRINCIPALS = ["user:ana", "user:ben", "group:hr", "group:ops"];
const WORD = "quarterly";

const accessList = fc.oneof(
  fc.constant<string[]>(["*"]),
  fc.uniqueArray(fc.constantFrom(...PRINCIPALS), { minLength: 1, maxLength: 2 }),
);
const scenario = fc.record({
  documents: fc.array(accessList, { minLength: 1, maxLength: 6 }),
  readers: fc.array(fc.uniqueArray(fc.constantFrom(...PRINCIPALS), { maxLength: 2 }), { minLength: 1, maxLength: 3 }),
});

describe("document access, on random documents and readers", () => {
  let app: App;
  let writer: string;
  let tenantId: string;
  beforeAll(async () => {
    app = await startTestApp({}, { workers: true });
    ({ key: writer, tenantId } = await newTenantKey(app));
  });

  it("lets every reader find exactly what its principals allow, however it reads", async () => {
    let round = 0;
    await fc.assert(
      fc.asyncProperty(scenario, async ({ documents, readers }) => {
        const collection = `c${round++}`;
        await createCollection(app, writer, collection);
        const ids = documents.map((_, i) => `doc${i}`);
        await api(app, "POST", `/v1/collections/${collection}/documents`, {
          key: writer,
          json: {
            documents: documents.map((access, i) => ({
              external_id: ids[i],
              content: `The ${WORD} report number ${i}. Its ${WORD} figures are final.`,
              access,
            })),
          },
        });
        const { token } = await waitForDocuments(app, writer, collection, ids);
        for (const principals of readers) {
          const key = await adminTransaction(
            app,
            async (tx) =>
              (
                await createApiKey(tx, {
                  tenantId,
                  name: "reader",
                  scopes: ["read"],
                  principals: principals.length > 0 ? principals : ["user:nobody"],
                })
              ).key,
          );
          const held = new Set(["*", ...principals]);
          const allowed = ids.filter((_, i) => (documents[i] ?? []).some((p) => held.has(p))).sort();
          for (const mode of ["bm25", "vector", "hybrid"]) {
            const found = await api<{ results: { external_id: string }[] }>(app, "POST", "/v1/search", {
              key,
              token,
              json: { collection, query: WORD, mode, k: 20 },
            });
            expect([...new Set(found.body.results.map((r) => r.external_id))].sort(), mode).toEqual(allowed);
          }
          const chat = await api<{ citations: { external_id: string }[] }>(app, "POST", "/v1/chat", {
            key,
            token,
            json: { collection, question: `What are the ${WORD} figures?`, stream: false },
          });
          for (const citation of chat.body.citations) expect(allowed).toContain(citation.external_id);
          const listed = await api<{ documents: { external_id: string }[] }>(
            app,
            "GET",
            `/v1/collections/${collection}/documents`,
            { key, token },
          );
          expect(listed.body.documents.map((d) => d.external_id).sort()).toEqual(allowed);
          for (const id of ids) {
            for (const path of ["", "/chunks", "/original"]) {
              const response = await app.http.request(`/v1/collections/${collection}/documents/${id}${path}`, {
                headers: { Authorization: `Bearer ${key}`, ...(token ? { "X-Consistency-Token": token } : {}) },
              });
              expect(response.status, `${id}${path}`).toBe(allowed.includes(id) ? 200 : 404);
            }
          }
        }
      }),
      { numRuns: 8 },
    );
  });
});
