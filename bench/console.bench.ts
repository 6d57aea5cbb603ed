/**
 * `npm run bench:console`: what the console costs a user and the server.
 * - First load: the bytes of the page and everything it loads (as sent, and gzip-compressed as a
 *   proxy in front would send them), and the time until the sign-in form is on screen (the app
 *   mounted and interactive), median of 10 cold loads in Debian's Chromium on localhost.
 * - The documents list at 100,000 documents: the time of `GET …/documents` pages (50 a page, keyset
 *   paging by external id, measured from the client on localhost) from positions across the whole
 *   collection, unfiltered and filtered by status; p50/p95 (target ≤ 50 ms p95 a page).
 */
import { gzipSync } from "node:zlib";
import { sql } from "kysely";
import { launchChromium } from "../harness/chromium.ts";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { closeDbNode } from "../src/db/pools.ts";
import { createLogger } from "../src/logger.ts";
import { createAdminDbNode } from "../src/tenancy/admin-db.ts";
import { adminTransaction } from "../src/tenancy/admin-transaction.ts";
import { createApiKey, ensureTenant } from "../src/tenancy/api-keys.ts";
import { percentile } from "./stats.ts";

const DOCUMENTS = 100_000;
// One client paging as fast as it can: the per-key rate limit is raised so that it measures the list, not the limit.
const config = loadConfig({
  ...process.env,
  PGRAG_LOG_LEVEL: "warn",
  PGRAG_PORT: "0",
  PGRAG_WORKER_CONCURRENCY: "0",
  PGRAG_RATE_LIMIT_PER_SECOND: "100000",
  PGRAG_RATE_LIMIT_BURST: "100000",
});
const app = createApp(config, { logger: createLogger({ logLevel: "warn" }) });
await app.start();
const base = `http://127.0.0.1:${app.port()}`;
const log = (line: string) => process.stdout.write(`${line}\n`);
log("bench:console");

// First load: every response the page's load brings, its bytes as sent and gzipped.
const browser = await launchChromium();
const loads: number[] = [];
let sent = 0;
let gzipped = 0;
for (let round = 0; round < 10; round++) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const bodies: Promise<Buffer>[] = [];
  page.on("response", (response) => bodies.push(response.body().catch(() => Buffer.alloc(0))));
  const started = performance.now();
  await page.goto(`${base}/`);
  await page.getByLabel("API key").waitFor();
  loads.push(performance.now() - started);
  if (round === 0) {
    const all = await Promise.all(bodies);
    sent = all.reduce((n, body) => n + body.length, 0);
    gzipped = all.reduce((n, body) => n + gzipSync(body).length, 0);
  }
  await context.close();
}
await browser.close();
log(
  `first load: ${(sent / 1024).toFixed(1)} KiB as sent (${(gzipped / 1024).toFixed(1)} KiB gzipped); ` +
    `sign-in form on screen after p50 ${percentile(loads, 50).toFixed(0)} ms (10 cold loads, localhost)`,
);

// 100,000 documents in one collection, written in one statement as the owner (the list reads rows,
// not chunks: none are needed), a tenth of them failed so the status filter has work to do.
const admin = createAdminDbNode(config);
const tenantName = `bench-console-${Date.now()}`;
const { tenantId, key } = await adminTransaction(app, async (tx) => {
  const id = await ensureTenant(tx, tenantName);
  return {
    tenantId: id,
    key: (await createApiKey(tx, { tenantId: id, name: "bench", scopes: ["read", "write"] })).key,
  };
});
const headers = { Authorization: `Bearer ${key}`, "Content-Type": "application/json" };
await fetch(`${base}/v1/collections`, { method: "POST", headers, body: JSON.stringify({ name: "big" }) });
const seeded = performance.now();
await admin.db.transaction().execute(async (tx) => {
  await sql`SELECT set_config('pgrag.tenant_id', ${tenantId}, true)`.execute(tx);
  await sql`
    INSERT INTO documents (tenant_id, collection_id, external_id, title, content_type, content, content_hash, status, error)
    SELECT ${tenantId}::uuid, c.id, 'doc-' || lpad(n::text, 7, '0'), 'Document ' || n, 'text/plain', 'text of document ' || n,
           sha256(n::text::bytea), CASE WHEN n % 10 = 0 THEN 'failed' ELSE 'ready' END,
           CASE WHEN n % 10 = 0 THEN 'seeded as failed' END
    FROM collections c, generate_series(1, ${DOCUMENTS}) AS n
    WHERE c.tenant_id = ${tenantId}::uuid AND c.name = 'big'
  `.execute(tx);
});
await sql`ANALYZE documents`.execute(admin.db);
log(`seeded ${DOCUMENTS} documents in ${((performance.now() - seeded) / 1000).toFixed(1)} s`);

/**
 * The server time of pages from 300 positions spread over the collection (a keyset page costs the
 * same wherever its `after` is, so sampled positions stand for paging through all 2,000 pages).
 */
async function pageTimes(filter: string): Promise<number[]> {
  const times: number[] = [];
  for (let sample = 0; sample < 300; sample++) {
    const position = Math.floor((sample / 300) * DOCUMENTS);
    const after = position === 0 ? "" : `doc-${String(position).padStart(7, "0")}`;
    const query = new URLSearchParams({
      limit: "50",
      ...(filter ? { status: filter } : {}),
      ...(after ? { after } : {}),
    });
    const started = performance.now();
    const response = await fetch(`${base}/v1/collections/big/documents?${query}`, { headers });
    const body = (await response.json()) as { documents: unknown[] };
    times.push(performance.now() - started);
    if (!response.ok) throw new Error(`page after ${after}: ${response.status} ${JSON.stringify(body)}`);
    if (body.documents.length === 0 && position < DOCUMENTS - 50) throw new Error(`an empty page after ${after}`);
  }
  return times;
}
for (const [label, filter] of [
  ["all documents", ""],
  ["status=failed (a tenth)", "failed"],
] as const) {
  const times = await pageTimes(filter);
  log(
    `documents list, ${label}: 300 pages of 50 from across the collection, p50 ${percentile(times, 50).toFixed(1)} ms, ` +
      `p95 ${percentile(times, 95).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms (target ≤ 50 ms p95)`,
  );
}
await admin.db.deleteFrom("tenants").where("name", "=", tenantName).execute();
await closeDbNode(admin);
await app.stop();
