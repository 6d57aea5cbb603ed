import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import type { Hono } from "hono";
import { requireApiKey } from "./api/auth.middleware.ts";
import { EventRecorder } from "./analytics/event-recorder.ts";
import { chatRoutes } from "./api/chat.routes.ts";
import { openAiRoutes } from "./api/openai.routes.ts";
import type { AppEnv } from "./api/context.ts";
import { createHttpApp } from "./api/http-app.ts";
import { batchRoutes, FILE_UPLOAD_PATH } from "./api/batch.routes.ts";
import { usageRoutes } from "./api/usage.routes.ts";
import { IMPORT_UPLOAD_PATH, importRoutes } from "./api/import.routes.ts";
import { BatchRunner } from "./batch/batch-runner.ts";
import { BatchService } from "./batch/batch.service.ts";
import { DOCUMENT_UPLOAD_PATH, ingestRoutes } from "./api/ingest.routes.ts";
import { openApiRoutes } from "./api/openapi.ts";
import { webRoutes } from "./api/web.routes.ts";
import { searchRoutes } from "./api/search.routes.ts";
import { ChatService } from "./chat/chat.service.ts";
import type { Config } from "./config.ts";
import { assertEmbeddingSettings } from "./db/embedding-settings.ts";
import { startEmbeddedDatabase } from "./db/embedded.ts";
import { migrate } from "./db/migrate.ts";
import { ensureDevApiKey } from "./tenancy/dev-key.ts";
import { NodeMonitor } from "./db/node-monitor.ts";
import { closeDbNode, createDbNode, type DbNode } from "./db/pools.ts";
import { Router } from "./db/router.ts";
import { AdmissionControl } from "./inference/admission.ts";
import { ChatClient } from "./inference/chat-client.ts";
import { createInferenceHistogram } from "./inference/inference-metrics.ts";
import {
  createDevInference,
  type DevInferenceServer,
  inProcessFetch,
  startDevInferenceServer,
} from "./dev/dev-server.ts";
import { EmbeddingClient } from "./inference/embedding-client.ts";
import { Quotas } from "./tenancy/quotas.ts";
import type { InferenceTarget } from "./inference/openai-client.ts";
import { IngestService } from "./ingest/ingest.service.ts";
import { IngestWorker } from "./ingest/ingest.worker.ts";
import { ImportRunner } from "./ingest/imports/import-runner.ts";
import { ImportService } from "./ingest/imports/import.service.ts";
import { PostingsCompactor } from "./postings/postings-compactor.ts";
import { JobQueue } from "./jobs/queue.ts";
import { TextPool } from "./text/text-pool.ts";
import { Releasers, untilDeadline } from "./lifecycle.ts";
import { createLogger, type Logger } from "./logger.ts";
import { createMetricsRegistry, type Registry } from "./metrics.ts";
import { SearchService, vectorIndexOf } from "./retrieval/search.service.ts";
import { Authenticator } from "./tenancy/authenticator.ts";

