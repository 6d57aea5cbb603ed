import { parseArgs } from "node:util";
import { createApp } from "../app.ts";
import { loadConfig } from "../config.ts";
import { evaluateBeir } from "../evaluation/beir.ts";
import { SCIFACT_DIR } from "../evaluation/datasets.ts";
import type { SearchMode } from "../retrieval/search.service.ts";
import { UsageError } from "./usage.ts";

/** `pgrag eval`: a BEIR folder ingested and scored per search mode (and with and without the reranker, if one is configured). */
export async function runEval(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      dataset: { type: "string" },
      split: { type: "string", default: "train" },
      modes: { type: "string", default: "bm25,vector,hybrid" },
      limit: { type: "string" },
    },
  });
  const modes = values.modes.split(",").map((m) => m.trim());
  const bad = modes.filter((m) => !["hybrid", "vector", "bm25"].includes(m));
  if (bad.length > 0) throw new UsageError(`--modes takes hybrid, vector, bm25; not ${bad.join(", ")}`);
  const app = createApp(loadConfig({ PGRAG_LOG_LEVEL: "warn", ...process.env }));
  await app.start({ listen: false });
  try {
    const results = await evaluateBeir(app, {
      dataset: values.dataset ?? SCIFACT_DIR,
      split: values.split,
      modes: modes as SearchMode[],
      ...(values.limit ? { queryLimit: Number(values.limit) } : {}),
      log: (line) => process.stdout.write(`${line}\n`),
    });
    process.stdout.write("                              quality (k=200)         latency k=10       latency k=200\n");
    process.stdout.write("mode        queries  nDCG@10  Recall@100      p50 ms  p95 ms     p50 ms  p95 ms\n");
    const ms = (value: number) => value.toFixed(1).padStart(6);
    for (const r of results) {
      process.stdout.write(
        `${(r.reranked ? `${r.mode}+rerank` : r.mode).padEnd(11)} ${String(r.queries).padStart(7)}  ${r.ndcg10.toFixed(4)}   ${r.recall100.toFixed(4)}      ${ms(r.p50Ms)}  ${ms(r.p95Ms)}     ${ms(r.deepP50Ms)}  ${ms(r.deepP95Ms)}\n`,
      );
    }
    process.stdout.write(
      "(k=10 is the API's default query, its embedding included; the k=200 pass finds query embeddings cached;\n" +
        " +rerank: the reranker ordered the top PGRAG_RERANK_CANDIDATES fused candidates)\n",
    );
  } finally {
    await app.stop();
  }
}
