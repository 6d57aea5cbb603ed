import type { Kysely } from "kysely";
import type { Database } from "../db/database.ts";
import type { JobQueue } from "../jobs/queue.ts";

/** One document version to chunk, embed and write; run by IngestWorker, in batches. */
export const INGEST_QUEUE = "ingest-document";

export interface IngestJobData {
  readonly documentId: string;
  readonly version: number;
}

/** Queues these documents' ingestion in the transaction that wrote them. */
export async function sendIngestJobs(queue: JobQueue, tx: Kysely<Database>, jobs: readonly IngestJobData[]) {
  const priority = writePriority(jobs.length);
  await queue.insert(
    tx,
    jobs.map((data) => ({ name: INGEST_QUEUE, data, priority, expireInSeconds: queue.jobExpireSeconds })),
  );
}

/**
 * The ingestion priority of a write of `documents` documents (pg-boss runs higher first, then in
 * order): one document 0, two -1, a thousand -10. A person's single upload runs ahead of a bulk
 * upload queued before it, of whatever tenant, instead of waiting for all of it; bulk uploads keep
 * their order among themselves, and every job still runs.
 */
export function writePriority(documents: number): number {
  // `|| 0`: one document is 0, not -0.
  return -Math.ceil(Math.log2(Math.max(1, documents))) || 0;
}
