import type { AddressInfo } from "node:net";
import type { ServerType } from "@hono/node-server";
import type { SpanExporter } from "@opentelemetry/sdk-trace";
import type { Hono } from "hono";
import { EventRecorder } from "./analytics/event-recorder.ts";
import type { AppEnv } from "./api/context.ts";
import { createPlatformHttp } from "./api/platform-http.ts";
import { BatchService } from "./batch/batch.service.ts";
import { ChatService } from "./chat/chat.service.ts";
import type { Config } from "./config.ts";
import { assertEmbeddingSettings } from "./db/embedding-settings.ts";
import type { Router } from "./db/router.ts";
import type { DevInferenceServer } from "./dev/dev-server.ts";
import { AdmissionControl } from "./inference/admission.ts";
import { ChatClient } from "./inference/chat-client.ts";
import { EmbeddingClient } from "./inference/embedding-client.ts";
import { createInferenceHistogram } from "./inference/inference-metrics.ts";
import type { InferenceTarget } from "./inference/openai-client.ts";
import { IngestService } from "./ingest/ingest.service.ts";
import { ImportService } from "./ingest/imports/import.service.ts";
import { JobQueue } from "./jobs/queue.ts";
import { Releasers } from "./lifecycle.ts";
import { createLogger, type Logger } from "./logger.ts";
import { createMetricsRegistry, type Registry } from "./metrics.ts";
import { SearchService, vectorIndexOf } from "./retrieval/search.service.ts";
import { RerankClient } from "./inference/rerank-client.ts";
import { startEmbedded } from "./startup/embedded.ts";
import { listen } from "./startup/http-server.ts";
import { createInferenceBackend } from "./startup/inference.ts";
import { createTopology } from "./startup/topology.ts";
import { startWorkers } from "./startup/workers.ts";
import { Quotas } from "./tenancy/quotas.ts";
import { createTracing } from "./tracing.ts";
import { TextPool } from "./text/text-pool.ts";

export interface App {
  readonly config: Config;
  readonly http: Hono<AppEnv>;
  readonly router: Router;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly ingest: IngestService;
  readonly imports: ImportService;
  readonly search: SearchService;
  readonly chat: ChatService;
  /** Checks the database, starts background loops, workers and (unless `listen: false`) the HTTP server. */
  start(options?: { listen?: boolean }): Promise<void>;
  /** The bound port after `start()`, for tests that listen on port 0. */
  port(): number;
  /** How another process reaches the inference backend (the dev server's port and key when none is configured). */
  inferenceBackend(): InferenceTarget;
  /** The embedded mode's API key for tenant "default" (undefined with a real database). */
  devApiKey(): string | undefined;
  /** The in-process dev inference server, when no backend is configured. */
  devInference(): DevInferenceServer | undefined;
  /**
   * Closes the HTTP server (in-flight requests finish), stops fetching jobs and waits for running
   * ones, then background loops, the dev backend and the pools. Safe to call twice.
   */
  stop(): Promise<void>;
}

/** The composition root: tests, the CLI and `main` all build the platform through it. */
export function createApp(config: Config, options: { logger?: Logger; spanExporter?: SpanExporter } = {}): App {
  const logger = options.logger ?? createLogger(config);
  const registry = createMetricsRegistry();
  const tracing = createTracing(config.tracing, options.spanExporter);
  // Created now, so released even if start() never runs: the spans (after everything that makes them),
  // the pools, the text pool's threads and the dev backend's.
  const releasers = new Releasers(logger);
  releasers.push("traces", () => tracing.shutdown(), { always: true });
  const { primary, monitor, router, close } = createTopology(config, logger, registry, tracing);
  releasers.push("database pools", close, { always: true });
  const queue = new JobQueue(router, config.jobs, registry, logger.child({ component: "job-queue" }));
  const textPool = new TextPool(config.ingest.text, registry);
  releasers.push("text pool", () => textPool.close(), { always: true });
  const quotas = new Quotas(router, config.quotas);
  const ingest = new IngestService(router, queue, textPool, quotas, {
    maxDocumentBytes: config.ingest.maxDocumentBytes,
  });
  const imports = new ImportService(router, queue, quotas);
  const batches = new BatchService(router, quotas, {
    maxLines: config.batches.maxLines,
    maxWindowSeconds: 24 * 3600,
    fileExpireSeconds: config.batches.fileExpireSeconds,
  });
  const inference = createInferenceBackend(config, releasers, logger);
  const inferenceSeconds = createInferenceHistogram(registry);
  const embeddings = new EmbeddingClient(inference.target, config, registry, inferenceSeconds, tracing);
  const search = new SearchService(
    router,
    (texts, tenantId) => embeddings.embed(texts, { tenantId, priority: "interactive" }),
    config.retrieval,
    vectorIndexOf(config),
    config.rerank
      ? {
          client: new RerankClient(inference.target, config.rerank, inferenceSeconds, tracing),
          candidates: config.rerank.candidates,
        }
      : null,
    registry,
  );
  const admission = new AdmissionControl(config.chat.scheduler, registry);
  const chatClient = new ChatClient(inference.target, config, admission, inferenceSeconds, tracing);
  const chat = new ChatService(router, search, chatClient, config.chat);
  const usageEvents = new EventRecorder(
    router,
    logger.child({ component: "usage-events" }),
    registry,
    config.analytics,
  );
  let devKey: string | undefined;
  const localApiKey = () => devKey;
  const services = {
    router,
    monitor,
    ingest,
    imports,
    search,
    chat,
    batches,
    quotas,
    usageEvents,
    logger,
    registry,
    tracing,
  };
  const http = createPlatformHttp(config, { ...services, localApiKey });
  let server: ServerType | undefined;
  let stopping: Promise<void> | undefined;

  return {
    config,
    http,
    router,
    registry,
    logger,
    ingest,
    imports,
    search,
    chat,
    async start({ listen: serving = true } = {}) {
      if (config.database.embedded) {
        devKey = await startEmbedded(config.database.embedded, config, primary, releasers, logger);
      }
      await assertEmbeddingSettings(primary.db, config.embedding);
      await monitor.probeAll(true);
      monitor.start();
      releasers.push("node monitor", () => monitor.stop(), { always: true });
      usageEvents.start();
      // Released after the HTTP server and the workers: no new events can arrive; every buffered one is written.
      releasers.push("usage events", () => usageEvents.stop());
      await queue.boss.start();
      releasers.push("job queue", (deadline) => {
        const remaining = Math.max(0, Math.floor((deadline - Date.now()) / 1000));
        return queue.boss.stop({ graceful: remaining > 0, wait: true, close: false, timeout: remaining * 1000 });
      });
      await inference.start();
      if (config.ingest.workerConcurrency > 0) {
        const deps = {
          queue,
          router,
          embeddings,
          textPool,
          admission,
          chat,
          usage: usageEvents,
          logger,
          registry,
          tracing,
        };
        await startWorkers(config, deps, releasers);
      }
      if (!serving) return;
      server = await listen(http, config, releasers, logger);
      logger.info({ host: config.http.host, port: this.port() }, "pgrag listening");
    },
    port() {
      const address = server?.address() as AddressInfo | null | undefined;
      if (!address) throw new Error("the HTTP server is not listening");
      return address.port;
    },
    inferenceBackend: () => inference.forOtherProcesses(),
    devInference: () => inference.devServer(),
    devApiKey: () => devKey,
    stop() {
      stopping ??= releasers.releaseAll(config.shutdownTimeoutMs);
      return stopping;
    },
  };
}
