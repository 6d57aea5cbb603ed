import type PgBoss from "pg-boss";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import type { Router } from "../db/router.ts";
import type { Bm25Parameters } from "./bm25-weight.ts";
import { averageLength, holdCollection } from "../collections/collections.repository.ts";
import type { PollLoop } from "../jobs/poll-loop.ts";
import { queueLoop } from "../jobs/poll-loop.ts";
import {
  BLOCK_SIZE,
  compactTerms,
  DEAD_POSTINGS_THRESHOLD,
  type DeadPostingsThreshold,
  type TermToCompact,
  termsToCompact,
} from "./postings.repository.ts";
import { COMPACTION_QUEUE, type CompactionJob, requestCompaction } from "./compact-postings.job.ts";
import type { JobQueue } from "../jobs/queue.ts";
import { isSerializationFailure } from "../db/connection-errors.ts";

/** Terms rewritten per statement (one transaction each, so locks are short). */
const TERMS_PER_STATEMENT = 200;
/** How often an idle compactor asks for work. */
const POLL_MS = 2_000;
/** Terms per job; a collection with more gets another job, so one job never runs for long. */
const TERMS_PER_JOB = 20_000;

/**
 * Background compaction of BM25 postings (see migration 11): writes append small unsorted blocks;
 * this job merges them into weight-sorted blocks of BLOCK_SIZE, and drops deleted chunks' postings
 * once there are enough of them. Requested after each ingestion batch, to start `delaySeconds` later;
 * pg-boss keeps at most one job waiting and one running per collection, so a burst of batches is
 * compacted once, after the burst, instead of competing with its writes for the same cores. Search is
 * exact whatever the state of
 * compaction; only its speed and the postings' size depend on it.
 */
export class PostingsCompactor {
  readonly #boss: PgBoss;
  readonly #queue: JobQueue;
  readonly #router: Router;
  readonly #logger: Logger;
  readonly #bm25: Bm25Parameters;
  readonly #delaySeconds: number;
  readonly #rewritten: Counter;
  readonly #loop: PollLoop<PgBoss.JobWithMetadata<CompactionJob>>;

  constructor(
    deps: { queue: JobQueue; router: Router; logger: Logger; registry: Registry },
    options: { bm25: Bm25Parameters; delaySeconds: number },
  ) {
    this.#queue = deps.queue;
    this.#boss = deps.queue.boss;
    this.#router = deps.router;
    this.#logger = deps.logger;
    this.#bm25 = options.bm25;
    this.#delaySeconds = options.delaySeconds;
    this.#loop = queueLoop<CompactionJob>(this.#boss, {
      name: "postings compaction",
      queue: COMPACTION_QUEUE,
      batchSize: 1,
      intervalMs: POLL_MS,
      logger: this.#logger,
      run: async ([job]) => {
        if (!job) return;
        try {
          await this.compact(job.data);
          await this.#boss.complete(COMPACTION_QUEUE, job.id);
        } catch (error) {
          // Back to the queue, for a retry with backoff.
          await this.#boss.fail(COMPACTION_QUEUE, job.id).catch(() => undefined);
          throw error;
        }
      },
    });
    this.#rewritten = new Counter({
      name: "pgrag_postings_compacted_terms_total",
      help: "Terms whose BM25 postings blocks compaction rewrote",
      registers: [deps.registry],
    });
  }

  /** Asks for a compaction of these collections, after the delay; a no-op for one already waiting. */
  async request(jobs: readonly CompactionJob[], startAfterSeconds = this.#delaySeconds): Promise<void> {
    for (const job of jobs) {
      await requestCompaction(this.#queue, null, job, startAfterSeconds);
    }
  }

  async start(): Promise<void> {
    this.#loop.start();
  }

  async stop(): Promise<void> {
    await this.#loop.stop();
  }

  /**
   * Compacts one collection, up to TERMS_PER_JOB terms; asks for another job, continuing after the
   * last term rewritten, if more remain. (A job already waiting for the collection, asked for by a
   * later write, takes the continuation's place and makes a whole pass.)
   */
  async compact(job: CompactionJob): Promise<number> {
    const { terms, resumeAfter } = await compactCollection(this.#router, this.#bm25, job, { maxTerms: TERMS_PER_JOB });
    this.#rewritten.inc(terms);
    if (resumeAfter !== null) {
      this.#logger.info({ collectionId: job.collectionId, terms }, "postings compaction continues in a new job");
      await this.request([{ ...job, afterTerm: resumeAfter }], 0);
    }
    return terms;
  }
}

export interface CompactionOptions {
  readonly maxTerms: number;
  readonly blockSize?: number;
  readonly dead?: DeadPostingsThreshold;
}

/**
 * Rewrites the collection's terms that need it in one pass in term order (from after `afterTerm`),
 * TERMS_PER_STATEMENT at a time (each its own short transaction), until none is left or `maxTerms`
 * were rewritten. Terms before the cursor that writes append to meanwhile are left to the next job,
 * which each write asks for. Returns the terms rewritten, and where a next job resumes when
 * `maxTerms` stopped the pass (the last term rewritten; null when the pass was finished).
 */
export async function compactCollection(
  router: Router,
  bm25: Bm25Parameters,
  job: CompactionJob,
  options: CompactionOptions,
): Promise<{ terms: number; resumeAfter: string | null }> {
  let done = 0;
  let after = job.afterTerm ?? "";
  while (done < options.maxTerms) {
    const rewritten = await rewriteBatch(
      router,
      bm25,
      job,
      after,
      Math.min(TERMS_PER_STATEMENT, options.maxTerms - done),
      options,
    );
    const last = rewritten.at(-1);
    if (last === undefined) return { terms: done, resumeAfter: null };
    done += rewritten.length;
    after = last.term;
  }
  return { terms: done, resumeAfter: after };
}

/** Times a batch is tried again after its snapshot met a change (a delete of the collection, mostly). */
const SERIALIZATION_RETRIES = 3;

/**
 * Rewrites the next `limit` terms after `after` that need it, in one transaction with one snapshot
 * (see compactTerms); run again from the start when that snapshot met a concurrent change — a
 * collection deleted meanwhile is then found gone, and nothing is rewritten.
 */
async function rewriteBatch(
  router: Router,
  bm25: Bm25Parameters,
  job: CompactionJob,
  after: string,
  limit: number,
  options: CompactionOptions,
): Promise<TermToCompact[]> {
  for (let attempt = 0; ; attempt++) {
    try {
      const { value } = await router.write({ tenantId: job.tenantId, oneSnapshot: true }, async (tx) => {
        if (!(await holdCollection(tx, job.collectionId))) return [];
        const terms = await termsToCompact(tx, job.collectionId, limit, after, options.dead ?? DEAD_POSTINGS_THRESHOLD);
        if (terms.length === 0) return [];
        const avgdl = await averageLength(tx, job.collectionId);
        await compactTerms(tx, { ...job, avgdl, ...bm25 }, terms, options.blockSize ?? BLOCK_SIZE);
        return terms;
      });
      return value;
    } catch (error) {
      if (!isSerializationFailure(error) || attempt >= SERIALIZATION_RETRIES) throw error;
    }
  }
}