export interface App {
  readonly config: Config;
  readonly http: Hono<AppEnv>;
  readonly router: Router;
  readonly monitor: NodeMonitor;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly ingest: IngestService;
  readonly imports: ImportService;
  readonly search: SearchService;
  readonly usageEvents: EventRecorder;
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
export function createApp(config: Config, options: { logger?: Logger } = {}): App {
  const logger = options.logger ?? createLogger(config);
  const registry = createMetricsRegistry();
  const poolOptions = {
    size: config.database.poolSize,
    applicationName: "pgrag",
    ...(config.database.embedded ? { connectionWaitMs: config.routing.probeTimeoutMs } : {}),
  };
  const primary = createDbNode("primary", "primary", config.database.primaryUrl, poolOptions);
  const replicas = config.database.replicaUrls.map((url, i) =>
    createDbNode(replicaName(url, i), "replica", url, poolOptions),
  );
  const nodes: DbNode[] = [primary, ...replicas];
  const monitor = new NodeMonitor(
    nodes,
    {
      intervalMs: config.routing.monitorIntervalMs,
      maxReplicaLagMs: config.routing.maxReplicaLagMs,
      maxBackoffMs: config.routing.breakerMaxBackoffMs,
      probeTimeoutMs: config.routing.probeTimeoutMs,
    },
    logger.child({ component: "node-monitor" }),
    registry,
  );
  const router = new Router(
    { primary, replicas },
    monitor,
    {
      consistencyWaitMs: config.routing.consistencyWaitMs,
      readFallbackToPrimary: config.routing.readFallbackToPrimary,
    },
    logger.child({ component: "router" }),
    registry,
  );
  const queue = new JobQueue(
    router,
    {
      jobExpireSeconds: config.ingest.jobExpireSeconds,
      maintenanceIntervalSeconds: config.ingest.queueMaintenanceSeconds,
    },
    registry,
    logger.child({ component: "job-queue" }),
  );
  const textPool = new TextPool(config.ingest.text, registry);
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
  // The inference backend is known before any client is built: the configured URL, or else the dev
  // backend in this process, reached without a network hop (start() also opens it on a port, for
  // other processes such as `pgrag worker`).
  const devOptions = {
    dimension: config.embedding.dimension,
    embeddingModel: config.embedding.model,
    chatModel: config.inference.chatModel,
  };
  const devBackend = config.inference.url ? undefined : createDevInference(devOptions);
  const target: InferenceTarget = devBackend
    ? {
        baseURL: "http://dev-inference.invalid/v1",
        apiKey: "in-process",
        fetch: inProcessFetch(devBackend),
      }
    : { baseURL: config.inference.url ?? "", apiKey: config.inference.apiKey };
  const inferenceSeconds = createInferenceHistogram(registry);
  const embeddings = new EmbeddingClient(target, config, registry, inferenceSeconds);
  const search = new SearchService(
    router,
    (texts, tenantId) => embeddings.embed(texts, { tenantId, priority: "interactive" }),
    config.retrieval,
    vectorIndexOf(config),
    registry,
  );
  const admission = new AdmissionControl(
    {
      maxConcurrent: config.chat.maxConcurrent,
      maxQueued: config.chat.maxQueued,
      maxWaitMs: config.chat.queueWaitMs,
      reservedForInteractive: config.chat.reservedForInteractive,
      preemptBatch: config.chat.preemptBatch,
    },
    registry,
  );
  const chatClient = new ChatClient(target, config, admission, inferenceSeconds);
  const chat = new ChatService(router, search, chatClient, config.chat);
  const usageEvents = new EventRecorder(router, logger.child({ component: "usage-events" }), registry, {
    bufferSize: config.analytics.bufferSize,
    flushIntervalMs: config.analytics.flushIntervalMs,
    retentionDays: config.analytics.retentionDays,
  });
  const auth = requireApiKey(new Authenticator(router, { cacheTtlMs: config.authCacheTtlMs }), config.rateLimit);
  const http = createHttpApp({
    logger,
    monitor,
    registry,
    bodyLimit: {
      maxBytes: config.http.maxJsonBodyBytes,
      ownLimit: new RegExp([DOCUMENT_UPLOAD_PATH, IMPORT_UPLOAD_PATH, FILE_UPLOAD_PATH].map((p) => p.source).join("|")),
    },
    routes: [
      ingestRoutes(ingest, auth, config.ingest),
      importRoutes(imports, auth, { ...config.imports, maxDocumentBytes: config.ingest.maxDocumentBytes }),
      searchRoutes(search, auth, usageEvents),
      chatRoutes(chat, auth, usageEvents),
      openAiRoutes(chat, auth, usageEvents, async (principal) => [
        ...(await ingest.listCollections(principal, null)).value.map((collection) => ({
          id: `rag:${collection.name}`,
          created: collection.createdAt,
          ownedBy: "pgrag",
        })),
        { id: config.inference.chatModel, created: new Date(0), ownedBy: "inference-backend" },
      ]),
      // A line is one request: its body is a chat request, bounded like the JSON routes' bodies.
      usageRoutes(quotas, auth),
      batchRoutes(batches, auth, {
        maxFileBytes: config.batches.maxFileBytes,
        maxLineBytes: config.http.maxJsonBodyBytes,
      }),
      openApiRoutes(config.ingest),
      webRoutes(config),
    ],
  });

  // Created now, so released even if start() never runs: the pools (last), the text pool's threads and the dev backend's.
  const releasers = new Releasers(logger);
  releasers.push("database pools", () => Promise.all(nodes.map(closeDbNode)), { always: true });
  releasers.push("text pool", () => textPool.close(), { always: true });
  if (devBackend) releasers.push("dev inference backend", () => devBackend.close(), { always: true });
  let server: ServerType | undefined;
  let devServer: DevInferenceServer | undefined;
  let devKey: string | undefined;
  let stopping: Promise<void> | undefined;

  const inferenceBackend = (): InferenceTarget => {
    if (!devBackend) return target;
    if (!devServer) throw new Error("the dev inference server is not started yet");
    return { baseURL: devServer.url, apiKey: devServer.apiKey };
  };

  return {
    config,
    http,
    router,
    monitor,
    registry,
    logger,
    ingest,
    imports,
    search,
    usageEvents,
    chat,
    async start({ listen = true } = {}) {
      if (config.database.embedded) {
        const embedded = await startEmbeddedDatabase(config.database.embedded);
        releasers.push("embedded database", () => embedded.stop());
        // The embedded default exists for trying pgrag: it migrates itself and hands out a key.
        await migrate(config, logger);
        devKey = await ensureDevApiKey(primary.db, config.database.embedded.dataDir);
        // The key itself stays out of the logs (which are shipped and kept); the CLI shows it in the terminal.
        logger.warn(
          { dataDir: config.database.embedded.dataDir },
          "embedded PostgreSQL (PGlite): for trying and developing only; set PGRAG_PRIMARY_URL (replicas/ or docker compose) for the real topology",
        );
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
      if (devBackend) {
        const dev = await startDevInferenceServer(
          { ...devOptions, apiKey: randomBytes(24).toString("base64url") },
          devBackend,
        );
        devServer = dev;
        releasers.push("dev inference server", () => dev.close());
        logger.info(
          { url: dev.url },
          "no PGRAG_INFERENCE_URL: using the in-process dev inference server (hashed embeddings, extractive answers)",
        );
      }
      if (config.ingest.workerConcurrency > 0) {
        const compactor = new PostingsCompactor(
          { queue, router, logger: logger.child({ component: "postings-compactor" }), registry },
          { bm25: config.retrieval.bm25, delaySeconds: config.ingest.compactionDelaySeconds },
        );
        await compactor.start();
        releasers.push("postings compaction", () => compactor.stop());
        const worker = new IngestWorker(
          {
            queue,
            router,
            embeddings,
            textPool,
            compactor,
            logger: logger.child({ component: "ingest-worker" }),
            registry,
          },
          {
            concurrency: config.ingest.workerConcurrency,
            writers: config.ingest.workerWriters,
            batchSize: config.ingest.workerBatchSize,
            batchBytes: config.ingest.workerBatchBytes,
            pollingIntervalSeconds: config.ingest.workerPollSeconds,
            maxChunksPerDocument: config.ingest.maxChunksPerDocument,
            leaseSeconds: config.ingest.jobExpireSeconds,
          },
        );
        await worker.start();
        releasers.push("ingestion workers", () => worker.stop());
        const importRunner = new ImportRunner(
          {
            queue,
            router,
            embeddings,
            textPool,
            logger: logger.child({ component: "import-runner" }),
            registry,
          },
          {
            ...config.imports,
            maxDocumentBytes: config.ingest.maxDocumentBytes,
            maxChunksPerDocument: config.ingest.maxChunksPerDocument,
            leaseSeconds: config.ingest.jobExpireSeconds,
            stagingLoops: config.ingest.workerWriters,
            bm25: config.retrieval.bm25,
          },
        );
        await importRunner.start();
        releasers.push("import runner", () => importRunner.stop());
      }
      if (config.ingest.workerConcurrency > 0 && config.batches.concurrency > 0) {
        const batchRunner = new BatchRunner(
          {
            router,
            admission,
            embeddings,
            chat,
            usage: usageEvents,
            logger: logger.child({ component: "batch-runner" }),
            registry,
          },
          {
            concurrency: config.batches.concurrency,
            maxAttempts: config.batches.maxAttempts,
            leaseSeconds: config.ingest.jobExpireSeconds,
            fileExpireSeconds: config.batches.fileExpireSeconds,
            pollMs: config.ingest.workerPollSeconds * 1000,
            embeddingModel: config.embedding.model,
          },
        );
        await batchRunner.start();
        releasers.push("batch runner", () => batchRunner.stop());
      }
      if (!listen) return;
      const listening = await new Promise<ServerType>((resolve, reject) => {
        const created = serve({ fetch: http.fetch, hostname: config.http.host, port: config.http.port }, () =>
          resolve(created),
        );
        created.once("error", reject);
      });
      server = listening;
      releasers.push("in-flight HTTP requests", (deadline) => closeServer(listening, deadline, logger));
      logger.info({ host: config.http.host, port: this.port() }, "pgrag listening");
    },
    port() {
      const address = server?.address() as AddressInfo | null | undefined;
      if (!address) throw new Error("the HTTP server is not listening");
      return address.port;
    },
    inferenceBackend,
    devInference: () => devServer,
    devApiKey: () => devKey,
    stop() {
      stopping ??= releasers.releaseAll(config.shutdownTimeoutMs);
      return stopping;
    },
  };
}

/** In-flight requests finish until the deadline; answers still streaming then are cut off. */
async function closeServer(server: ServerType, deadline: number, logger: Logger): Promise<void> {
  const closing = new Promise<void>((resolve) => server.close(() => resolve()));
  // Idle keep-alive sockets would hold close() open.
  (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
  if (!(await untilDeadline("in-flight HTTP requests", closing, deadline, logger))) {
    (server as { closeAllConnections?: () => void }).closeAllConnections?.();
    await closing;
  }
}

/** Names a replica after its PgBouncer database ("replica1"), else by position. */
function replicaName(url: string, index: number): string {
  const database = new URL(url).pathname.replace(/^\//, "");
  return /^[A-Za-z0-9_-]{1,63}$/.test(database) && database !== "primary" ? database : `replica${index + 1}`;
}
