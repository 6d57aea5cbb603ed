import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import type PgBoss from "pg-boss";
import { Counter } from "prom-client";
import type { Database } from "../../db/database.ts";
import { formatToken } from "../../db/consistency-token.ts";
import type { Router } from "../../db/router.ts";
import { AppError } from "../../errors.ts";
import { type EmbeddingClient, EmbeddingDimensionError } from "../../inference/embedding-client.ts";
import type { Logger } from "../../logger.ts";
import type { Bm25Parameters } from "../../postings/bm25-weight.ts";
import { chunkWithinLimit, type DocumentJobDeps, embedChunks } from "../chunk-embeddings.ts";
import { insertStagedChunks, type LocatedChunk } from "../chunks.repository.ts";
import type { DocumentTexts } from "../document-text.ts";
import { FILE_FORMATS } from "../../parsing/formats.ts";
import { type Collection, rowToCollection } from "../../collections/collections.repository.ts";
import { contentHash, normalizeContent } from "../../text/content.ts";
import {
  buildStagingIndexes,
  chunksToPlace,
  discardStaged,
  excludeFromShared,
  findImport,
  hasOwnPartition,
  type ImportTarget,
  type LineOutcome,
  type PendingLine,
  pendingLines,
  type StagedDocument,
  recordLineOutcomes,
  recordVisibleToken,
  setImportStatus,
  stagingTable,
} from "./imports.repository.ts";
import type { PollLoop } from "../../jobs/poll-loop.ts";
import { queueLoop } from "../../jobs/poll-loop.ts";
import { withRenewedLeases } from "../../jobs/job-leases.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import { IMPORT_QUEUE, type ImportJob, sendImportJob } from "./run-import.job.ts";
import { publishImport } from "./import-publication.ts";
import type { TextPool } from "../../text/text-pool.ts";

export interface ImportRunnerOptions {
  readonly batchDocuments: number;
  /** Imports run at once (PGRAG_IMPORT_RUNNERS). */
  readonly runners: number;
  /** Documents staged in one turn, after which the import goes behind those waiting (PGRAG_IMPORT_TURN_DOCUMENTS). */
  readonly turnDocuments: number;
  /** Batches of one import staged at the same time (PGRAG_WORKER_CONCURRENCY). */
  readonly stagingLoops: number;
  readonly partitionMinChunks: number;
  readonly maintenanceWorkMem: string;
  readonly maxDocumentBytes: number;
  readonly maxChunksPerDocument: number;
  /** Its jobs' expiry (PGRAG_INGEST_JOB_EXPIRE_SECONDS): a running import renews its lease three times per it. */
  readonly leaseSeconds: number;
  readonly bm25: Bm25Parameters;
}

/** How often an idle runner asks for work. */
const POLL_MS = 1_000;

/**
 * Runs bulk imports (see migration 13), `runners` at once: stage every uploaded document's chunks
 * (chunked, embedded, in transactions of a batch each, recording progress in the same transaction),
 * build the staging table's indexes once, then publish it all in one transaction. Staging goes in
 * turns of `turnDocuments`; after each the import's job goes behind the imports queued meanwhile, so
 * that a tenant's small import does not wait for another's large one to end. Every step resumes from what
 * the database says, so a restart or a crash at any point continues the import without duplicates;
 * a failure the retries cannot cure fails the import and leaves the collection as it was.
 */
export class ImportRunner {
  readonly #boss: PgBoss;
  readonly #queue: JobQueue;
  readonly #router: Router;
  readonly #embeddings: EmbeddingClient;
  readonly #textPool: TextPool;
  readonly #texts: DocumentTexts;
  readonly #logger: Logger;
  readonly #options: ImportRunnerOptions;
  readonly #finished: Counter<"outcome">;
  /** One loop per import run at once; all take jobs from the same queue. */
  readonly #loops: PollLoop<PgBoss.JobWithMetadata<ImportJob>>[];

