import OpenAI, { toFile } from "openai";
import { describe, expect, it } from "vitest";
import { waitFor } from "../../../harness/wait-for.ts";
import { claimLines } from "../../../src/batch/batches.repository.ts";
import { newTenantKey } from "../../helpers/api.ts";
import { inferenceSettings, startTestApp } from "../../helpers/app.ts";
import { killWorker, spawnWorker } from "../../helpers/worker-process.ts";
import { adminCount } from "../../helpers/cluster.ts";
import { injectDevFaults } from "../../helpers/dev-faults.ts";
import { seedScifact } from "../../helpers/ingest.ts";

// Short leases, so that the killed runner's lines come back within the test.
const settings = { PGRAG_INGEST_JOB_EXPIRE_SECONDS: "3", PGRAG_WORKER_POLL_SECONDS: "0.5" };

const chatLines = (count: number, questions: readonly string[]) =>
  Array.from({ length: count }, (_, i) => ({
    custom_id: `line-${i}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "rag:sci", messages: [{ role: "user", content: questions[i % questions.length] }] },
  }));

async function createBatch(openai: OpenAI, rows: readonly object[]) {
  const file = await openai.files.create({
    file: await toFile(Buffer.from(rows.map((r) => JSON.stringify(r)).join("\n")), "in.jsonl"),
    purpose: "batch",
  });
  return openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
}

describe("a batch runner killed mid-batch", () => {
  it("resumes in another process: the batch completes and every custom_id is answered once", async () => {
    const seeder = await startTestApp(settings, { workers: true });
    const { key, tenantId, abstracts } = await seedScifact(seeder, 6);
    await seeder.stop();
    // This process serves the API only; the batch runs in a `pgrag worker`, killed mid-way.
    const app = await startTestApp({ ...settings, PGRAG_WORKER_CONCURRENCY: "0" }, { listen: true });
    injectDevFaults(app.devInference(), { firstTokenDelayMs: 200 });
    const openai = new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${app.port()}/v1`, maxRetries: 0 });
    const batch = await createBatch(
      openai,
      chatLines(
        30,
        abstracts.map((a) => a.title),
      ),
    );
    const worker = spawnWorker({
      ...settings,
      ...inferenceSettings(app),
      PGRAG_WORKER_CONCURRENCY: "1",
      PGRAG_BATCH_CONCURRENCY: "4",
    });
    const completed = async () => (await openai.batches.retrieve(batch.id)).request_counts?.completed ?? 0;
    const running = () =>
      adminCount("SELECT count(*)::int AS n FROM batch_lines WHERE tenant_id = $1 AND state = 'running'", [tenantId]);
    try {
      // Killed with lines in flight: the runner answers them in groups, and between a group's last
      // answer and the next claim none is running.
      await waitFor(
        "a few lines answered and more running",
        async () => (await completed()) >= 5 && (await running()) > 0,
        30_000,
      );
    } finally {
      await killWorker(worker);
    }
    expect(await completed()).toBeLessThan(30);

    await startTestApp({ ...settings, ...inferenceSettings(app), PGRAG_BATCH_CONCURRENCY: "4" }, { workers: true });
    const done = await waitFor(
      "the batch to complete",
      async () => {
        const state = await openai.batches.retrieve(batch.id);
        return state.status === "completed" ? state : undefined;
      },
      60_000,
    );
    expect(done.request_counts).toEqual({ total: 30, completed: 30, failed: 0 });
    const output = (await (await openai.files.content(done.output_file_id ?? "")).text()).trim().split("\n");
    const ids = output.map((line) => (JSON.parse(line) as { custom_id: string }).custom_id);
    expect(ids).toHaveLength(30);
    expect(new Set(ids).size).toBe(30);
    // The kill cut lines off in flight: they ran again, under a new attempt.
    const retried = await adminCount(
      "SELECT count(*)::int AS n FROM batch_lines WHERE tenant_id = $1 AND attempts > 1",
      [tenantId],
    );
    expect(retried).toBeGreaterThan(0);
  });
});

describe("claiming batch lines", () => {
  it("takes the tenants with waiting lines in turn, however big each one's batch", async () => {
    // No runner: the lines are claimed by hand.
    const app = await startTestApp({ PGRAG_BATCH_CONCURRENCY: "0" }, { listen: true });
    const tenants = await Promise.all([newTenantKey(app), newTenantKey(app)]);
    const [big, small] = tenants.map(
      ({ key }) => new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${app.port()}/v1`, maxRetries: 0 }),
    );
    if (!big || !small) throw new Error("two clients");
    await createBatch(big, chatLines(20, ["q"]));
    await createBatch(small, chatLines(3, ["q"]));
    const { value: claimed } = await app.router.write({}, (tx) => claimLines(tx, 6, 60));
    const counts = new Map<string, number>();
    for (const line of claimed) counts.set(line.tenantId, (counts.get(line.tenantId) ?? 0) + 1);
    expect(counts.get(tenants[0]?.tenantId ?? "")).toBe(3);
    expect(counts.get(tenants[1]?.tenantId ?? "")).toBe(3);
    // Claimed lines are leased: a second claim takes others.
    const { value: again } = await app.router.write({}, (tx) => claimLines(tx, 100, 60));
    expect(again).toHaveLength(23 - 6);
  });
});
