import { afterAll, expect, onTestFinished } from "vitest";
import { type App, createApp } from "../../src/app.ts";
import { type Config, loadConfig } from "../../src/config.ts";
import { createLogger, type Logger } from "../../src/logger.ts";
import type { SpanExporter } from "@opentelemetry/sdk-trace";
import { TEST_ENV_FILE } from "./cluster.ts";

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({ PGRAG_ENV_FILE: TEST_ENV_FILE, PGRAG_LOG_LEVEL: "silent", ...overrides });
}

/** Apps started by startTestApp and not yet stopped (the leak check reads them). */
export const runningApps = new Set<App>();

/**
 * An app on the test topology. Started inside a test, it is stopped when that test finishes (so its
 * workers cannot take the next test's jobs); started at file level, after the file. It runs no
 * ingestion workers unless `workers` asks for them (or the overrides set PGRAG_WORKER_CONCURRENCY).
 */
export async function startTestApp(
  overrides: Record<string, string> = {},
  options: { listen?: boolean; workers?: boolean; spanExporter?: SpanExporter; logger?: Logger } = {},
): Promise<App> {
  const config = testConfig({
    PGRAG_PORT: "0",
    ...(options.workers ? {} : { PGRAG_WORKER_CONCURRENCY: "0" }),
    ...overrides,
  });
  const app = createApp(config, {
    logger:
      options.logger ??
      createLogger({ logLevel: (process.env.PGRAG_TEST_LOG_LEVEL as Config["logLevel"]) ?? "silent" }),
    ...(options.spanExporter ? { spanExporter: options.spanExporter } : {}),
  });
  const stop = async () => {
    await app.stop();
    runningApps.delete(app);
  };
  if (expect.getState().currentTestName === undefined) afterAll(stop);
  else onTestFinished(stop);
  runningApps.add(app);
  await app.start({ listen: options.listen ?? false });
  return app;
}

/** The settings with which another process uses `app`'s inference backend (its dev server's port and key). */
export function inferenceSettings(app: App): Record<string, string> {
  const backend = app.inferenceBackend();
  return { PGRAG_INFERENCE_URL: backend.baseURL, PGRAG_INFERENCE_API_KEY: backend.apiKey };
}

/** Each database node's state as `/readyz` reports it (a fresh probe at most once a second). */
export async function nodeStates(app: App): Promise<Record<string, string>> {
  const body = (await (await app.http.request("/readyz")).json()) as { nodes: { name: string; state: string }[] };
  return Object.fromEntries(body.nodes.map((node) => [node.name, node.state]));
}
