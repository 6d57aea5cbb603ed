import type { EventRecorder } from "../analytics/event-recorder.ts";
import { BatchRunner } from "../batch/batch-runner.ts";
import type { ChatService } from "../chat/chat.service.ts";
import type { Config } from "../config.ts";
import type { Router } from "../db/router.ts";
import type { AdmissionControl } from "../inference/admission.ts";
import type { EmbeddingClient } from "../inference/embedding-client.ts";
import { ImportRunner } from "../ingest/imports/import-runner.ts";
import { IngestWorker } from "../ingest/ingest.worker.ts";
import { DocumentTexts } from "../ingest/document-text.ts";
import type { JobQueue } from "../jobs/queue.ts";
import type { Releasers } from "../lifecycle.ts";
import type { Logger } from "../logger.ts";
import type { Registry } from "../metrics.ts";
import type { Tracing } from "../tracing.ts";
import { PostingsCompactor } from "../postings/postings-compactor.ts";
import type { TextPool } from "../text/text-pool.ts";

export interface WorkerDeps {
  readonly queue: JobQueue;
  readonly router: Router;
  readonly embeddings: EmbeddingClient;
  readonly textPool: TextPool;
  readonly admission: AdmissionControl;
  readonly chat: ChatService;
  readonly usage: EventRecorder;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly tracing: Tracing;
}

/**
 * The background work of a process with workers (PGRAG_WORKER_CONCURRENCY > 0): postings
 * compaction, ingestion, bulk imports and, unless PGRAG_BATCH_CONCURRENCY is 0, batches. Each is
 * pushed on `releasers` once started, so a stop releases exactly what started.
 */
export async function startWorkers(config: Config, deps: WorkerDeps, releasers: Releasers): Promise<void> {
  const { queue, router, embeddings, textPool, registry, tracing } = deps;
  const logger = (component: string) => deps.logger.child({ component });
  const { ingest } = config;
  const compactor = new PostingsCompactor(
    { queue, router, logger: logger("postings-compactor"), registry },
    { bm25: config.retrieval.bm25, delaySeconds: ingest.compactionDelaySeconds },
  );
  await compactor.start();
  releasers.push("postings compaction", () => compactor.stop());
  const { parsing } = config.ingest.text;
  const texts = new DocumentTexts(textPool, {
    externalParserUrl: parsing.externalUrl,
    timeoutMs: parsing.timeoutMs,
    maxTextBytes: parsing.limits.maxTextBytes,
  });
  const worker = new IngestWorker(
    { queue, router, embeddings, textPool, texts, compactor, logger: logger("ingest-worker"), registry, tracing },
    {
      concurrency: ingest.workerConcurrency,
      writers: ingest.workerWriters,
      batchSize: ingest.workerBatchSize,
      batchBytes: ingest.workerBatchBytes,
      pollingIntervalSeconds: ingest.workerPollSeconds,
      maxChunksPerDocument: ingest.maxChunksPerDocument,
      leaseSeconds: config.jobs.jobExpireSeconds,
    },
  );
  await worker.start();
  releasers.push("ingestion workers", () => worker.stop());
  const importRunner = new ImportRunner(
    { queue, router, embeddings, textPool, texts, logger: logger("import-runner"), registry, tracing },
    {
      ...config.imports,
      maxDocumentBytes: ingest.maxDocumentBytes,
      maxChunksPerDocument: ingest.maxChunksPerDocument,
      leaseSeconds: config.jobs.jobExpireSeconds,
      stagingLoops: ingest.workerWriters,
      bm25: config.retrieval.bm25,
    },
  );
  await importRunner.start();
  releasers.push("import runner", () => importRunner.stop());
  if (config.batches.concurrency === 0) return;
  const batchRunner = new BatchRunner(
    {
      router,
      admission: deps.admission,
      embeddings,
      chat: deps.chat,
      usage: deps.usage,
      logger: logger("batch-runner"),
      registry,
      tracing,
    },
    {
      concurrency: config.batches.concurrency,
      maxAttempts: config.batches.maxAttempts,
      leaseSeconds: config.jobs.jobExpireSeconds,
      fileExpireSeconds: config.batches.fileExpireSeconds,
      pollMs: ingest.workerPollSeconds * 1000,
      embeddingModel: config.embedding.model,
    },
  );
  await batchRunner.start();
  releasers.push("batch runner", () => batchRunner.stop());
}
