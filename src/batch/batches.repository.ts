import { type Kysely, type RawBuilder, type Selectable, sql } from "kysely";
import type { BatchFileTable, BatchTable, Database } from "../db/database.ts";

export type BatchEndpoint = BatchTable["endpoint"];
export type BatchStatus = BatchTable["status"];

export interface BatchFile {
  readonly id: string;
  readonly purpose: "batch" | "batch_output";
  readonly filename: string;
  readonly bytes: number;
  readonly batchId: string | null;
  readonly kind: "upload" | "output" | "error";
  readonly createdAt: Date;
  /** When it is deleted (null: never). */
  readonly expiresAt: Date | null;
}

export interface Batch {
  readonly id: string;
  readonly endpoint: BatchEndpoint;
  readonly inputFileId: string;
  readonly completionWindow: string;
  readonly status: BatchStatus;
  readonly metadata: Record<string, string> | null;
  readonly outputFileId: string | null;
  readonly errorFileId: string | null;
  readonly times: Record<
    "created" | "inProgress" | "expires" | "finalizing" | "completed" | "expired" | "cancelling" | "cancelled",
    Date | null
  >;
  readonly counts: { total: number; completed: number; failed: number };
}

export async function insertFile(
  db: Kysely<Database>,
  file: { id: string; tenantId: string; filename: string; expireSeconds: number },
): Promise<void> {
  await sql`
    INSERT INTO batch_files (id, tenant_id, purpose, filename, bytes, kind, expires_at)
    VALUES (${file.id}, ${file.tenantId}::uuid, 'batch', ${file.filename}, 0, 'upload',
            now() + make_interval(secs => ${file.expireSeconds}))
  `.execute(db);
}

/** Appends lines numbered from `first` on, and what they add to the file's size. */
export async function appendFileLines(
  db: Kysely<Database>,
  file: { id: string; tenantId: string },
  first: number,
  lines: readonly string[],
): Promise<void> {
  await sql`
    INSERT INTO batch_file_lines (file_id, tenant_id, line, text)
    SELECT ${file.id}, ${file.tenantId}::uuid, ${first}::int + n - 1, t FROM unnest(${lines}::text[]) WITH ORDINALITY AS u(t, n)
  `.execute(db);
  const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
  await db
    .updateTable("batch_files")
    .set({ bytes: sql<number>`bytes + ${bytes}` })
    .where("id", "=", file.id)
    .execute();
}

/** Sets when a file is deleted: `seconds` after it was made. */
export async function setFileExpiry(db: Kysely<Database>, id: string, seconds: number): Promise<void> {
  await sql`UPDATE batch_files SET expires_at = created_at + make_interval(secs => ${seconds}) WHERE id = ${id}`.execute(
    db,
  );
}

/**
 * Locks a file row against deletion (shared: a batch being made over it) or for it (exclusive: a
 * delete that checks no unfinished batch reads it). False when there is no such file.
 */
export async function lockFile(db: Kysely<Database>, id: string, mode: "share" | "update"): Promise<boolean> {
  const { rows } = await sql`
    SELECT 1 FROM batch_files WHERE id = ${id} ${mode === "share" ? sql`FOR SHARE` : sql`FOR UPDATE`}
  `.execute(db);
  return rows.length > 0;
}

/** The unfinished batches whose lines are read from this file (at most 5). */
export async function batchesReading(db: Kysely<Database>, fileId: string): Promise<string[]> {
  const rows = await db
    .selectFrom("batches")
    .select("id")
    .where("input_file_id", "=", fileId)
    .where("status", "in", ["in_progress", "finalizing", "cancelling"])
    .orderBy("created_at")
    .limit(5)
    .execute();
  return rows.map((r) => r.id);
}

/** Deletes a file and its lines; false when there is none. */
export async function deleteFile(db: Kysely<Database>, id: string): Promise<boolean> {
  const deleted = await db.deleteFrom("batch_files").where("id", "=", id).returning("id").execute();
  return deleted.length > 0;
}

