import type { Citation } from "../chat/chat.service.ts";
import { locationLabel } from "../retrieval/chunk-location.ts";
import { parseArgs } from "node:util";
import { AppError } from "../errors.ts";
import { PRIMARY_ONLY_TOKEN } from "../db/consistency-token.ts";
import { withCliApp } from "./cli-app.ts";
import { common } from "./tenant-principal.ts";

/** `pgrag ask "<question>"`: the answer streamed to the terminal, then its citations. */
export async function runAsk(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...common, mode: { type: "string", default: "hybrid" } },
  });
  const question = positionals.join(" ").trim();
  if (!question) throw new AppError("invalid_request", 'ask needs a question: pgrag ask "How do replicas work?"');
  if (!["hybrid", "vector", "bm25"].includes(values.mode))
    throw new AppError("invalid_request", "--mode takes hybrid, vector or bm25");
  await withCliApp(values.tenant, async (app, principal, config) => {
    // A one-off command has no token of earlier writes (an `ingest` a moment ago, say): it reads
    // from the primary, which has them all.
    const abort = new AbortController();
    process.once("SIGINT", () => abort.abort());
    for await (const event of app.chat.ask(
      principal,
      { question, collection: values.collection, persist: false, mode: values.mode as "hybrid" },
      PRIMARY_ONLY_TOKEN,
      abort.signal,
    )) {
      if (event.type === "token") process.stdout.write(event.text);
      if (event.type === "end") {
        process.stdout.write("\n\n");
        for (const c of event.citations) process.stdout.write(`[${c.number}] ${citedPlace(c)}\n`);
        if (!config.inference.url)
          process.stdout.write("\n(extractive answer: no model is configured; set PGRAG_INFERENCE_URL)\n");
      }
    }
  });
}

/**
 * Where a citation points: in a file with pages, its name and page or slide ("report.pdf, p. 12");
 * else the document's title (and its id when that says something more) and the characters cited.
 */
function citedPlace(c: Citation): string {
  if (c.location.pageStart !== null) return locationLabel(c.location, c.externalId);
  const name = c.title && c.title !== c.externalId ? `${c.title} — ${c.externalId}` : c.externalId;
  return `${name}, characters ${c.charStart}–${c.charEnd}`;
}
