import type { Kysely } from "kysely";
import type { Database } from "../../db/database.ts";
import type { JobQueue } from "../../jobs/queue.ts";

/** One turn of a bulk import; run by ImportRunner, which sends the next turn itself. */
export const IMPORT_QUEUE = "run-import";

export interface ImportJob {
  readonly importId: string;
  readonly tenantId: string;
}

/** Queues an import's next turn: in the transaction that set its status when there is one. */
export async function sendImportJob(queue: JobQueue, tx: Kysely<Database> | null, job: ImportJob): Promise<void> {
  await queue.send(tx, IMPORT_QUEUE, job, { expireInSeconds: queue.jobExpireSeconds });
}