/** Deletes up to `limit` expired files of every tenant (a cross-tenant door, migration 17); how many went. */
export async function deleteExpiredFiles(db: Kysely<Database>, limit: number): Promise<number> {
  const { rows } = await sql<{ n: number }>`SELECT pgrag_delete_expired_files(${limit}::int) AS n`.execute(db);
  return rows[0]?.n ?? 0;
}

/** The tenant's files, newest first, `limit` after the file `after` (OpenAI's list order and cursor). */
export async function listFiles(
  db: Kysely<Database>,
  page: { after: string | null; limit: number; purpose: string | null },
): Promise<BatchFile[]> {
  const { rows } = await sql<FileRow>`
    SELECT * FROM batch_files f
    WHERE (${page.purpose}::text IS NULL OR f.purpose = ${page.purpose})
      AND (f.expires_at IS NULL OR f.expires_at > now())
      AND (${page.after}::text IS NULL OR (f.created_at, f.id) < (SELECT a.created_at, a.id FROM batch_files a WHERE a.id = ${page.after}))
    ORDER BY f.created_at DESC, f.id DESC
    LIMIT ${page.limit}
  `.execute(db);
  return rows.map(toFile);
}

type FileRow = Selectable<BatchFileTable>;
const toFile = (r: FileRow): BatchFile => ({
  id: r.id,
  purpose: r.purpose,
  filename: r.filename,
  bytes: Number(r.bytes),
  batchId: r.batch_id,
  kind: r.kind,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
});

/** A file, unless it is gone: deleted, or past its expiry (the batch runner deletes it soon after). */
export async function findFile(db: Kysely<Database>, id: string): Promise<BatchFile | undefined> {
  const row = await db
    .selectFrom("batch_files")
    .selectAll()
    .where("id", "=", id)
    .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", sql<Date>`now()`)]))
    .executeTakeFirst();
  return row && toFile(row);
}

/**
 * A file's lines, `limit` from line `after` on: an upload's as uploaded; an output file's, its
 * batch's answered lines; an error file's, its failed lines and those its batch never ran (expired
 * or cancelled), each in OpenAI's batch output format.
 */
export async function fileLines(
  db: Kysely<Database>,
  file: BatchFile,
  after: number,
  limit: number,
): Promise<{ line: number; text: string }[]> {
  if (file.kind === "upload") {
    const { rows } = await sql<{ line: number; text: string }>`
      SELECT line, text FROM batch_file_lines WHERE file_id = ${file.id} AND line > ${after} ORDER BY line LIMIT ${limit}
    `.execute(db);
    return rows;
  }
  const { rows } = await sql<{ line: number; text: string }>`
    ${resultLines(file.batchId ?? "", sql`${file.kind}`, after)} ORDER BY l.line LIMIT ${limit}
  `.execute(db);
  return rows;
}

/** A batch's result lines after `after`, as OpenAI writes them: the output file's, or the error file's. */
function resultLines(batchId: string, kind: RawBuilder<unknown>, after: number): RawBuilder<unknown> {
  return sql`
    SELECT l.line, jsonb_build_object(
             'id', 'batch_req_' || replace(l.batch_id, 'batch_', '') || '_' || l.line,
             'custom_id', l.custom_id,
             'response', CASE WHEN l.status_code IS NULL THEN NULL ELSE jsonb_build_object(
               'status_code', l.status_code, 'request_id', l.batch_id || '-' || l.line,
               'body', coalesce(l.response, jsonb_build_object('error', l.error))) END,
             'error', CASE WHEN l.state = 'succeeded' THEN NULL ELSE l.error END)::text AS text
    FROM batch_lines l
    WHERE l.batch_id = ${batchId} AND l.line > ${after}
      AND CASE WHEN ${kind} = 'output' THEN l.state = 'succeeded' ELSE l.state <> 'succeeded' END`;
}

/**
 * A batch over an uploaded file: one line per request, all pending; each line's body stays in the
 * file, read when the line is claimed (migration 18). The caller holds the file (lockFile, shared).
 */
