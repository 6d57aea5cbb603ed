import { parseArgs } from "node:util";
import { createApp } from "../app.ts";
import { loadConfig } from "../config.ts";
import { AppError } from "../errors.ts";
import { type ConsistencyToken, laterToken } from "../db/consistency-token.ts";
import { isSettled } from "../ingest/document-status.ts";
import { collectFiles } from "./files.ts";
import { progressBar } from "./progress.ts";
import { common, principalFor } from "./tenant-principal.ts";

/** `pgrag ingest <path…>`: Markdown, text and HTML files into a collection, waiting until processed. */
export async function runIngest(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: common });
  if (positionals.length === 0)
    throw new AppError(
      "invalid_request",
      "ingest needs at least one file or folder (globs are expanded by your shell)",
    );
  const { documents, skipped } = await collectFiles(positionals);
  for (const entry of skipped) process.stderr.write(`skipped: ${entry}\n`);
  if (documents.length === 0)
    throw new AppError("invalid_request", "no PDF, Word, PowerPoint, Markdown, text or HTML files found");
  const app = createApp(loadConfig());
  await app.start({ listen: false });
  try {
    const principal = await principalFor(app, values.tenant);
    // Every read carries the newest write's token: a replica must not answer from before our writes.
    let token: ConsistencyToken | null = null;
    const saw = (written: { token: ConsistencyToken }) => {
      token = token === null ? written.token : laterToken(token, written.token);
    };
    const existing = await app.ingest.listCollections(principal, null);
    if (!existing.value.some((c) => c.name === values.collection)) {
      saw(
        await app.ingest.createCollection(principal, {
          name: values.collection,
          language: "english",
          chunking: { maxTokens: 384, overlapTokens: 48, minTokens: 64 },
        }),
      );
    }
    const failures: string[] = [];
    const uploads = documents.map((d) => ({
      externalId: d.externalId,
      fileName: d.fileName,
      contentType: d.contentType,
      content: d.bytes,
      source: d.externalId,
    }));
    for (let i = 0; i < uploads.length; i += 100) {
      const batch = uploads.slice(i, i + 100);
      try {
        saw(await app.ingest.putDocuments(principal, values.collection, batch));
      } catch {
        // One bad file must not stop the others: retry the batch's files one by one.
        for (const upload of batch) {
          await app.ingest
            .putDocuments(principal, values.collection, [upload])
            .then(saw, (e: Error) => failures.push(`${upload.externalId}: ${e.message}`));
        }
      }
    }
    const ids = new Set(uploads.map((u) => u.externalId));
    for (;;) {
      const { value } = await app.ingest.listDocuments(principal, values.collection, { limit: 1000 }, token);
      const mine = value.filter((d) => ids.has(d.externalId));
      const finished = mine.filter((d) => isSettled(d.status));
      progressBar("ingest", finished.length, ids.size - failures.filter((f) => ids.has(f.split(":")[0] ?? "")).length);
      if (finished.length >= mine.length && mine.length > 0) {
        for (const d of mine.filter((x) => x.status !== "ready")) failures.push(`${d.externalId}: ${d.error}`);
        process.stdout.write(
          `${mine.filter((x) => x.status === "ready").length} documents ready in collection "${values.collection}" of tenant "${values.tenant}"\n`,
        );
        break;
      }
      if (mine.length === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    for (const failure of failures) process.stderr.write(`failed: ${failure}\n`);
    if (failures.length > 0) process.exitCode = 1;
  } finally {
    await app.stop();
  }
}
