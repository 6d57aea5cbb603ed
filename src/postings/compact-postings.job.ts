import type { Kysely } from "kysely";
import type { Database } from "../db/database.ts";
import type { JobQueue } from "../jobs/queue.ts";

/** A pass of postings compaction over one collection; run by PostingsCompactor. */
export const COMPACTION_QUEUE = "compact-postings";

export interface CompactionJob {
  readonly collectionId: string;
  readonly tenantId: string;
  /** A job continuing an earlier one's pass starts after the last term that one rewrote. */
  readonly afterTerm?: string;
}

/**
 * Asks for a compaction of the collection, in the caller's transaction when there is one; a no-op
 * while one is already waiting for it (one singleton per collection), so a burst of writes is
 * compacted once, after it.
 */
export async function requestCompaction(
  queue: JobQueue,
  tx: Kysely<Database> | null,
  job: CompactionJob,
  startAfterSeconds = 0,
): Promise<void> {
  await queue.send(tx, COMPACTION_QUEUE, job, { singletonKey: job.collectionId, startAfter: startAfterSeconds });
}
