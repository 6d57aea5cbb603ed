import { type Kysely, type RawBuilder, type Selectable, sql } from "kysely";
import type { Database, ImportTable } from "../../db/database.ts";
import { textArrayLiteral } from "../../db/array-literal.ts";
import { CHUNK_COLUMNS } from "../chunks.repository.ts";
import type { ContentType } from "../../text/content.ts";
import { withShortLockWait } from "../../db/strong-lock.ts";

type ImportRow = Selectable<ImportTable>;
export type ImportStatus = ImportRow["status"];
export type ImportTarget = NonNullable<ImportRow["target"]>;

export interface ImportSummary {
  readonly id: string;
  readonly collectionId: string;
  readonly status: ImportStatus;
  readonly target: ImportTarget | null;
  readonly documentsSeen: number;
  readonly documentsStaged: number;
  readonly documentsUnchanged: number;
  readonly documentsFailed: number;
  readonly chunksStaged: number;
  readonly error: string | null;
  readonly visibleToken: string | null;
  readonly createdAt: Date;
  readonly finishedAt: Date | null;
}

/** One line of an upload, validated. */
export interface ImportLine {
  readonly line: number;
  readonly externalId: string;
  readonly title: string | null;
  readonly source: string | null;
  readonly contentType: ContentType;
  readonly metadata: Record<string, unknown>;
  /** Who may read the document (`*`: the whole tenant); null: as stored, or the whole tenant for a new one. */
  readonly access: readonly string[] | null;
  /** Text; empty for a line that carries a file. */
  readonly content: string;
  /** A file (PDF, Word, PowerPoint) and its name, parsed when the line is staged. */
  readonly file: { readonly bytes: Buffer; readonly name: string } | null;
}

const toSummary = (r: ImportRow): ImportSummary => ({
  id: r.id,
  collectionId: r.collection_id,
  status: r.status,
  target: r.target,
  documentsSeen: r.documents_seen,
  documentsStaged: r.documents_staged,
  documentsUnchanged: r.documents_unchanged,
  documentsFailed: r.documents_failed,
  chunksStaged: r.chunks_staged,
  error: r.error,
  visibleToken: r.visible_token,
  createdAt: r.created_at,
  finishedAt: r.finished_at,
});

/** An upload whose process died leaves its import "uploading": after this long it no longer holds the collection. */
const ABANDONED_UPLOAD = "10 minutes";

/** A new import into the collection, or null while another one runs there. */
export async function insertImport(
  db: Kysely<Database>,
  target: { tenantId: string; collectionId: string },
): Promise<string | null> {
  await sql`
    UPDATE imports SET status = 'failed', error = 'the upload stopped before it ended', finished_at = now()
    WHERE collection_id = ${target.collectionId}::uuid AND status = 'uploading'
      AND updated_at < now() - ${ABANDONED_UPLOAD}::interval
  `.execute(db);
  const { rows } = await sql<{ id: string }>`
    INSERT INTO imports (tenant_id, collection_id) VALUES (${target.tenantId}::uuid, ${target.collectionId}::uuid)
    ON CONFLICT (collection_id) WHERE status NOT IN ('completed', 'failed') DO NOTHING
    RETURNING id
  `.execute(db);
  return rows[0]?.id ?? null;
}

export async function runningImportOf(db: Kysely<Database>, collectionId: string): Promise<string | null> {
  const row = await db
    .selectFrom("imports")
    .select("id")
    .where("collection_id", "=", collectionId)
    .where("status", "not in", ["completed", "failed"])
    .executeTakeFirst();
  return row?.id ?? null;
}

/**
 * Appends uploaded lines. Returns the external ids that repeat an earlier line of the same upload
 * (with both line numbers); nothing is written then.
 */
