import pLimit from "p-limit";
import type PgBoss from "pg-boss";
import { Counter, Gauge, Histogram } from "prom-client";
import type { Router } from "../db/router.ts";
import { type EmbeddingClient, EmbeddingDimensionError } from "../inference/embedding-client.ts";
import { AppError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { ParsedDocument } from "../parsing/parsed-document.ts";
import type { TextPool } from "../text/text-pool.ts";
import { chunkWithinLimit, type DocumentJobDeps, embedChunks } from "./chunk-embeddings.ts";
import { type DocumentTexts, NeedsOcrError } from "./document-text.ts";
import {
  deleteChunksOf,
  type EmbeddedChunk,
  insertChunksWithPostings,
  type LocatedChunk,
} from "./chunks.repository.ts";
import { adjustCollectionStats, holdCollection, rowToCollection } from "../collections/collections.repository.ts";
import {
  documentSizes,
  documentsToIngest,
  documentTenants,
  lockDocuments,
  markDocumentFailed,
  markIngestionStage,
  markDocumentsReady,
} from "./documents.repository.ts";
import type { PollLoop } from "../jobs/poll-loop.ts";
import { queueLoop } from "../jobs/poll-loop.ts";
import type { PostingsCompactor } from "../postings/postings-compactor.ts";
import { withRenewedLeases } from "../jobs/job-leases.ts";
import { slicesWithinBudget } from "../jobs/slices.ts";
import { INGEST_QUEUE, type IngestJobData } from "./ingest-document.job.ts";

export interface IngestWorkerOptions {
  /** Concurrent fetch loops in this process. */
  readonly concurrency: number;
  /**
   * Write transactions at once (at most `concurrency`): the loops beyond it load, chunk and embed
   * their next batch while these write, so the database always has this many writers busy.
   */
  readonly writers: number;
  /** Jobs fetched together: their chunks share embedding batches. */
  readonly batchSize: number;
  /** Document bytes loaded at once: a batch beyond it is processed in slices (slicesWithinBudget). */
  readonly batchBytes: number;
  readonly pollingIntervalSeconds: number;
  readonly maxChunksPerDocument: number;
  /** The jobs' expiry (PGRAG_INGEST_JOB_EXPIRE_SECONDS): a running batch renews its leases three times per it. */
  readonly leaseSeconds: number;
}

interface PendingDocument {
  readonly job: PgBoss.JobWithMetadata<IngestJobData>;
  readonly documentId: string;
  readonly version: number;
  readonly tenantId: string;
  readonly collectionId: string;
  readonly language: string;
  readonly metadata: unknown;
  readonly chunks: readonly LocatedChunk[];
  /** A file's text, parsed for this version: stored with the chunks. */
  readonly parsed: ParsedDocument | null;
}

const versionOf = (doc: PendingDocument) => ({ id: doc.documentId, version: doc.version });

/**
 * Turns pending documents into chunks, embeddings and postings. At-least-once: a job may run twice
 * (a worker died after writing), so the write replaces the document's chunks wholesale and only when
 * the document is still at the job's version. Each document's new chunks become visible at once,
 * in one transaction, and its old ones disappear in the same one.
 */
export class IngestWorker {
  readonly #boss: PgBoss;
  readonly #router: Router;
  readonly #embeddings: EmbeddingClient;
  readonly #textPool: TextPool;
  readonly #texts: DocumentTexts;
  readonly #logger: Logger;
  readonly #compactor: PostingsCompactor;
  readonly #options: IngestWorkerOptions;
  /**
   * One fetch loop per unit of concurrency. pg-boss's own work() is not used: it fails a job whose
   * handler outlasts the job's expiry while the handler goes on, so a long batch would run twice.
   * Here a running batch renews its jobs' leases instead, and only a worker that died stops renewing
   * (its jobs then expire and run again).
   */
  readonly #loops: PollLoop<PgBoss.JobWithMetadata<IngestJobData>>[];
  readonly #processed: Counter<"outcome">;
  readonly #stageSeconds: Histogram<"stage">;
  readonly #writeSlots: ReturnType<typeof pLimit>;
  readonly #writesInProgress: Gauge;

  constructor(deps: DocumentJobDeps & { readonly compactor: PostingsCompactor }, options: IngestWorkerOptions) {
    this.#texts = deps.texts;
    this.#compactor = deps.compactor;
    this.#boss = deps.queue.boss;
    this.#router = deps.router;
    this.#embeddings = deps.embeddings;
    this.#textPool = deps.textPool;
    this.#logger = deps.logger;
    this.#options = options;
    this.#writeSlots = pLimit(options.writers);
    this.#processed = new Counter({
      name: "pgrag_ingest_documents_total",
      help: "Ingestion jobs by outcome (ready, failed, retried, skipped)",
      labelNames: ["outcome"],
      registers: [deps.registry],
    });
    this.#writesInProgress = new Gauge({
      name: "pgrag_ingest_writes_in_progress",
      help: "Ingestion write transactions running now (at most PGRAG_WORKER_WRITERS)",
      registers: [deps.registry],
    });
    this.#stageSeconds = new Histogram({
      name: "pgrag_ingest_stage_seconds",
      help: "Time per ingestion batch stage (load, parse, chunk, embed, write)",
      labelNames: ["stage"],
      buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10],
      registers: [deps.registry],
    });
    this.#loops = Array.from({ length: options.concurrency }, () =>
      queueLoop<IngestJobData>(this.#boss, {
        name: "ingestion",
        queue: INGEST_QUEUE,
        batchSize: options.batchSize,
        intervalMs: options.pollingIntervalSeconds * 1000,
        logger: this.#logger,
        run: (jobs) => this.#runBatch(jobs),
        tracing: deps.tracing,
      }),
    );
  }

  async start(): Promise<void> {
    for (const loop of this.#loops) loop.start();
  }

  /** Stops fetching and waits for the batches in progress (the app's shutdown deadline bounds the wait). */
  async stop(): Promise<void> {
    await Promise.all(this.#loops.map((loop) => loop.stop()));
  }

  /** Processes a batch and completes it; a batch that fails goes back to the queue, for a retry with backoff. */
  async #runBatch(jobs: readonly PgBoss.JobWithMetadata<IngestJobData>[]): Promise<void> {
    const ids = jobs.map((job) => job.id);
    try {
      await withRenewedLeases(
        { router: this.#router, logger: this.#logger },
        { queue: INGEST_QUEUE, jobIds: ids, seconds: this.#options.leaseSeconds },
        () => this.processBatch(jobs),
      );
    } catch (error) {
      await this.#boss.fail(INGEST_QUEUE, ids);
      throw error;
    }
    // Jobs processBatch already failed (for a retry) are no longer active: completing leaves them be.
    await this.#boss.complete(INGEST_QUEUE, ids);
  }

  async processBatch(jobs: readonly PgBoss.JobWithMetadata<IngestJobData>[]): Promise<void> {
    // Row-level security scopes every statement to one tenant: a batch is processed tenant by
    // tenant. The tenant of each document comes from the database, not from the job's data.
    const { value: owners } = await this.#router.read({ primary: true }, (db) =>
      documentTenants(
        db,
        jobs.map((j) => j.data.documentId),
      ),
    );
    // pg-boss fetches by priority but hands the batch back in no particular order (UPDATE … RETURNING):
    // the tenant of its highest-priority job goes first, so a single upload waits for no bulk slice.
    const byTenant = new Map<string, PgBoss.JobWithMetadata<IngestJobData>[]>();
    for (const job of [...jobs].sort((a, b) => b.priority - a.priority)) {
      const tenantId = owners.get(job.data.documentId);
      if (tenantId === undefined) {
        this.#processed.inc({ outcome: "skipped" }); // deleted since it was queued
        continue;
      }
      byTenant.set(tenantId, [...(byTenant.get(tenantId) ?? []), job]);
    }
    for (const [tenantId, tenantJobs] of byTenant) await this.#processTenantBatch(tenantId, tenantJobs);
  }

  async #processTenantBatch(tenantId: string, jobs: PgBoss.JobWithMetadata<IngestJobData>[]): Promise<void> {
    const { value: sizes } = await this.#router.read({ primary: true, tenantId }, (db) =>
      documentSizes(
        db,
        jobs.map((j) => j.data.documentId),
      ),
    );
    const slices = slicesWithinBudget(jobs, (job) => sizes.get(job.data.documentId) ?? 0, this.#options.batchBytes);
    for (const slice of slices) await this.#processSlice(tenantId, slice);
  }

  async #processSlice(tenantId: string, jobs: PgBoss.JobWithMetadata<IngestJobData>[]): Promise<void> {
    const pending = await this.#timed("load", () => this.#load(tenantId, jobs));
    await this.#showStage(tenantId, pending.map(versionOf), "embedding");
    let embedded: Map<PendingDocument, EmbeddedChunk[]>;
    try {
      embedded = await this.#timed("embed", () => this.#embed(pending));
    } catch (error) {
      await Promise.all(pending.map((doc) => this.#fail(doc, error)));
      return;
    }
    // One transaction for the whole batch saves a commit (a WAL flush) per document; if it fails,
    // each document is written on its own so that one bad document cannot hold back the others.
    try {
      await this.#write(pending, embedded);
    } catch (batchError) {
      if (pending.length === 1 && pending[0]) return this.#fail(pending[0], batchError);
      for (const doc of pending) {
        try {
          await this.#write([doc], embedded);
        } catch (error) {
          await this.#fail(doc, error);
        }
      }
    }
  }

  async #load(tenantId: string, jobs: PgBoss.JobWithMetadata<IngestJobData>[]): Promise<PendingDocument[]> {
    const ids = jobs.map((j) => j.data.documentId);
    const { value: rows } = await this.#router.read({ primary: true, tenantId }, (db) => documentsToIngest(db, ids));
    const byId = new Map(rows.map((r) => [r.id, r]));
    await this.#showStage(
      tenantId,
      jobs.map((j) => ({ id: j.data.documentId, version: j.data.version })),
      "parsing",
    );
    const pending: PendingDocument[] = [];
    for (const job of jobs) {
      const row = byId.get(job.data.documentId);
      // Deleted, replaced by a newer version (whose own job will run), or already written by an
      // earlier run of this job: nothing to do.
      if (!row || row.version !== job.data.version || row.status === "ready") {
        this.#processed.inc({ outcome: "skipped" });
        continue;
      }
      const collection = rowToCollection({ ...row, id: row.collection_id, tenant_id: row.tenant_id });
      const doc: PendingDocument = {
        job,
        documentId: row.id,
        version: row.version,
        tenantId: row.tenant_id,
        collectionId: collection.id,
        language: collection.language,
        metadata: row.metadata,
        chunks: [],
        parsed: null,
      };
      try {
        const text = await this.#timed("parse", () => this.#texts.textOf(row));
        const chunks = await this.#timed("chunk", () =>
          chunkWithinLimit(this.#textPool, text, collection.chunking, this.#options.maxChunksPerDocument),
        );
        pending.push({ ...doc, chunks, parsed: text.parsed });
      } catch (error) {
        // This document alone fails (for good if it is too complex); the rest of the batch goes on.
        await this.#fail(doc, error);
      }
    }
    return pending;
  }

  #embed(pending: readonly PendingDocument[]): Promise<Map<PendingDocument, EmbeddedChunk[]>> {
    // A batch's documents are in the order their jobs were queued: its turn is its first tenant's.
    const tenantId = pending[0]?.tenantId ?? "";
    return embedChunks(this.#router, this.#embeddings, new Map(pending.map((doc) => [doc, doc.chunks])), tenantId);
  }

  /** Waits for a write slot, then writes; the write stage's time starts with the slot. */
  #write(docs: readonly PendingDocument[], embedded: Map<PendingDocument, EmbeddedChunk[]>): Promise<void> {
    return this.#writeSlots(async () => {
      this.#writesInProgress.inc();
      try {
        return await this.#timed("write", () => this.#writeTransaction(docs, embedded));
      } finally {
        this.#writesInProgress.dec();
      }
    });
  }

  async #writeTransaction(
    docs: readonly PendingDocument[],
    embedded: Map<PendingDocument, EmbeddedChunk[]>,
  ): Promise<void> {
    const { value: outcomes } = await this.#router.write({ tenantId: docs[0]?.tenantId }, async (tx) => {
      // Before any document row (see holdCollection): a delete of the collection or its tenant
      // waits for this write instead of deadlocking with it over the postings' key check.
      for (const collectionId of new Set(docs.map((d) => d.collectionId))) await holdCollection(tx, collectionId);
      const current = new Map(
        (
          await lockDocuments(
            tx,
            docs.map((d) => d.documentId),
          )
        ).map((row) => [row.id, row]),
      );
      const fresh = docs.flatMap((doc) => {
        const before = current.get(doc.documentId);
        return before?.version === doc.version ? [{ doc, before }] : [];
      });
      if (fresh.length === 0) return { ready: 0, skipped: docs.length };
      await deleteChunksOf(
        tx,
        fresh.map(({ doc }) => doc.documentId),
      );
      const added = await insertChunksWithPostings(
        tx,
        // The access list as the locked row has it now: a change since the document was loaded counts.
        fresh.map(({ doc, before }) => ({ owner: { ...doc, access: before.access }, chunks: embedded.get(doc) ?? [] })),
      );
      const written = fresh.map(({ doc, before }) => ({
        doc,
        before,
        after: added.get(doc.documentId) ?? { chunkCount: 0, lexemeTotal: 0 },
      }));
      await markDocumentsReady(
        tx,
        written.map(({ doc, after }) => ({ id: doc.documentId, ...after, parsed: doc.parsed })),
      );
      const deltas = new Map<string, { tenantId: string; chunks: number; length: number }>();
      for (const { doc, before, after } of written) {
        const delta = deltas.get(doc.collectionId) ?? { tenantId: doc.tenantId, chunks: 0, length: 0 };
        delta.chunks += after.chunkCount - before.chunk_count;
        delta.length += after.lexemeTotal - Number(before.lexeme_total);
        deltas.set(doc.collectionId, delta);
      }
      for (const [collectionId, delta] of [...deltas.entries()].sort(([a], [b]) => a.localeCompare(b))) {
        await adjustCollectionStats(tx, collectionId, delta.tenantId, delta.chunks, delta.length);
      }
      return { ready: fresh.length, skipped: docs.length - fresh.length };
    });
    this.#processed.inc({ outcome: "ready" }, outcomes.ready);
    this.#processed.inc({ outcome: "skipped" }, outcomes.skipped);
    if (outcomes.ready > 0) {
      // The batch appended blocks of postings (and left its replaced chunks' postings): compaction
      // merges them later; a failed request only delays that, the next batch asks again.
      const collections = new Map(docs.map((d) => [d.collectionId, d.tenantId]));
      await this.#compactor
        .request([...collections].map(([collectionId, tenantId]) => ({ collectionId, tenantId })))
        .catch((error: unknown) => this.#logger.warn({ err: error }, "requesting postings compaction failed"));
    }
  }

  /**
   * A permanent error (wrong dimension, a document too complex to chunk in its budget) or a job out of retries marks the document failed with the
   * reason; anything else goes back to the queue for a retry with backoff.
   */
  async #fail(doc: PendingDocument, error: unknown): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    const permanent =
      error instanceof EmbeddingDimensionError || (error instanceof AppError && error.code === "unprocessable");
    const lastAttempt = permanent || doc.job.retryCount >= doc.job.retryLimit;
    this.#logger.warn(
      { jobId: doc.job.id, documentId: doc.documentId, error: message, lastAttempt },
      "ingestion job failed",
    );
    if (lastAttempt) {
      const status = error instanceof NeedsOcrError ? "needs_ocr" : "failed";
      await this.#router.write({ tenantId: doc.tenantId }, (tx) =>
        markDocumentFailed(tx, { id: doc.documentId, version: doc.version, error: message, status }),
      );
      this.#processed.inc({ outcome: "failed" });
      // Completed: the failure is recorded on the document, and a retry could not help.
      if (permanent) return;
    } else {
      this.#processed.inc({ outcome: "retried" });
      await this.#showStage(doc.tenantId, [versionOf(doc)], null);
    }
    await this.#boss.fail(INGEST_QUEUE, doc.job.id, { error: message });
  }

  /** Where the documents' ingestion is, for those watching; a failure to say so only costs the display. */
  async #showStage(
    tenantId: string,
    versions: readonly { id: string; version: number }[],
    stage: "parsing" | "embedding" | null,
  ): Promise<void> {
    if (versions.length === 0) return;
    await this.#router
      .write({ tenantId }, (tx) => markIngestionStage(tx, versions, stage))
      .catch((error: unknown) => this.#logger.warn({ err: error }, "showing the ingestion stage failed"));
  }

  async #timed<T>(stage: string, run: () => Promise<T>): Promise<T> {
    const end = this.#stageSeconds.startTimer({ stage });
    try {
      return await run();
    } finally {
      end();
    }
  }
}
