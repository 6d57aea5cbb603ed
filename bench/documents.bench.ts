/**
 * `npm run bench:documents`: nothing is lost in extraction, and parsing does not limit ingestion.
 * SciFact's abstracts are rendered to PDF (a third of them in two columns, every page with a running
 * header and a page number) and to Word, deterministically; each set is ingested into a collection of
 * its own beside the plain text, with an empty embedding cache each time, and SciFact's judged claims
 * (the train split vendored in data/) are run against all three. Prints per format: seconds to
 * ready, chunks/s and its ratio to the text's in the same run (target ≥ 0.7), nDCG@10 in hybrid and
 * BM25 modes (target: within 0.01 of the text's), and the parser alone in pages (documents) per
 * second on one core.
 * `-- --documents N` renders only the first N abstracts (the qrels of the others then count as misses
 * in every format alike).
 */
import { parseArgs } from "node:util";
import { sql } from "kysely";
import { renderDocx, renderPdf } from "../harness/render-documents.ts";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { readBeirQueries, scoreMode } from "../src/evaluation/beir.ts";
import { readScifactCorpus, SCIFACT_DIR } from "../src/evaluation/datasets.ts";
import type { DocumentUpload } from "../src/ingest/ingest.service.ts";
import { createLogger } from "../src/logger.ts";
import { parseFile } from "../src/parsing/parse-file.ts";
import type { FileFormat } from "../src/parsing/formats.ts";
import { createAdminDbNode } from "../src/tenancy/admin-db.ts";
import { closeDbNode } from "../src/db/pools.ts";
import { adminTransaction } from "../src/tenancy/admin-transaction.ts";
import { createApiKey, ensureTenant } from "../src/tenancy/api-keys.ts";
import type { Principal } from "../src/tenancy/principal.ts";

const { values: args } = parseArgs({ options: { documents: { type: "string", default: "5183" } } });
const limit = Number(args.documents);
if (!Number.isInteger(limit) || limit < 1)
  throw new Error(`--documents takes a whole number ≥ 1, not "${args.documents}"`);

const config = loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn" });
const app = createApp(config, { logger: createLogger({ logLevel: "warn" }) });
await app.start({ listen: false });
const admin = createAdminDbNode(config);

const corpus = await readScifactCorpus(limit);
const log = (line: string) => process.stdout.write(`${line}\n`);
log(`bench:documents — ${corpus.length} SciFact abstracts as text, PDF and Word; one collection each`);

// Rendered once, before anything is timed.
const renderStarted = performance.now();
const rendered = { pdf: [] as Uint8Array[], docx: [] as Uint8Array[] };
for (const [index, doc] of corpus.entries()) {
  const document = { title: doc.title, sections: [{ paragraphs: [doc.text] }] };
  rendered.pdf.push(
    await renderPdf(document, { twoColumn: index % 3 === 0, runningHeader: "SciFact corpus · rendered by pgrag" }),
  );
  rendered.docx.push(await renderDocx(document));
}
log(`rendered in ${((performance.now() - renderStarted) / 1000).toFixed(1)} s`);

// The parser alone, on this thread: what one core parses per second.
const limits = config.ingest.text.parsing.limits;
for (const format of ["pdf", "docx"] as const) {
  const sample = rendered[format].slice(0, 500);
  let pages = 0;
  const started = performance.now();
  for (const bytes of sample) {
    const outcome = await parseFile(bytes, format, limits);
    if (outcome.kind !== "parsed") throw new Error(`a rendered ${format} did not parse: ${JSON.stringify(outcome)}`);
    pages += Math.max(1, outcome.pageStarts.length);
  }
  const seconds = (performance.now() - started) / 1000;
  const unit = format === "pdf" ? "pages" : "documents";
  log(`parser alone, one core: ${format} ${(pages / seconds).toFixed(0)} ${unit}/s (${sample.length} files)`);
}

const tenant = `bench-documents-${Date.now()}`;
const principal: Principal = await adminTransaction(app, async (tx) => {
  const tenantId = await ensureTenant(tx, tenant);
  const key = await createApiKey(tx, { tenantId, name: "bench", scopes: ["read", "write"] });
  return { tenantId, keyId: key.id, scopes: ["read", "write"], principals: null, owner: null };
});

