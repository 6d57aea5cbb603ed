import { describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { adminQuery } from "../../helpers/cluster.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";

/** Samples /healthz every 10 ms until `work` settles: how long the event loop kept it waiting. */
async function healthLatenciesWhile(app: App, work: Promise<unknown>): Promise<number[]> {
  let settled = false;
  const done = work.finally(() => {
    settled = true;
  });
  const latencies: number[] = [];
  while (!settled) {
    const start = performance.now();
    const response = await app.http.request("/healthz");
    latencies.push(performance.now() - start);
    expect(response.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await done;
  return latencies;
}

/** Text tasks the worker threads finished, from the metrics. */
async function textTasks(app: App): Promise<number> {
  const metrics = await (await app.http.request("/metrics")).text();
  return [...metrics.matchAll(/^pgrag_text_tasks_total\{[^}]*outcome="done"[^}]*\} (\d+)$/gm)].reduce(
    (sum, match) => sum + Number(match[1]),
    0,
  );
}

const hostileHtml = (bytes: number) => {
  const half = Math.floor(bytes / 2);
  const nesting = Math.floor(half / 11);
  const rows = Math.floor(half / 36);
  return `${"<div>".repeat(nesting)}<h1>Deep</h1>${"</div>".repeat(nesting)}<table>${"<tr><td>cell</td><td>value</td></tr>".repeat(rows)}</table>`;
};

describe("hostile documents", () => {
  it("are parsed in the worker threads while /healthz keeps answering: a 4.5 MB HTML page and a punctuation run", async () => {
    const app = await startTestApp({ PGRAG_WORKER_POLL_SECONDS: "0.5" }, { workers: true });
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "hostile");
    const work = (async () => {
      const html = await api(app, "PUT", "/v1/collections/hostile/documents/page", {
        key,
        body: hostileHtml(4.5 * 1024 * 1024),
        contentType: "text/html",
      });
      expect(html.status).toBe(202);
      const punctuation = await api(app, "PUT", "/v1/collections/hostile/documents/bang", {
        key,
        body: `a${"!".repeat(512 * 1024)}a`,
        contentType: "text/plain",
      });
      expect(punctuation.status).toBe(202);
      return waitForDocuments(app, key, "hostile", ["page", "bang"], ["ready", "failed"], 120_000);
    })();
    const tasksBefore = await textTasks(app);
    const latencies = await healthLatenciesWhile(app, work);
    const { documents } = await work;
    expect(documents.get("page")?.status).toBe("ready");
    expect(documents.get("bang")?.status).toBe("ready");
    // The parsing ran in the text pool's threads (the HTML conversion, and both documents' chunking),
    // and the API answered its health checks all along. How long its event loop waited is measured
    // by bench:hostile, not asserted here.
    expect((await textTasks(app)) - tasksBefore).toBeGreaterThanOrEqual(3);
    expect(latencies.length).toBeGreaterThan(10);
  });

  it("fail alone and for good when over their time budget, with the reason; the rest of the batch is ingested", async () => {
    const app = await startTestApp(
      { PGRAG_TEXT_TIMEOUT_MS: "100", PGRAG_WORKER_POLL_SECONDS: "0.5" },
      { workers: true },
    );
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "budget");
    const slow = "e.g. 1.5! ".repeat(500_000); // ~1 s of chunking, ten times the budget
    const response = await api(app, "POST", "/v1/collections/budget/documents", {
      key,
      json: {
        documents: [
          { external_id: "before", content: "A plain first document about budgets." },
          { external_id: "slow", content: slow },
          { external_id: "after", content: "A plain last document about limits." },
        ],
      },
    });
    expect(response.status).toBe(202);
    const { documents } = await waitForDocuments(app, key, "budget", ["before", "slow", "after"], ["ready", "failed"]);
    expect(documents.get("before")?.status).toBe("ready");
    expect(documents.get("after")?.status).toBe("ready");
    expect(documents.get("slow")?.status).toBe("failed");
    expect(documents.get("slow")?.error).toMatch(
      /chunking the document took longer than 100 ms \(PGRAG_TEXT_TIMEOUT_MS\)/,
    );
    // Failed for good: its job is completed, not waiting for a retry.
    const slowId = documents.get("slow")?.id;
    const jobs = await adminQuery<{ state: string }>(
      "primary",
      "SELECT state FROM pgboss.job WHERE name = 'ingest-document' AND data->>'documentId' = $1",
      [slowId],
    );
    expect(jobs.map((j) => j.state)).toEqual(["completed"]);
  });

  it("refuse chunking settings that multiply a document into tiny overlapping chunks", async () => {
    const app = await startTestApp();
    const { key } = await newTenantKey(app);
    const tiny = await api<{ error: { message: string } }>(app, "POST", "/v1/collections", {
      key,
      json: { name: "tiny", chunking: { max_tokens: 16, overlap_tokens: 15 } },
    });
    expect(tiny.status).toBe(400);
    expect(tiny.body.error.message).toMatch(/max_tokens/);
    const overlapping = await api<{ error: { message: string } }>(app, "POST", "/v1/collections", {
      key,
      json: { name: "overlapping", chunking: { max_tokens: 100, overlap_tokens: 60 } },
    });
    expect(overlapping.status).toBe(400);
    expect(overlapping.body.error.message).toBe(
      "chunking.overlap_tokens (60) must be at most half of chunking.max_tokens (100)",
    );
  });
});
