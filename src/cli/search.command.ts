import { locationLabel } from "../retrieval/chunk-location.ts";
import { parseArgs } from "node:util";
import { PRIMARY_ONLY_TOKEN } from "../db/consistency-token.ts";
import { AppError } from "../errors.ts";
import { withCliApp } from "./cli-app.ts";
import { common } from "./tenant-principal.ts";

/** `pgrag search "<query>"`: the best chunks, one a line: rank, score, document, and the start of the text. */
export async function runSearch(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...common, mode: { type: "string", default: "hybrid" }, k: { type: "string", default: "5" } },
  });
  const query = positionals.join(" ").trim();
  if (!query) throw new AppError("invalid_request", 'search needs a query: pgrag search "read replicas"');
  if (!["hybrid", "vector", "bm25"].includes(values.mode))
    throw new AppError("invalid_request", "--mode takes hybrid, vector or bm25");
  const k = Number(values.k);
  if (!Number.isInteger(k) || k < 1 || k > 100) throw new AppError("invalid_request", "--k takes 1 to 100");
  await withCliApp(values.tenant, async (app, principal) => {
    const outcome = await app.search.search(
      principal,
      { query, collections: [values.collection], mode: values.mode as "hybrid", k },
      PRIMARY_ONLY_TOKEN,
    );
    if (outcome.hits.length === 0) process.stderr.write("nothing found\n");
    for (const [i, hit] of outcome.hits.entries()) {
      const text = hit.chunk.content.replace(/\s+/g, " ").slice(0, 100);
      const where = locationLabel(hit.chunk.location, hit.chunk.title ?? hit.chunk.externalId);
      process.stdout.write(`${i + 1}\t${hit.score.toFixed(4)}\t${hit.chunk.externalId}\t${where}\t${text}\n`);
    }
  });
}