export async function insertBatch(
  db: Kysely<Database>,
  batch: {
    id: string;
    tenantId: string;
    inputFileId: string;
    endpoint: BatchEndpoint;
    completionWindow: string;
    windowSeconds: number;
    metadata: Record<string, string> | null;
  },
): Promise<void> {
  await sql`
    INSERT INTO batches (id, tenant_id, input_file_id, endpoint, completion_window, status, metadata, expires_at)
    VALUES (${batch.id}, ${batch.tenantId}::uuid, ${batch.inputFileId}, ${batch.endpoint}, ${batch.completionWindow},
            'in_progress', ${batch.metadata === null ? null : JSON.stringify(batch.metadata)}::jsonb,
            now() + make_interval(secs => ${batch.windowSeconds}))
  `.execute(db);
  await sql`
    INSERT INTO batch_lines (batch_id, line, tenant_id, custom_id)
    SELECT ${batch.id}, f.line, f.tenant_id, f.text::jsonb ->> 'custom_id'
    FROM batch_file_lines f WHERE f.file_id = ${batch.inputFileId}
  `.execute(db);
}

/** The input file's lines whose url is not the batch's endpoint (at most 10). */
export async function linesForOtherEndpoints(
  db: Kysely<Database>,
  fileId: string,
  endpoint: BatchEndpoint,
): Promise<{ line: number; url: string }[]> {
  const { rows } = await sql<{ line: number; url: string }>`
    SELECT line, text::jsonb ->> 'url' AS url FROM batch_file_lines
    WHERE file_id = ${fileId} AND text::jsonb ->> 'url' <> ${endpoint} ORDER BY line LIMIT 10
  `.execute(db);
  return rows;
}

interface BatchRow {
  id: string;
  endpoint: BatchEndpoint;
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  metadata: Record<string, string> | null;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: Date;
  in_progress_at: Date | null;
  expires_at: Date | null;
  finalizing_at: Date | null;
  completed_at: Date | null;
  expired_at: Date | null;
  cancelling_at: Date | null;
  cancelled_at: Date | null;
  total: number;
  completed: number;
  failed: number;
}

const toBatch = (r: BatchRow): Batch => ({
  id: r.id,
  endpoint: r.endpoint,
  inputFileId: r.input_file_id,
  completionWindow: r.completion_window,
  status: r.status,
  metadata: r.metadata,
  outputFileId: r.output_file_id,
  errorFileId: r.error_file_id,
  times: {
    created: r.created_at,
    inProgress: r.in_progress_at,
    expires: r.expires_at,
    finalizing: r.finalizing_at,
    completed: r.completed_at,
    expired: r.expired_at,
    cancelling: r.cancelling_at,
    cancelled: r.cancelled_at,
  },
  counts: { total: r.total, completed: r.completed, failed: r.failed },
});

/** Why lines a cancel or expiry left unrun have no answer: not failures of the requests themselves. */
const NEVER_RAN = {
  expired: { code: "batch_expired", message: "the batch expired before this request ran" },
  cancelled: { code: "batch_cancelled", message: "the batch was cancelled before this request ran" },
} as const;

const batchColumns = sql`
  b.*, (SELECT count(*)::int FROM batch_lines l WHERE l.batch_id = b.id) AS total,
       (SELECT count(*)::int FROM batch_lines l WHERE l.batch_id = b.id AND l.state = 'succeeded') AS completed,
       (SELECT count(*)::int FROM batch_lines l WHERE l.batch_id = b.id AND l.state = 'failed'
          AND l.error->>'code' NOT IN (${sql.join(Object.values(NEVER_RAN).map((r) => sql`${r.code}`))})) AS failed`;

export async function findBatch(db: Kysely<Database>, id: string): Promise<Batch | undefined> {
  const { rows } = await sql<BatchRow>`SELECT ${batchColumns} FROM batches b WHERE b.id = ${id}`.execute(db);
  return rows[0] && toBatch(rows[0]);
}

/** The tenant's batches, newest first, after the batch `after` (a cursor, as OpenAI's list takes). */
export async function listBatches(db: Kysely<Database>, after: string | null, limit: number): Promise<Batch[]> {
  const { rows } = await sql<BatchRow>`
    SELECT ${batchColumns} FROM batches b
    WHERE ${after}::text IS NULL OR (b.created_at, b.id) < (SELECT created_at, id FROM batches WHERE id = ${after})
    ORDER BY b.created_at DESC, b.id DESC LIMIT ${limit}
  `.execute(db);
  return rows.map(toBatch);
}

