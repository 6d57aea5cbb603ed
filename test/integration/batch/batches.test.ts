import OpenAI, { toFile } from "openai";
import { beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import { waitFor } from "../../../harness/wait-for.ts";
import { newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { adminQuery } from "../../helpers/cluster.ts";
import { injectDevFaults } from "../../helpers/dev-faults.ts";
import { seedScifact } from "../../helpers/ingest.ts";

let app: App;
beforeAll(async () => {
  app = await startTestApp(
    // As many batch lines in flight as inference slots: a batch can fill the backend.
    { PGRAG_WORKER_POLL_SECONDS: "0.5", PGRAG_BATCH_CONCURRENCY: "4", PGRAG_INFERENCE_MAX_CONCURRENT: "4" },
    { listen: true, workers: true },
  );
});

/** A line of an output or error file, as OpenAI writes them (the body's shape depends on the endpoint). */
interface ResultLine {
  custom_id: string;
  response: { status_code: number; body: Record<string, unknown> & ChatBody } | null;
  error: { code: string; message: string } | null;
}
interface ChatBody {
  object?: string;
  choices?: { message: { content: string } }[];
  citations?: unknown[];
  data?: { embedding: number[] }[];
}

/** The official SDK, pointed at this API. */
const client = (apiKey: string) => new OpenAI({ apiKey, baseURL: `http://127.0.0.1:${app.port()}/v1`, maxRetries: 0 });

const jsonl = (rows: readonly object[]) => `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`;
const chatLine = (customId: string, question: string, collection = "sci") => ({
  custom_id: customId,
  method: "POST",
  url: "/v1/chat/completions",
  body: { model: `rag:${collection}`, messages: [{ role: "user", content: question }] },
});

async function upload(openai: OpenAI, rows: readonly object[]) {
  return openai.files.create({ file: await toFile(Buffer.from(jsonl(rows)), "batch.jsonl"), purpose: "batch" });
}

async function finished(openai: OpenAI, id: string, statuses = ["completed", "failed", "expired", "cancelled"]) {
  return waitFor(
    `batch ${id} to end`,
    async () => {
      const batch = await openai.batches.retrieve(id);
      return statuses.includes(batch.status) ? batch : undefined;
    },
    60_000,
  );
}

const completed = (batch: OpenAI.Batch) => batch.request_counts?.completed ?? 0;

async function contentLines(openai: OpenAI, fileId: string | null | undefined) {
  if (!fileId) return [];
  const text = await (await openai.files.content(fileId)).text();
  return text
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as ResultLine);
}

describe("the Batch API, through the official openai package", () => {
  it("answers every line once, with citations; lines that fail land in the error file with their reason", async () => {
    const { key, abstracts } = await seedScifact(app, 12);
    const openai = client(key);
    const questions = abstracts.slice(0, 6).map((a, i) => chatLine(`q${i}`, a.title));
    const file = await upload(openai, [
      ...questions,
      chatLine("unknown-collection", "anything", "nowhere"),
      { custom_id: "empty", method: "POST", url: "/v1/chat/completions", body: { model: "rag:sci", messages: [] } },
    ]);
    expect(file).toMatchObject({ object: "file", purpose: "batch", filename: "batch.jsonl" });
    expect((await openai.files.retrieve(file.id)).bytes).toBeGreaterThan(0);

    const created = await openai.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { purpose: "test" },
    });
    expect(created).toMatchObject({ object: "batch", status: "in_progress", request_counts: { total: 8 } });
    const done = await finished(openai, created.id);
    expect(done).toMatchObject({ status: "completed", request_counts: { total: 8, completed: 6, failed: 2 } });

    const output = await contentLines(openai, done.output_file_id);
    expect(output.map((l) => l.custom_id).sort()).toEqual(questions.map((q) => q.custom_id).sort());
    for (const line of output) {
      expect(line.response?.status_code).toBe(200);
      expect(line.response?.body.object).toBe("chat.completion");
      expect(line.response?.body.choices?.[0]?.message.content.length).toBeGreaterThan(0);
      expect(line.response?.body.citations?.length).toBeGreaterThan(0);
    }
    const errors = await contentLines(openai, done.error_file_id);
    expect(Object.fromEntries(errors.map((l) => [l.custom_id, [l.response?.status_code, l.error?.message]]))).toEqual({
      "unknown-collection": [404, expect.stringContaining('no collection "nowhere"')],
      empty: [400, expect.stringContaining("messages must not be empty")],
    });
    const listed = await openai.batches.list({ limit: 10 });
    expect(listed.data.map((b) => b.id)).toContain(created.id);
  });

  it("answers embedding lines grouped into large requests", async () => {
    const { key } = await newTenantKey(app);
    const openai = client(key);
    const before = app.devInference()?.stats.embeddingRequests ?? 0;
    const rows = Array.from({ length: 20 }, (_, i) => ({
      custom_id: `e${i}`,
      method: "POST",
      url: "/v1/embeddings",
      body: { model: "any", input: i % 2 ? `text ${i}` : [`first ${i}`, `second ${i}`] },
    }));
    const batch = await openai.batches.create({
      input_file_id: (await upload(openai, rows)).id,
      endpoint: "/v1/embeddings",
      completion_window: "24h",
    });
    const done = await finished(openai, batch.id);
    expect(done.request_counts).toEqual({ total: 20, completed: 20, failed: 0 });
    const output = await contentLines(openai, done.output_file_id);
    expect(output).toHaveLength(20);
    for (const line of output) {
      const i = Number(line.custom_id.slice(1));
      expect(line.response?.body.data).toHaveLength(i % 2 ? 1 : 2);
      expect(line.response?.body.data?.[0]?.embedding).toHaveLength(384);
    }
    // Twenty lines, far fewer backend requests (one per group the runner claimed together).
    expect((app.devInference()?.stats.embeddingRequests ?? 0) - before).toBeLessThan(10);
  });

  it("refuses a bad input file with each line's number and reason", async () => {
    const { key } = await newTenantKey(app);
    const openai = client(key);
    const bad = await upload(openai, [
      chatLine("a", "fine"),
      chatLine("a", "again"),
      { custom_id: "b", method: "GET", url: "/v1/chat/completions", body: {} },
      { custom_id: "c", method: "POST", url: "/v1/images", body: {} },
    ]).catch((error: unknown) => error);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as Error).message).toMatch(
      /line 2: custom_id "a" repeats line 1; line 3: method: must be "POST"; line 4: url: must be one of/,
    );
    const other = await upload(openai, [
      { custom_id: "e", method: "POST", url: "/v1/embeddings", body: { input: "x" } },
    ]);
    await expect(
      openai.batches.create({ input_file_id: other.id, endpoint: "/v1/chat/completions", completion_window: "24h" }),
    ).rejects.toThrow(/line 1 is for \/v1\/embeddings/);
  });

  it("stops reading a file at 20 bad lines, and counts bad lines toward the line limit", async () => {
    const { key, tenantId } = await newTenantKey(app);
    const openai = client(key);
    const filesKept = async () =>
      Number(
        (await adminQuery("primary", "SELECT count(*) AS n FROM batch_files WHERE tenant_id = $1", [tenantId]))[0]?.n,
      );
    // A good line first, then 5,000 bad ones: the report holds the first 20, in order.
    const manyBad = [chatLine("ok", "fine"), ...Array.from({ length: 5_000 }, (_, i) => ({ custom_id: `b${i}` }))];
    const refused = await upload(openai, manyBad).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    const body = (refused as InstanceType<typeof OpenAI.BadRequestError>).error as { details: { line: number }[] };
    expect(body.details.map((d) => d.line)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    expect((refused as Error).message).toMatch(/reading stopped at 20 bad lines/);
    // A 200,000-deep line is one bad line, refused by its depth before it is parsed.
    const deep = `${"[".repeat(200_000)}${"]".repeat(200_000)}`;
    const tooDeep = await openai.files
      .create({ file: await toFile(Buffer.from(`${deep}\n`), "deep.jsonl"), purpose: "batch" })
      .catch((error: unknown) => error);
    expect((tooDeep as Error).message).toMatch(/line 1: nests objects or arrays more than 64 levels deep/);
    expect(await filesKept()).toBe(0);
  });

  it("counts bad lines toward PGRAG_BATCH_MAX_LINES", async () => {
    const small = await startTestApp({ PGRAG_BATCH_MAX_LINES: "3" }, { listen: true });
    const { key } = await newTenantKey(small);
    const openai = new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${small.port()}/v1`, maxRetries: 0 });
    const lines = `${Array.from({ length: 4 }, () => "not json").join("\n")}\n`;
    const refused = await openai.files
      .create({ file: await toFile(Buffer.from(lines), "bad.jsonl"), purpose: "batch" })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.APIError);
    expect((refused as InstanceType<typeof OpenAI.APIError>).status).toBe(413);
    expect((refused as Error).message).toMatch(/more than 3 requests in one file \(PGRAG_BATCH_MAX_LINES\)/);
  });

  it("keeps a file until its expiry, then deletes it; files list newest first", async () => {
    const { key, tenantId } = await newTenantKey(app);
    const openai = client(key);
    const lines = jsonl([{ custom_id: "e", method: "POST", url: "/v1/embeddings", body: { input: "x" } }]);
    const kept = await openai.files.create({ file: await toFile(Buffer.from(lines), "kept.jsonl"), purpose: "batch" });
    const brief = await openai.files.create({
      file: await toFile(Buffer.from(lines), "brief.jsonl"),
      purpose: "batch",
      expires_after: { anchor: "created_at", seconds: 3600 },
    });
    expect((brief.expires_at ?? 0) - brief.created_at).toBe(3600);
    // Without expires_after, the default: 30 days.
    expect((kept.expires_at ?? 0) - kept.created_at).toBe(30 * 86_400);
    expect((await openai.files.list()).data.map((f) => f.id)).toEqual([brief.id, kept.id]);
    // Its hour passes: the runner deletes it, and only it.
    await adminQuery("primary", "UPDATE batch_files SET expires_at = now() - interval '1 second' WHERE id = $1", [
      brief.id,
    ]);
    await waitFor("the expired file to be deleted", async () => {
      const left = await adminQuery<{ n: number }>(
        "primary",
        "SELECT count(*)::int AS n FROM batch_files WHERE tenant_id = $1",
        [tenantId],
      );
      return left[0]?.n === 1 || undefined;
    });
    await expect(openai.files.retrieve(brief.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect((await openai.files.retrieve(kept.id)).id).toBe(kept.id);
    const refused = await openai.files
      .create({
        file: await toFile(Buffer.from(lines), "odd.jsonl"),
        purpose: "batch",
        expires_after: { anchor: "created_at", seconds: 5 },
      })
      .catch((error: unknown) => error);
    expect((refused as Error).message).toMatch(/expires_after\[seconds\] must be a whole number of seconds from 60/);
  });

  it("cancels mid-way: no new line starts, answered ones are kept", async () => {
    const { key, abstracts } = await seedScifact(app, 5);
    const openai = client(key);
    injectDevFaults(app.devInference(), { firstTokenDelayMs: 300 });
    const rows = Array.from({ length: 40 }, (_, i) => chatLine(`c${i}`, abstracts[i % 5]?.title ?? "x"));
    const batch = await openai.batches.create({
      input_file_id: (await upload(openai, rows)).id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    await waitFor("a few lines answered", async () => completed(await openai.batches.retrieve(batch.id)) >= 4);
    expect((await openai.batches.cancel(batch.id)).status).toMatch(/cancelling|cancelled/);
    const atCancel = completed(await openai.batches.retrieve(batch.id));
    const done = await finished(openai, batch.id);
    expect(done.status).toBe("cancelled");
    // Only the lines already in flight at the cancel could still finish.
    expect(completed(done)).toBeLessThanOrEqual(atCancel + 4);
    expect(completed(done)).toBeLessThan(40);
    const output = await contentLines(openai, done.output_file_id);
    expect(output).toHaveLength(completed(done));
    const errors = await contentLines(openai, done.error_file_id);
    expect(errors.every((l) => l.error?.code === "batch_cancelled")).toBe(true);
    expect(output.length + errors.length).toBe(40);
    expect(done.request_counts?.failed).toBe(0);
    // None of its lines is left for a runner to claim.
    const [claimable] = await adminQuery<{ n: number }>(
      "primary",
      "SELECT count(*)::int AS n FROM batch_lines WHERE batch_id = $1 AND state IN ('pending', 'running')",
      [batch.id],
    );
    expect(claimable?.n).toBe(0);
    // Ended, it may be deleted, with its output and error files.
    const response = await fetch(`http://127.0.0.1:${app.port()}/v1/batches/${batch.id}`, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${key}` },
    });
    expect(await response.json()).toEqual({ id: batch.id, object: "batch", deleted: true });
    await expect(openai.batches.retrieve(batch.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(openai.files.retrieve(done.output_file_id ?? "")).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("gives a chat request the slot of a running batch request, which runs again and is answered once", async () => {
    const { key, tenantId, abstracts } = await seedScifact(app, 5);
    const openai = client(key);
    const dev = app.devInference();
    injectDevFaults(dev, { firstTokenDelayMs: 400 });
    const rows = Array.from({ length: 12 }, (_, i) => chatLine(`p${i}`, abstracts[i % 5]?.title ?? "x"));
    const batch = await openai.batches.create({
      input_file_id: (await upload(openai, rows)).id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const metric = async (name: string, labels = "") => {
      const text = await (await app.http.request("/metrics")).text();
      const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
      return Number(line?.split(" ")[1] ?? 0);
    };
    await waitFor(
      "batch work to take every slot",
      async () => (await metric("pgrag_inference_active", '{class="batch"}')) === 4,
    );
    const preemptedBefore = await metric("pgrag_inference_preemptions_total");
    const abortedBefore = dev?.stats.abortedChats ?? 0;
    const answer = await openai.chat.completions.create({
      model: "rag:sci",
      messages: [{ role: "user", content: abstracts[0]?.title ?? "x" }],
    });
    expect(answer.choices[0]?.message.content).toBeTruthy();
    // It did not wait for a batch request to finish: one was stopped, at the backend too.
    expect(await metric("pgrag_inference_preemptions_total")).toBe(preemptedBefore + 1);
    expect(dev?.stats.abortedChats ?? 0).toBeGreaterThan(abortedBefore);
    const done = await finished(openai, batch.id);
    expect(done.request_counts).toEqual({ total: 12, completed: 12, failed: 0 });
    const output = await contentLines(openai, done.output_file_id);
    expect(output.map((l) => l.custom_id).sort()).toEqual(rows.map((r) => r.custom_id).sort());
    // Being preempted is not a failed attempt: every line was claimed once.
    const attempts = await adminQuery<{ attempts: number }>(
      "primary",
      "SELECT attempts FROM batch_lines WHERE tenant_id = $1",
      [tenantId],
    );
    expect(attempts.map((l) => l.attempts)).toEqual(Array(12).fill(1));
  });

  it("retries a line the backend fails with backoff, until it is answered", async () => {
    const { key, tenantId, abstracts } = await seedScifact(app, 2);
    const openai = client(key);
    // More failures than the inference client's own retries: the line itself must be tried again.
    injectDevFaults(app.devInference(), { failNext: 4, failStatus: 503 });
    const batch = await openai.batches.create({
      input_file_id: (await upload(openai, [chatLine("flaky", abstracts[0]?.title ?? "x")])).id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const done = await finished(openai, batch.id);
    expect(done.request_counts).toEqual({ total: 1, completed: 1, failed: 0 });
    const [line] = await adminQuery<{ attempts: number }>(
      "primary",
      "SELECT attempts FROM batch_lines WHERE tenant_id = $1",
      [tenantId],
    );
    expect(line?.attempts).toBeGreaterThan(1);
  });

  it("keeps each tenant's files and batches to itself", async () => {
    const [a, b] = [await newTenantKey(app), await newTenantKey(app)];
    const mine = client(a.key);
    const theirs = client(b.key);
    const file = await upload(mine, [chatLine("x", "question")]);
    const batch = await mine.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    await expect(theirs.files.retrieve(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(theirs.files.content(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(theirs.batches.retrieve(batch.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(theirs.batches.cancel(batch.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(
      theirs.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" }),
    ).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect((await theirs.batches.list()).data).toEqual([]);
  });

  it("expires a batch past its completion window, keeping its partial results", async () => {
    const { key, abstracts } = await seedScifact(app, 3);
    const openai = client(key);
    injectDevFaults(app.devInference(), { firstTokenDelayMs: 500 });
    const rows = Array.from({ length: 30 }, (_, i) => chatLine(`x${i}`, abstracts[i % 3]?.title ?? "x"));
    const batch = await openai.batches.create({
      input_file_id: (await upload(openai, rows)).id,
      endpoint: "/v1/chat/completions",
      completion_window: "2s" as "24h",
    });
    const done = await finished(openai, batch.id);
    expect(done.status).toBe("expired");
    expect(completed(done)).toBeLessThan(30);
    const errors = await contentLines(openai, done.error_file_id);
    expect(errors.length).toBe(30 - completed(done));
    expect(errors.every((l) => l.error?.code === "batch_expired")).toBe(true);
  });
});