  constructor(deps: DocumentJobDeps, options: ImportRunnerOptions) {
    this.#queue = deps.queue;
    this.#boss = deps.queue.boss;
    this.#router = deps.router;
    this.#embeddings = deps.embeddings;
    this.#textPool = deps.textPool;
    this.#texts = deps.texts;
    this.#logger = deps.logger;
    this.#options = options;
    this.#loops = Array.from({ length: Math.max(1, options.runners) }, () =>
      queueLoop<ImportJob>(this.#boss, {
        name: "import runner",
        queue: IMPORT_QUEUE,
        batchSize: 1,
        intervalMs: POLL_MS,
        logger: this.#logger,
        run: ([job]) => (job ? this.#runJob(job) : Promise.resolve()),
        tracing: deps.tracing,
      }),
    );
    this.#finished = new Counter({
      name: "pgrag_imports_total",
      help: "Bulk imports finished, by outcome (completed, failed)",
      labelNames: ["outcome"],
      registers: [deps.registry],
    });
  }

  async start(): Promise<void> {
    for (const loop of this.#loops) loop.start();
  }

  /** Stops between two batches; the import goes on in the next process (its job is sent again). */
  async stop(): Promise<void> {
    await Promise.all(this.#loops.map((loop) => loop.stop()));
  }

  async #runJob(job: PgBoss.JobWithMetadata<ImportJob>): Promise<void> {
    try {
      const done = await withRenewedLeases(
        { router: this.#router, logger: this.#logger },
        { queue: IMPORT_QUEUE, jobIds: [job.id], seconds: this.#options.leaseSeconds },
        () => this.run(job.data),
      );
      if (!done) await sendImportJob(this.#queue, null, job.data);
      await this.#boss.complete(IMPORT_QUEUE, job.id);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const permanent =
        error instanceof EmbeddingDimensionError || job.retryCount >= job.retryLimit || isUnprocessable(error);
      this.#logger.warn({ err: error, importId: job.data.importId, permanent }, "import step failed");
      if (permanent) {
        await this.#fail(job.data, message);
        await this.#boss.complete(IMPORT_QUEUE, job.id);
      } else {
        await this.#boss.fail(IMPORT_QUEUE, job.id, { error: message });
      }
    }
  }

  /** Runs the import as far as its turn goes: true when it is finished (or gone), false when its turn ended or the runner stopped between batches. */
  async run(job: ImportJob): Promise<boolean> {
    const found = await this.#read(job, async (db) => {
      const summary = await findImport(db, job.importId);
      if (!summary) return undefined;
      const row = await db
        .selectFrom("collections")
        .selectAll()
        .where("id", "=", summary.collectionId)
        .executeTakeFirst();
      return row && { summary, collection: rowToCollection(row) };
    });
    if (!found || !["queued", "embedding", "indexing"].includes(found.summary.status)) return true;
    const { summary, collection } = found;
    const staging = await this.#write(job, async (tx) => {
      if (summary.status === "queued") await setImportStatus(tx, job.importId, "embedding");
      return stagingTable(tx, job.importId);
    });
    // Chunking, embedding and writing overlap across loops; each loop stages its own share of the lines.
    const loops = Math.max(1, this.#options.stagingLoops);
    // A turn ends after turnDocuments: the job is sent again, behind the imports waiting meanwhile.
    let turn = 0;
    const staged = await Promise.all(
      Array.from({ length: loops }, async (_, index) => {
        for (;;) {
          if (this.#loops.some((loop) => loop.stopping) || turn >= this.#options.turnDocuments) return false;
          const lines = await this.#read(job, (db) =>
            pendingLines(db, { importId: job.importId, collectionId: collection.id }, this.#options.batchDocuments, {
              of: loops,
              index,
            }),
          );
          if (lines.length === 0) return true;
          turn += lines.length;
          await this.#stageBatch(job, collection, staging, lines);
        }
      }),
    );
    if (staged.includes(false)) return false;
    const placement = summary.target ?? (await this.#choosePlacement(job, collection.id));
    await this.#write(job, (tx) => setImportStatus(tx, job.importId, "indexing", { target: placement }));
    if (placement === "own_partition") {
      await this.#write(job, (tx) => buildStagingIndexes(tx, job.importId, this.#options.maintenanceWorkMem));
      await this.#write(job, (tx) => excludeFromShared(tx, { importId: job.importId, collectionId: collection.id }));
    }
    const { token } = await this.#router.write({ tenantId: job.tenantId }, (tx) =>
      publishImport(
        tx,
        { importId: job.importId, tenantId: job.tenantId, collectionId: collection.id, placement, staging },
        this.#options.bm25,
      ),
    );
    await this.#write(job, (tx) => recordVisibleToken(tx, job.importId, formatToken(token)));
    this.#finished.inc({ outcome: "completed" });
    this.#logger.info({ importId: job.importId, placement }, "import completed");
    return true;
  }

  /**
   * A collection reaching `partitionMinChunks` with this import gets a partition of its own (unless it
   * has one, which the import appends to); a smaller one appends to the shared partition.
   */
  async #choosePlacement(job: ImportJob, collectionId: string): Promise<ImportTarget> {
    return this.#read(job, async (db) => {
      if (await hasOwnPartition(db, collectionId)) return "append";
      const chunks = await chunksToPlace(db, { importId: job.importId, collectionId });
      return chunks >= this.#options.partitionMinChunks ? "own_partition" : "append";
    });
  }

  async #stageBatch(job: ImportJob, collection: Collection, staging: string, lines: readonly PendingLine[]) {
    const outcomes: LineOutcome[] = [];
    const prepared = new Map<PendingLine, StagedDocument>();
    const chunked = new Map<PendingLine, readonly LocatedChunk[]>();
    for (const line of lines) {
      try {
        // A file identical to what is stored is known by its bytes' hash, before any parsing.
        if (line.file && line.existing?.unchanged(contentHash(line.file.bytes))) {
          outcomes.push({ line: line.line, state: "unchanged" });
          continue;
        }
        const document = await this.#documentOf(line);
        if (line.existing?.unchanged(document.hash)) {
          outcomes.push({ line: line.line, state: "unchanged" });
          continue;
        }
        chunked.set(
          line,
          await chunkWithinLimit(this.#textPool, document, collection.chunking, this.#options.maxChunksPerDocument),
        );
        prepared.set(line, {
          documentId: line.existing?.id ?? randomUUID(),
          version: (line.existing?.version ?? 0) + 1,
          ...document,
        });
      } catch (error) {
        // This document alone is refused, with its reason; the import goes on. An unavailable
        // service (the external parser) is not the document's fault: the batch is tried again.
        if (!(error instanceof AppError) || error.code === "unavailable") throw error;
        outcomes.push({ line: line.line, state: "failed", error: error.message });
      }
    }
    const embedded = await embedChunks(this.#router, this.#embeddings, chunked, job.tenantId);
    await this.#write(job, async (tx) => {
      const added = await insertStagedChunks(
        tx,
        staging,
        [...prepared].map(([line, doc]) => ({
          owner: {
            tenantId: job.tenantId,
            collectionId: collection.id,
            documentId: doc.documentId,
            version: doc.version,
            language: collection.language,
            metadata: line.metadata,
            access: line.access,
          },
          chunks: embedded.get(line) ?? [],
        })),
      );
      for (const [line, doc] of prepared) {
        const totals = added.get(doc.documentId) ?? { chunkCount: 0, lexemeTotal: 0 };
        outcomes.push({ line: line.line, state: "staged", ...doc, ...totals });
      }
      await recordLineOutcomes(tx, job.importId, outcomes);
    });
  }

  /**
   * What a line is published as: its text, normalised (HTML converted), or its file's parse (a file
   * of an unknown type, or one the parsers refuse, fails the line with the reason).
   */
  async #documentOf(line: PendingLine) {
    if (!line.file) {
      const normalized = await normalizeContent(
        line.content,
        line.contentType,
        this.#options.maxDocumentBytes,
        (html) => this.#textPool.htmlToMarkdown(html),
      );
      return { ...normalized, contentType: line.contentType, pageStarts: null };
    }
    const identified = await this.#textPool.identifyFile(line.file.bytes);
    if (identified.kind === "refused") throw new AppError("unprocessable", identified.reason);
    if (identified.kind === "unknown") {
      throw new AppError(
        "unsupported_media_type",
        "content_base64 holds neither a PDF, a Word nor a PowerPoint file: send text as content",
      );
    }
    const contentType = FILE_FORMATS[identified.format].contentType;
    const { text, pageStarts } = await this.#texts.textOf({
      content: "",
      content_type: contentType,
      page_starts: null,
      original: line.file.bytes,
    });
    return { text, pageStarts, hash: contentHash(line.file.bytes), contentType };
  }

  async #fail(job: ImportJob, message: string): Promise<void> {
    await this.#write(job, async (tx) => {
      await discardStaged(tx, job.importId);
      await setImportStatus(tx, job.importId, "failed", { error: message });
    });
    this.#finished.inc({ outcome: "failed" });
  }

  async #read<T>(job: ImportJob, work: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    return (await this.#router.read({ primary: true, tenantId: job.tenantId }, work)).value;
  }

  async #write<T>(job: ImportJob, work: (tx: Kysely<Database>) => Promise<T>): Promise<T> {
    return (await this.#router.write({ tenantId: job.tenantId }, work)).value;
  }
}

/** A document too large or complex fails alone; the same error for the import itself (its publish) is for good. */
function isUnprocessable(error: unknown): boolean {
  return error instanceof AppError && error.code === "unprocessable";
}