/** Cancels a running batch: no line starts any more; the runner ends it once none is running. */
/**
 * Deletes a finished batch with its lines and its output and error files; false when there is no
 * such batch, or it has not finished (its lines may still be running).
 */
export async function deleteFinishedBatch(db: Kysely<Database>, id: string): Promise<boolean> {
  const { rows } = await sql<{ id: string }>`
    WITH gone AS (
      DELETE FROM batches WHERE id = ${id} AND status IN ('completed', 'failed', 'expired', 'cancelled')
      RETURNING id, output_file_id, error_file_id
    ),
    files AS (DELETE FROM batch_files f USING gone g WHERE f.id IN (g.output_file_id, g.error_file_id))
    SELECT id FROM gone
  `.execute(db);
  return rows.length > 0;
}

export async function cancelBatch(db: Kysely<Database>, id: string): Promise<boolean> {
  const { rows } = await sql<{ id: string }>`
    UPDATE batches SET status = 'cancelling', cancelling_at = now()
    WHERE id = ${id} AND status = 'in_progress' RETURNING id
  `.execute(db);
  return rows.length > 0;
}

export interface ClaimedLine {
  readonly batchId: string;
  readonly line: number;
  readonly tenantId: string;
  readonly customId: string;
  readonly body: unknown;
  readonly endpoint: BatchEndpoint;
  readonly attempt: number;
}

/** Leases up to `limit` runnable lines, tenants in turn (a cross-tenant door, migration 14). */
export async function claimLines(db: Kysely<Database>, limit: number, leaseSeconds: number): Promise<ClaimedLine[]> {
  const { rows } = await sql<{
    batch_id: string;
    line: number;
    tenant_id: string;
    custom_id: string;
    body: unknown;
    endpoint: BatchEndpoint;
    attempt: number;
  }>`SELECT * FROM pgrag_claim_batch_lines(${limit}::int, ${leaseSeconds}::int)`.execute(db);
  return rows.map((r) => ({
    batchId: r.batch_id,
    line: r.line,
    tenantId: r.tenant_id,
    customId: r.custom_id,
    body: r.body,
    endpoint: r.endpoint,
    attempt: r.attempt,
  }));
}

/** Extends the leases of lines still held at these attempts. */
export async function renewLeases(
  db: Kysely<Database>,
  lines: readonly ClaimedLine[],
  leaseSeconds: number,
): Promise<void> {
  await sql`
    UPDATE batch_lines l SET lease_until = now() + make_interval(secs => ${leaseSeconds})
    FROM unnest(${lines.map((l) => l.batchId)}::text[], ${lines.map((l) => l.line)}::int[], ${lines.map((l) => l.attempt)}::int[])
      AS t(batch_id, line, attempt)
    WHERE l.batch_id = t.batch_id AND l.line = t.line AND l.attempts = t.attempt AND l.state = 'running'
  `.execute(db);
}

export type LineResult =
  | { readonly outcome: "succeeded"; readonly statusCode: number; readonly response: unknown }
  | {
      readonly outcome: "failed";
      readonly statusCode: number | null;
      readonly error: { code: string; message: string };
    }
  | { readonly outcome: "retry"; readonly afterSeconds: number };

/**
 * Stores a line's result — only if this attempt still holds the line, so a line is answered once
 * however many runners asked the backend. Returns whether it was stored.
 */