export async function appendImportLines(
  db: Kysely<Database>,
  target: { importId: string; tenantId: string },
  lines: readonly ImportLine[],
): Promise<{ externalId: string; line: number; earlier: number }[]> {
  const { rows: repeats } = await sql<{ external_id: string; line: number; earlier: number }>`
    WITH incoming AS (
      SELECT * FROM unnest(${lines.map((l) => l.line)}::int[], ${lines.map((l) => l.externalId)}::text[]) AS t(line, external_id)
    )
    SELECT i.external_id, i.line, coalesce(d.line, (SELECT min(o.line) FROM incoming o WHERE o.external_id = i.external_id)) AS earlier
    FROM incoming i LEFT JOIN import_documents d ON d.import_id = ${target.importId}::uuid AND d.external_id = i.external_id
    WHERE d.line IS NOT NULL OR i.line > (SELECT min(o.line) FROM incoming o WHERE o.external_id = i.external_id)
    ORDER BY i.line LIMIT 10
  `.execute(db);
  if (repeats.length > 0) return repeats.map((r) => ({ externalId: r.external_id, line: r.line, earlier: r.earlier }));
  await sql`
    INSERT INTO import_documents (import_id, tenant_id, line, external_id, title, source, content_type, metadata, content,
                                  file_name, original, access)
    SELECT ${target.importId}::uuid, ${target.tenantId}::uuid, t.line, t.external_id, t.title, t.source, t.content_type,
           t.metadata, t.content, t.file_name, t.original, t.access::text[]
    FROM unnest(${lines.map((l) => l.line)}::int[], ${lines.map((l) => l.externalId)}::text[],
                ${lines.map((l) => l.title)}::text[], ${lines.map((l) => l.source)}::text[],
                ${lines.map((l) => l.contentType)}::text[], ${lines.map((l) => JSON.stringify(l.metadata))}::jsonb[],
                ${lines.map((l) => l.content)}::text[], ${lines.map((l) => l.file?.name ?? null)}::text[],
                ${lines.map((l) => l.file?.bytes ?? null)}::bytea[], ${lines.map((l) => (l.access ? textArrayLiteral(l.access) : null))}::text[])
      AS t(line, external_id, title, source, content_type, metadata, content, file_name, original, access)
  `.execute(db);
  await db
    .updateTable("imports")
    .set((eb) => ({ documents_seen: eb("documents_seen", "+", lines.length), updated_at: sql`now()` }))
    .where("id", "=", target.importId)
    .execute();
  return [];
}

export async function setImportStatus(
  db: Kysely<Database>,
  importId: string,
  status: ImportStatus,
  extra: { target?: ImportTarget; error?: string } = {},
): Promise<void> {
  const finished = status === "completed" || status === "failed";
  await db
    .updateTable("imports")
    .set({
      status,
      ...(extra.target ? { target: extra.target } : {}),
      ...(extra.error !== undefined ? { error: extra.error } : {}),
      updated_at: sql`now()`,
      finished_at: finished ? sql`now()` : null,
    })
    .where("id", "=", importId)
    .execute();
}

export async function findImport(db: Kysely<Database>, importId: string): Promise<ImportSummary | undefined> {
  const row = await db.selectFrom("imports").selectAll().where("id", "=", importId).executeTakeFirst();
  return row && toSummary(row);
}

export async function listImports(db: Kysely<Database>, collectionId: string, limit: number): Promise<ImportSummary[]> {
  const rows = await db
    .selectFrom("imports")
    .selectAll()
    .where("collection_id", "=", collectionId)
    .orderBy("created_at", "desc")
    .limit(limit)
    .execute();
  return rows.map(toSummary);
}

export interface LineFailure {
  readonly line: number;
  readonly externalId: string;
  readonly error: string;
}

export async function importFailures(db: Kysely<Database>, importId: string, limit: number): Promise<LineFailure[]> {
  const rows = await db
    .selectFrom("import_documents")
    .select(["line", "external_id", "error"])
    .where("import_id", "=", importId)
    .where("state", "=", "failed")
    .orderBy("line")
    .limit(limit)
    .execute();
  return rows.map((r) => ({ line: r.line, externalId: r.external_id, error: r.error ?? "" }));
}

export async function recordVisibleToken(db: Kysely<Database>, importId: string, token: string): Promise<void> {
  await db.updateTable("imports").set({ visible_token: token }).where("id", "=", importId).execute();
}

