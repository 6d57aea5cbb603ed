import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { type App, createApp } from "../app.ts";
import { loadConfig } from "../config.ts";
import type { ConsistencyToken } from "../db/consistency-token.ts";
import { AppError } from "../errors.ts";
import { importDocumentsOf } from "../ingest/imports/import-lines.ts";
import type { Principal } from "../tenancy/principal.ts";
import { progressBar } from "./progress.ts";
import { common, principalFor } from "./tenant-principal.ts";

const POLL_MS = 500;

/**
 * `pgrag import <file.jsonl|folder>`: each JSON Lines file becomes one import into the collection
 * (created if new), streamed from disk; a progress bar follows it to the end. The import runs in
 * this process's workers, or in `pgrag worker` processes when this one has none.
 */
export async function runImport(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: common });
  const [path] = positionals;
  if (path === undefined || positionals.length > 1) {
    throw new AppError("invalid_request", "import takes one JSON Lines file, or a folder of them");
  }
  const files = await jsonLinesFiles(path);
  const config = loadConfig();
  const app = createApp(config);
  await app.start({ listen: false });
  try {
    const principal = await principalFor(app, values.tenant);
    const existing = await app.ingest.listCollections(principal, null);
    if (!existing.value.some((c) => c.name === values.collection)) {
      await app.ingest.createCollection(principal, {
        name: values.collection,
        language: "english",
        chunking: { maxTokens: 384, overlapTokens: 48, minTokens: 64 },
      });
    }
    for (const file of files) {
      const lines = importDocumentsOf(Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>, {
        ...config.imports,
        maxDocumentBytes: config.ingest.maxDocumentBytes,
        what: "PGRAG_IMPORT_MAX_BYTES",
      });
      const started = await app.imports.upload(principal, values.collection, lines);
      const finished = await follow(app, principal, values.collection, started.value.id, started.token);
      for (const failure of finished.failures) {
        process.stderr.write(`failed: line ${failure.line} (${failure.externalId}): ${failure.error}\n`);
      }
      if (finished.status === "failed") throw new AppError("unprocessable", `${file}: ${finished.error}`);
      process.stdout.write(
        `${file}: ${finished.documentsStaged} documents imported, ${finished.documentsUnchanged} unchanged, ` +
          `${finished.documentsFailed} failed (${finished.target === "own_partition" ? "a partition of its own" : "appended"})\n`,
      );
      if (finished.documentsFailed > 0) process.exitCode = 1;
    }
  } finally {
    await app.stop();
  }
}

/**
 * Polls the import until it ends, drawing its progress. Each read carries a consistency token — the
 * upload's, then the position the last read saw — so a replica behind the upload never answers that
 * the import does not exist, nor shows progress going backwards.
 */
async function follow(
  app: App,
  principal: Principal,
  collection: string,
  importId: string,
  uploaded: ConsistencyToken,
) {
  let token = uploaded;
  for (;;) {
    const { value, observed } = await app.imports.getImport(principal, collection, importId, token);
    token = observed ?? token;
    const handled = value.documentsStaged + value.documentsUnchanged + value.documentsFailed;
    if (value.status === "completed" || value.status === "failed") {
      progressBar(value.status, handled, value.documentsSeen);
      return value;
    }
    progressBar(value.status, handled, value.documentsSeen);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function jsonLinesFiles(path: string): Promise<string[]> {
  const info = await stat(path).catch(() => {
    throw new AppError("not_found", `no file or folder "${path}"`);
  });
  if (info.isFile()) return [path];
  const names = (await readdir(path)).filter((n) => /\.(jsonl|ndjson)$/.test(n)).sort();
  if (names.length === 0) throw new AppError("invalid_request", `no .jsonl or .ndjson files in "${path}"`);
  return names.map((n) => join(path, n));
}
