import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createApp } from "../../../src/app.ts";
import { loadConfig } from "../../../src/config.ts";
import { createLogger } from "../../../src/logger.ts";
import { api } from "../../helpers/api.ts";
import { waitForDocuments } from "../../helpers/ingest.ts";
import { readScifactCorpus } from "../../../src/evaluation/datasets.ts";

// No database URL at all: the embedded PGlite default, with the very same code paths.
const dataDir = join(mkdtempSync(join(tmpdir(), "pgrag-embedded-")), "data");
const config = loadConfig({ PGRAG_EMBEDDED_DATA_DIR: dataDir, PGRAG_EMBEDDED_PORT: "55997", PGRAG_PORT: "0", PGRAG_LOG_LEVEL: "silent" });
const app = createApp(config, { logger: createLogger({ logLevel: "silent" }) });
afterAll(() => app.stop());

describe("the embedded default (PGlite)", () => {
  it("migrates itself, hands out a key, and runs ingestion, search, chat and deletion", async () => {
    expect(config.database.embedded).toEqual({ dataDir, port: 55997 });
    await app.start({ listen: false });
    const key = app.devApiKey() ?? "";
    expect(key).toMatch(/^pgr_/);
    expect((await api(app, "POST", "/v1/collections", { key, json: { name: "sci" } })).status).toBe(201);
    const abstracts = await readScifactCorpus(10);
    const put = await api(app, "POST", "/v1/collections/sci/documents", {
      key,
      json: { documents: abstracts.map((a) => ({ external_id: a._id, title: a.title, content: a.text })) },
    });
    expect(put.status).toBe(202);
    await waitForDocuments(app, key, "sci", abstracts.map((a) => a._id));
    const target = abstracts[3];
    for (const mode of ["bm25", "vector", "hybrid"]) {
      const found = await api<{ results: { external_id: string }[]; served_by: string }>(app, "POST", "/v1/search", {
        key,
        json: { collection: "sci", query: target?.title, mode },
      });
      expect(found.body.results[0]?.external_id, mode).toBe(target?._id);
      expect(found.body.served_by).toBe("primary");
    }
    const chat = await api<{ answer: string; citations: { external_id: string }[]; conversation_id: string }>(app, "POST", "/v1/chat", {
      key,
      json: { collection: "sci", question: target?.title, stream: false },
    });
    expect(chat.status).toBe(200);
    expect(chat.body.citations.map((c) => c.external_id)).toContain(target?._id);
    const history = await api<{ messages: unknown[] }>(app, "GET", `/v1/conversations/${chat.body.conversation_id}`, { key });
    expect(history.body.messages).toHaveLength(2);
    expect((await api(app, "DELETE", `/v1/collections/sci/documents/${target?._id}`, { key })).status).toBe(200);
    const after = await api<{ results: { external_id: string }[] }>(app, "POST", "/v1/search", {
      key,
      json: { collection: "sci", query: target?.title, mode: "bm25" },
    });
    expect(after.body.results.map((r) => r.external_id)).not.toContain(target?._id);
  });
});