export interface PendingLine extends ImportLine {
  /** The access the document will have: the line's, else the stored document's, else the whole tenant. */
  readonly access: readonly string[];
  /** The stored document of the same external id, if any. */
  readonly existing: {
    readonly id: string;
    readonly version: number;
    readonly unchanged: (hash: Buffer) => boolean;
  } | null;
}

/**
 * The next pending lines, in upload order, each with the stored document it would replace; of the
 * lines numbered `index` modulo `of`, so that that many loops stage one import without overlapping.
 */
export async function pendingLines(
  db: Kysely<Database>,
  target: { importId: string; collectionId: string },
  limit: number,
  share: { of: number; index: number } = { of: 1, index: 0 },
): Promise<PendingLine[]> {
  const { rows } = await sql<{
    line: number;
    external_id: string;
    title: string | null;
    source: string | null;
    content_type: ContentType;
    metadata: Record<string, unknown>;
    access: string[];
    content: string;
    file_name: string | null;
    original: Buffer | null;
    existing_id: string | null;
    existing_version: number | null;
    existing_hash: Buffer | null;
    same_fields: boolean;
    existing_ready: boolean;
  }>`
    SELECT l.line, l.external_id, l.title, l.source, l.content_type, l.metadata,
           coalesce(l.access, d.access, '{*}') AS access, l.content, l.file_name, l.original,
           d.id AS existing_id, d.version AS existing_version, d.content_hash AS existing_hash,
           (d.metadata, d.title, d.source, d.file_name, d.access)
             IS NOT DISTINCT FROM (l.metadata, coalesce(l.title, l.file_name), l.source, l.file_name,
                                   coalesce(l.access, d.access))
             AS same_fields,
           d.status = 'ready' AS existing_ready
    FROM import_documents l
    LEFT JOIN documents d ON d.collection_id = ${target.collectionId}::uuid AND d.external_id = l.external_id
    WHERE l.import_id = ${target.importId}::uuid AND l.state = 'pending' AND l.line % ${share.of}::int = ${share.index}::int
    ORDER BY l.line LIMIT ${limit}
  `.execute(db);
  return rows.map((r) => ({
    line: r.line,
    externalId: r.external_id,
    title: r.title,
    source: r.source,
    contentType: r.content_type,
    metadata: r.metadata,
    access: r.access,
    content: r.content,
    file: r.original && r.file_name !== null ? { bytes: r.original, name: r.file_name } : null,
    existing:
      r.existing_id === null
        ? null
        : {
            id: r.existing_id,
            version: r.existing_version ?? 0,
            // Identical to what is stored and ingested: nothing to import (as a PUT of the same document).
            unchanged: (hash) => r.same_fields && r.existing_ready && r.existing_hash?.equals(hash) === true,
          },
  }));
}

/** A line made a document: what it is published as. */
export interface StagedDocument {
  documentId: string;
  version: number;
  hash: Buffer;
  text: string;
  /** The type the line is published as (a file's, read from its bytes). */
  contentType: string;
  pageStarts: readonly number[] | null;
}

export type LineOutcome =
  | ({ line: number; state: "staged"; chunkCount: number; lexemeTotal: number } & StagedDocument)
  | { line: number; state: "unchanged" }
  | { line: number; state: "failed"; error: string };

