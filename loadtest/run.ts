/**
 * `npm run loadtest -- [--scenarios search,chat,mixed,ingest] [--duration 30s] [--rate-scale 1] [--warmup 10s]
 *   [--base-url http://127.0.0.1:8080] [--api-key pgr_…] [--summary loadtest-summary.json]`
 * The Node runner of the k6 scenarios (see loadtest/README.md). Exits 1 when a threshold fails.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { formatSummary, runScenarios } from "./runner.ts";

const { values } = parseArgs({
  options: {
    scenarios: { type: "string", default: "search,chat,mixed,ingest" },
    duration: { type: "string" },
    warmup: { type: "string" },
    "rate-scale": { type: "string", default: "1" },
    "base-url": { type: "string", default: process.env.BASE_URL ?? "http://127.0.0.1:8080" },
    "api-key": { type: "string", default: process.env.API_KEY },
    collection: { type: "string", default: "loadtest" },
    summary: { type: "string", default: "loadtest-summary.json" },
  },
});
if (!values["api-key"]) {
  process.stderr.write("loadtest: give an API key with --api-key or API_KEY (pgrag keys create --tenant loadtest)\n");
  process.exit(2);
}
const summary = await runScenarios({
  baseUrl: values["base-url"],
  apiKey: values["api-key"],
  scenarios: values.scenarios.split(",").map((s) => s.trim()),
  collection: values.collection,
  rateScale: Number(values["rate-scale"]),
  ...(values.duration ? { duration: values.duration } : {}),
  ...(values.warmup ? { warmup: values.warmup } : {}),
});
writeFileSync(values.summary, `${JSON.stringify(summary, null, 2)}\n`);
process.stdout.write(`${formatSummary(summary)}\nsummary written to ${values.summary}\n`);
process.exitCode = summary.ok ? 0 : 1;