export async function storeLineResult(db: Kysely<Database>, line: ClaimedLine, result: LineResult): Promise<boolean> {
  const held = sql`batch_id = ${line.batchId} AND line = ${line.line} AND attempts = ${line.attempt} AND state = 'running'`;
  const { rows } =
    result.outcome === "retry"
      ? await sql`
          UPDATE batch_lines SET state = 'pending', lease_until = NULL,
                                 not_before = now() + make_interval(secs => ${result.afterSeconds})
          WHERE ${held} RETURNING line`.execute(db)
      : result.outcome === "succeeded"
        ? await sql`
            UPDATE batch_lines SET state = 'succeeded', status_code = ${result.statusCode},
                                   response = ${JSON.stringify(result.response)}::jsonb, finished_at = now(), lease_until = NULL
            WHERE ${held} RETURNING line`.execute(db)
        : await sql`
            UPDATE batch_lines SET state = 'failed', status_code = ${result.statusCode},
                                   error = ${JSON.stringify(result.error)}::jsonb, finished_at = now(), lease_until = NULL
            WHERE ${held} RETURNING line`.execute(db);
  return rows.length > 0;
}

/** Batches the runner may finalize (a cross-tenant door, migration 14). */
export async function batchesToFinalize(db: Kysely<Database>): Promise<{ batchId: string; tenantId: string }[]> {
  const { rows } = await sql<{ batch_id: string; tenant_id: string }>`
    SELECT * FROM pgrag_batches_to_finalize()
  `.execute(db);
  return rows.map((r) => ({ batchId: r.batch_id, tenantId: r.tenant_id }));
}

/**
 * Ends a batch whose lines are all answered (completed), whose window passed (expired) or that was
 * cancelled (cancelled), with an output file of its answered lines and an error file of the others.
 */
export async function finalizeBatch(
  db: Kysely<Database>,
  batch: { batchId: string; tenantId: string; fileExpireSeconds: number },
): Promise<BatchStatus | null> {
  const { batchId, tenantId } = batch;
  const { rows } = await sql<{ status: BatchStatus; expired: boolean; succeeded: number; other: number }>`
    SELECT b.status, b.expires_at <= now() AS expired,
           (SELECT count(*)::int FROM batch_lines l WHERE l.batch_id = b.id AND l.state = 'succeeded') AS succeeded,
           (SELECT count(*)::int FROM batch_lines l WHERE l.batch_id = b.id AND l.state <> 'succeeded') AS other
    FROM batches b WHERE b.id = ${batchId} AND b.status IN ('in_progress', 'cancelling', 'finalizing') FOR UPDATE OF b
  `.execute(db);
  const found = rows[0];
  if (!found) return null;
  const status: BatchStatus = found.status === "cancelling" ? "cancelled" : found.expired ? "expired" : "completed";
  if (status !== "completed") {
    // Lines that will never run leave the claimable set (and its index) with the reason the error file gives.
    await sql`
      UPDATE batch_lines SET state = 'failed', error = ${JSON.stringify(NEVER_RAN[status])}::jsonb, lease_until = NULL,
                             finished_at = now()
      WHERE batch_id = ${batchId} AND state IN ('pending', 'running')
    `.execute(db);
  }
  const file = async (kind: "output" | "error") => {
    const id = `file-${crypto.randomUUID().replaceAll("-", "")}`;
    await sql`
      INSERT INTO batch_files (id, tenant_id, purpose, filename, bytes, batch_id, kind, expires_at)
      VALUES (${id}, ${tenantId}::uuid, 'batch_output', ${`${batchId}_${kind}.jsonl`}, 0, ${batchId}, ${kind},
              now() + make_interval(secs => ${batch.fileExpireSeconds}))
    `.execute(db);
    return id;
  };
  const outputId = found.succeeded > 0 ? await file("output") : null;
  const errorId = found.other > 0 ? await file("error") : null;
  const stamp = sql.raw(status === "cancelled" ? "cancelled_at" : status === "expired" ? "expired_at" : "completed_at");
  await sql`
    UPDATE batches SET status = ${status}, output_file_id = ${outputId}, error_file_id = ${errorId},
                       finalizing_at = coalesce(finalizing_at, now()), ${stamp} = now()
    WHERE id = ${batchId}
  `.execute(db);
  // A file's size is that of its content, which is final now.
  await sql`
    UPDATE batch_files f SET bytes = (SELECT coalesce(sum(octet_length(o.text) + 1), 0) FROM (${resultLines(batchId, sql`f.kind`, 0)}) o)
    WHERE f.id = any(${[outputId, errorId].filter((id) => id !== null)}::text[])
  `.execute(db);
  return status;
}