/** Ingests one format's set into its own collection with an empty embedding cache; waits until all are settled. */
async function ingest(format: "text" | FileFormat, uploads: DocumentUpload[]) {
  const collection = `scifact-${format}`;
  await app.ingest.createCollection(principal, {
    name: collection,
    language: "english",
    chunking: { maxTokens: 512, overlapTokens: 48, minTokens: 64 },
  });
  await sql`TRUNCATE embedding_cache`.execute(admin.db);
  const started = performance.now();
  let token = null;
  for (let i = 0; i < uploads.length; i += 200) {
    ({ token } = await app.ingest.putDocuments(principal, collection, uploads.slice(i, i + 200)));
  }
  for (;;) {
    const pending = await app.ingest.listDocuments(principal, collection, { status: "pending", limit: 1 }, token);
    token = pending.observed ?? token;
    if (pending.value.length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const seconds = (performance.now() - started) / 1000;
  const failed = await app.ingest.listDocuments(principal, collection, { status: "failed", limit: 5 }, token);
  if (failed.value.length > 0)
    throw new Error(`${format}: ${failed.value[0]?.externalId} failed: ${failed.value[0]?.error}`);
  // As the owner naming the tenant: row-level security binds the owner too.
  const chunks = await admin.db.transaction().execute(async (tx) => {
    await sql`SELECT set_config('pgrag.tenant_id', ${principal.tenantId}, true)`.execute(tx);
    const { rows } = await sql<{ chunks: number }>`
      SELECT sum(d.chunk_count)::int AS chunks FROM documents d JOIN collections c ON c.id = d.collection_id
      WHERE c.tenant_id = ${principal.tenantId} AND c.name = ${collection}
    `.execute(tx);
    return rows[0]?.chunks ?? 0;
  });
  return { collection, token, seconds, chunks };
}

const sets = {
  text: corpus.map((d) => ({
    externalId: d._id,
    content: `${d.title}\n\n${d.text}`,
    contentType: "text/plain",
    title: d.title,
  })),
  // The Word files declared generic: their type is read from their bytes.
  pdf: filesOf("pdf", "application/pdf"),
  docx: filesOf("docx", "application/octet-stream"),
};

function filesOf(format: "pdf" | "docx", contentType: string): DocumentUpload[] {
  return corpus.map((d, i) => ({
    externalId: d._id,
    content: rendered[format][i] as Uint8Array,
    contentType,
    fileName: `${d._id}.${format}`,
    title: d.title,
  }));
}

const { queries, qrels } = await readBeirQueries(SCIFACT_DIR, "train");
let reference: { chunksPerSecond: number; hybrid: number; bm25: number } | undefined;
for (const format of ["text", "pdf", "docx"] as const) {
  const result = await ingest(format, sets[format]);
  const hybrid = await scoreMode(app, { principal, ...result }, queries, qrels, "hybrid");
  const bm25 = await scoreMode(app, { principal, ...result }, queries, qrels, "bm25");
  const chunksPerSecond = result.chunks / result.seconds;
  reference ??= { chunksPerSecond, hybrid: hybrid.ndcg10, bm25: bm25.ndcg10 };
  const ratio = chunksPerSecond / reference.chunksPerSecond;
  log(
    `${format.padEnd(4)}: ready in ${result.seconds.toFixed(1)} s, ${result.chunks} chunks, ${chunksPerSecond.toFixed(0)} chunks/s` +
      (format === "text" ? "" : ` (${(ratio * 100).toFixed(0)}% of text's; target ≥ 70%)`) +
      `; nDCG@10 hybrid ${hybrid.ndcg10.toFixed(3)}, bm25 ${bm25.ndcg10.toFixed(3)}` +
      (format === "text"
        ? ""
        : ` (Δ ${(hybrid.ndcg10 - reference.hybrid).toFixed(3)} / ${(bm25.ndcg10 - reference.bm25).toFixed(3)}; target within 0.01)`),
  );
}
await admin.db.deleteFrom("tenants").where("name", "=", tenant).execute();
await closeDbNode(admin);
await app.stop();