/** Records a batch's outcomes and the import's progress, in the transaction that staged its chunks. */
export async function recordLineOutcomes(
  db: Kysely<Database>,
  importId: string,
  outcomes: readonly LineOutcome[],
): Promise<void> {
  const staged = outcomes.filter((o) => o.state === "staged");
  const failed = outcomes.filter((o) => o.state === "failed");
  const unchanged = outcomes.filter((o) => o.state === "unchanged");
  await sql`
    UPDATE import_documents l
    SET state = 'staged', document_id = t.document_id, version = t.version, hash = t.hash, content = t.text,
        content_type = t.content_type, chunk_count = t.chunk_count, lexeme_total = t.lexeme_total
    FROM unnest(${staged.map((o) => o.line)}::int[], ${staged.map((o) => o.documentId)}::uuid[],
                ${staged.map((o) => o.version)}::int[], ${staged.map((o) => o.hash)}::bytea[],
                ${staged.map((o) => o.text)}::text[], ${staged.map((o) => o.contentType)}::text[],
                ${staged.map((o) => o.chunkCount)}::int[], ${staged.map((o) => o.lexemeTotal)}::bigint[])
      AS t(line, document_id, version, hash, text, content_type, chunk_count, lexeme_total)
    WHERE l.import_id = ${importId}::uuid AND l.line = t.line
  `.execute(db);
  // A file's pages, one statement per file: an array of arrays cannot go through unnest.
  for (const outcome of staged) {
    if (!outcome.pageStarts) continue;
    await db
      .updateTable("import_documents")
      .set({ page_starts: [...outcome.pageStarts] })
      .where("import_id", "=", importId)
      .where("line", "=", outcome.line)
      .execute();
  }
  await sql`
    UPDATE import_documents l SET state = 'failed', error = t.error, content = '', original = NULL
    FROM unnest(${failed.map((o) => o.line)}::int[], ${failed.map((o) => o.error)}::text[]) AS t(line, error)
    WHERE l.import_id = ${importId}::uuid AND l.line = t.line
  `.execute(db);
  await sql`
    UPDATE import_documents SET state = 'unchanged', content = '', original = NULL
    WHERE import_id = ${importId}::uuid AND line = any(${unchanged.map((o) => o.line)}::int[])
  `.execute(db);
  await sql`
    UPDATE imports SET documents_staged = documents_staged + ${staged.length}::int,
                       documents_unchanged = documents_unchanged + ${unchanged.length}::int,
                       documents_failed = documents_failed + ${failed.length}::int,
                       chunks_staged = chunks_staged + ${staged.reduce((n, o) => n + o.chunkCount, 0)}::int,
                       updated_at = now()
    WHERE id = ${importId}::uuid
  `.execute(db);
}

/** The import's staging table (created on first use), as `schema.name`. */
export async function stagingTable(db: Kysely<Database>, importId: string): Promise<string> {
  const { rows } = await sql<{ name: string }>`SELECT pgrag_import_staging(${importId}::uuid)::text AS name`.execute(
    db,
  );
  return rows[0]?.name ?? "";
}

/** Whether the collection has a partition of its own already (a later import appends to it). */
export async function hasOwnPartition(db: Kysely<Database>, collectionId: string): Promise<boolean> {
  const { rows } = await sql<{ partition: string | null }>`
    SELECT pgrag_collection_partition(${collectionId}::uuid)::text AS partition
  `.execute(db);
  return rows[0]?.partition != null;
}

/** The staged chunks, and the collection's chunks in the shared partition (which would move with them). */
export async function chunksToPlace(
  db: Kysely<Database>,
  target: { importId: string; collectionId: string },
): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT (SELECT coalesce(sum(chunk_count), 0) FROM import_documents WHERE import_id = ${target.importId}::uuid AND state = 'staged')::int
         + coalesce((SELECT chunk_count FROM collection_stats WHERE collection_id = ${target.collectionId}::uuid), 0)::int AS n
  `.execute(db);
  return rows[0]?.n ?? 0;
}

/**
 * Builds the staging table's indexes, each in one pass (HNSW with parallel workers); the memory is
 * the import's (SET LOCAL: this transaction only, safe under transaction pooling).
 */
export async function buildStagingIndexes(
  db: Kysely<Database>,
  importId: string,
  maintenanceWorkMem: string,
): Promise<void> {
  await sql`SELECT set_config('maintenance_work_mem', ${maintenanceWorkMem}, true)`.execute(db);
  await withoutStatementTimeout(db);
  await sql`SELECT pgrag_import_build_indexes(${importId}::uuid)`.execute(db);
}

/**
 * Keeps the import's collection out of the shared partition from now on (see migration 16), so that
 * attaching its own partition need not scan the shared one. Waits for the collection's writes in
 * progress first; a write that comes after and finds no partition yet fails and is retried.
 */
export async function excludeFromShared(db: Kysely<Database>, target: { importId: string; collectionId: string }) {
  await lockCollectionForPlacement(db, target.collectionId);
  await withShortLockWait(db, () => sql`SELECT pgrag_import_exclude_from_shared(${target.importId}::uuid)`.execute(db));
}

/** Drops what a failed import staged; its uploaded lines go, its record and reason stay. */
export async function discardStaged(db: Kysely<Database>, importId: string): Promise<void> {
  // Its collection, if the import kept it out of the shared partition, may be written there again.
  await withShortLockWait(db, () => sql`SELECT pgrag_import_include_in_shared(${importId}::uuid)`.execute(db));
  await sql`SELECT pgrag_import_drop_staging(${importId}::uuid)`.execute(db);
  await dropUploadedLines(db, importId);
}

/**
 * Locks the collection's row exclusively: its writes (which hold a key share lock on it while they
 * write) wait for the import instead of finding it half placed.
 */
export async function lockCollectionForPlacement(db: Kysely<Database>, collectionId: string): Promise<void> {
  await sql`SELECT 1 FROM collections WHERE id = ${collectionId}::uuid FOR UPDATE`.execute(db);
}

/** The stored documents the import's staged ones replace, locked, with what they counted in the statistics. */
export async function lockReplacedDocuments(
  db: Kysely<Database>,
  target: { importId: string; collectionId: string },
): Promise<{ id: string; chunkCount: number; lexemeTotal: number }[]> {
  const { rows } = await sql<{ id: string; chunk_count: number; lexeme_total: string }>`
    SELECT d.id, d.chunk_count, d.lexeme_total
    FROM documents d JOIN import_documents l ON l.external_id = d.external_id
    WHERE l.import_id = ${target.importId}::uuid AND l.state = 'staged' AND d.collection_id = ${target.collectionId}::uuid
    ORDER BY d.id FOR UPDATE OF d
  `.execute(db);
  return rows.map((r) => ({ id: r.id, chunkCount: r.chunk_count, lexemeTotal: Number(r.lexeme_total) }));
}

/** Writes the staged documents, ready, replacing stored ones of the same external id; what they count. */
export async function writeStagedDocuments(
  db: Kysely<Database>,
  target: { importId: string; collectionId: string },
): Promise<{ chunks: number; length: number }> {
  const { rows } = await sql<{ chunks: string; length: string }>`
    WITH written AS (
      INSERT INTO documents (id, tenant_id, collection_id, external_id, title, source, content_type, metadata, access,
                             content, content_hash, file_name, page_starts, version, status, chunk_count, lexeme_total)
      SELECT l.document_id, l.tenant_id, ${target.collectionId}::uuid, l.external_id, coalesce(l.title, l.file_name),
             l.source, l.content_type, l.metadata, coalesce(l.access, stored.access, '{*}'), l.content, l.hash,
             l.file_name, l.page_starts, l.version, 'ready', l.chunk_count, l.lexeme_total
      FROM import_documents l
      LEFT JOIN documents stored ON stored.collection_id = ${target.collectionId}::uuid AND stored.external_id = l.external_id
      WHERE l.import_id = ${target.importId}::uuid AND l.state = 'staged'
      ON CONFLICT (collection_id, external_id) DO UPDATE
        SET title = excluded.title, source = excluded.source, content_type = excluded.content_type,
            metadata = excluded.metadata, access = excluded.access, content = excluded.content,
            content_hash = excluded.content_hash,
            file_name = excluded.file_name, page_starts = excluded.page_starts,
            version = greatest(documents.version + 1, excluded.version), status = 'ready', error = NULL,
            chunk_count = excluded.chunk_count, lexeme_total = excluded.lexeme_total, updated_at = now()
      RETURNING chunk_count, lexeme_total
    )
    SELECT coalesce(sum(chunk_count), 0) AS chunks, coalesce(sum(lexeme_total), 0) AS length FROM written
  `.execute(db);
  // Each published file keeps its bytes; a document now sent as text keeps none.
  await sql`
    DELETE FROM document_originals o USING import_documents l JOIN documents d
      ON d.collection_id = ${target.collectionId}::uuid AND d.external_id = l.external_id
    WHERE l.import_id = ${target.importId}::uuid AND l.state = 'staged' AND l.original IS NULL AND o.document_id = d.id
  `.execute(db);
  await sql`
    INSERT INTO document_originals (document_id, tenant_id, bytes)
    SELECT d.id, d.tenant_id, l.original
    FROM import_documents l JOIN documents d ON d.collection_id = ${target.collectionId}::uuid AND d.external_id = l.external_id
    WHERE l.import_id = ${target.importId}::uuid AND l.state = 'staged' AND l.original IS NOT NULL
    ON CONFLICT (document_id) DO UPDATE SET bytes = excluded.bytes
  `.execute(db);
  return { chunks: Number(rows[0]?.chunks ?? 0), length: Number(rows[0]?.length ?? 0) };
}

/** Points staged chunks at their document's current id and version: it may have been written or deleted meanwhile. */
export async function repointStagedChunks(
  db: Kysely<Database>,
  target: { importId: string; collectionId: string; staging: string },
): Promise<void> {
  await sql`
    UPDATE ${sql.table(target.staging)} s SET document_id = d.id, document_version = d.version
    FROM import_documents l JOIN documents d ON d.collection_id = ${target.collectionId}::uuid AND d.external_id = l.external_id
    WHERE l.import_id = ${target.importId}::uuid AND l.state = 'staged' AND s.document_id = l.document_id
      AND (s.document_id, s.document_version) IS DISTINCT FROM (d.id, d.version)
  `.execute(db);
}

/**
 * Makes the staging table the collection's own partition: the collection's chunks move into it from
 * the shared partition, which is then proven free of them under a lock that lets reads and writes go
 * on, so that attaching (which must lock it exclusively) holds that lock only to the commit.
 */
export async function attachAsOwnPartition(
  db: Kysely<Database>,
  target: { importId: string; collectionId: string; staging: string },
): Promise<void> {
  // One such publish at a time: two would each hold what the other's VALIDATE and ATTACH wait for.
  await sql`SELECT pg_advisory_xact_lock(hashtextextended('pgrag.attach-partition', 0))`.execute(db);
  await sql`
    INSERT INTO ${sql.table(target.staging)} (id, ${CHUNK_COLUMNS})
    SELECT id, ${CHUNK_COLUMNS} FROM chunks WHERE collection_id = ${target.collectionId}::uuid
  `.execute(db);
  await sql`DELETE FROM chunks WHERE collection_id = ${target.collectionId}::uuid`.execute(db);
  await sql`SELECT pgrag_import_validate_exclusion(${target.importId}::uuid)`.execute(db);
  await withShortLockWait(db, () => sql`SELECT pgrag_import_attach(${target.importId}::uuid)`.execute(db));
}

/** Appends the staged chunks to the collection's partition and drops the staging table. */
export async function appendStagedChunks(db: Kysely<Database>, target: { importId: string; staging: string }) {
  await sql`
    INSERT INTO chunks (id, ${CHUNK_COLUMNS}) OVERRIDING SYSTEM VALUE SELECT id, ${CHUNK_COLUMNS} FROM ${sql.table(target.staging)}
  `.execute(db);
  await sql`SELECT pgrag_import_drop_staging(${target.importId}::uuid)`.execute(db);
}

/** The staging table as a FROM item aliased `c`, for writePostingsOf. */
export function stagedChunks(staging: string): RawBuilder<unknown> {
  return sql`${sql.table(staging)} c`;
}

/** Drops the uploaded lines an import has made documents of (or given up on); the failed ones stay, as its report. */
export async function dropUploadedLines(db: Kysely<Database>, importId: string): Promise<void> {
  await db.deleteFrom("import_documents").where("import_id", "=", importId).where("state", "<>", "failed").execute();
}

/**
 * The app role's statement timeout (30 s, migration 2) bounds every request's statements; an import's
 * index build and publication grow with its size (minutes at a million chunks) and are lifted from it,
 * for their own transaction only.
 */
export async function withoutStatementTimeout(db: Kysely<Database>): Promise<void> {
  await sql`SELECT set_config('statement_timeout', '0', true)`.execute(db);
}
