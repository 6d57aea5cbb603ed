import { type Kysely, sql } from "kysely";
import { textArrayLiteral } from "../db/array-literal.ts";
import type { Database, DocumentRow } from "../db/database.ts";
import type { ParsedDocument } from "../parsing/parsed-document.ts";
import { adjustCollectionStats } from "../collections/collections.repository.ts";
import { deleteChunksOf } from "./chunks.repository.ts";

export type DocumentStatus = DocumentRow["status"];

export interface DocumentSummary {
  readonly id: string;
  readonly externalId: string;
  readonly collection: string;
  readonly title: string | null;
  readonly source: string | null;
  readonly contentType: string;
  readonly fileName: string | null;
  readonly metadata: unknown;
  readonly access: readonly string[];
  readonly version: number;
  readonly status: DocumentStatus;
  /** Where a pending document's ingestion is: parsing, embedding, or null while queued. */
  readonly stage: "parsing" | "embedding" | null;
  readonly error: string | null;
  readonly chunkCount: number;
  readonly updatedAt: Date;
}

export interface DocumentInput {
  readonly externalId: string;
  readonly title: string | null;
  readonly source: string | null;
  readonly contentType: string;
  readonly metadata: Record<string, unknown>;
  /** Who may read it; null: the whole tenant for a new document, as stored for a replaced one. */
  readonly access: readonly string[] | null;
  /** The stored text; for a file, empty until the worker has parsed it. */
  readonly text: string;
  readonly hash: Buffer;
  /** The uploaded file's name, if it came as one. */
  readonly fileName: string | null;
  /** A file's bytes (PDF, Word, PowerPoint): kept, and parsed by the worker. */
  readonly original: Buffer | null;
}

const summaryColumns = [
  "documents.id",
  "documents.external_id",
  "collections.name as collection",
  "documents.title",
  "documents.source",
  "documents.content_type",
  "documents.file_name",
  "documents.metadata",
  "documents.access",
  "documents.version",
  "documents.status",
  "documents.stage",
  "documents.error",
  "documents.chunk_count",
  "documents.updated_at",
] as const;

type SummaryRow = Pick<
  DocumentRow,
  | "id"
  | "external_id"
  | "title"
  | "source"
  | "content_type"
  | "file_name"
  | "metadata"
  | "access"
  | "version"
  | "status"
  | "stage"
  | "error"
  | "chunk_count"
  | "updated_at"
> & {
  collection: string;
};

function rowToSummary(row: SummaryRow): DocumentSummary {
  return {
    id: row.id,
    externalId: row.external_id,
    collection: row.collection,
    title: row.title,
    source: row.source,
    contentType: row.content_type,
    fileName: row.file_name,
    metadata: row.metadata,
    access: row.access,
    version: row.version,
    status: row.status,
    stage: row.stage,
    error: row.error,
    chunkCount: row.chunk_count,
    updatedAt: row.updated_at,
  };
}

/**
 * Rows per upsert statement: each row takes ten parameters, and a statement may have at most 65,535.
 * A batch larger than this goes in several statements of the caller's transaction.
 */
const UPSERT_ROWS_PER_STATEMENT = 1_000;

/**
 * The one order in which every writer locks document rows: by collection, then external id compared
 * byte by byte (PostgreSQL's "C" collation on UTF-8). An upload upserts its rows in it, and a worker
 * locks its batch in it (lockDocuments): two writers sharing documents then wait for each other
 * instead of deadlocking (a worker locking in id order deadlocked with an upload, seen in CI).
 */
export function compareExternalIds(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Inserts or replaces documents by (collection, external id), one statement per slice of the batch
 * instead of a round trip per document. Replacing bumps the version and sets it pending; identical
 * content, metadata, title, source and file name leave a document untouched (a no-op), unless its
 * last ingestion failed or found no text (needs_ocr). Returns, by external id, the version to process of each document that changed;
 * unchanged ones are absent. External ids must be distinct (a row cannot be upserted twice in one
 * statement). Rows go in external-id order (compareExternalIds), the order every writer locks
 * documents in.
 */
export async function upsertDocuments(
  db: Kysely<Database>,
  owner: { tenantId: string; collectionId: string },
  inputs: readonly DocumentInput[],
): Promise<Map<string, { id: string; version: number }>> {
  const sorted = [...inputs].sort((a, b) => compareExternalIds(a.externalId, b.externalId));
  const written = new Map<string, { id: string; version: number }>();
  for (let start = 0; start < sorted.length; start += UPSERT_ROWS_PER_STATEMENT) {
    const rows = await db
      .insertInto("documents")
      .values(
        sorted.slice(start, start + UPSERT_ROWS_PER_STATEMENT).map((input) => ({
          tenant_id: owner.tenantId,
          collection_id: owner.collectionId,
          external_id: input.externalId,
          title: input.title,
          source: input.source,
          content_type: input.contentType,
          file_name: input.fileName,
          metadata: JSON.stringify(input.metadata),
          content: input.text,
          content_hash: input.hash,
          page_starts: null,
          status: "pending" as const,
          ...(input.access ? { access: [...input.access] } : {}),
        })),
      )
      .onConflict((oc) =>
        oc
          .columns(["collection_id", "external_id"])
          .doUpdateSet({
            title: (eb) => eb.ref("excluded.title"),
            source: (eb) => eb.ref("excluded.source"),
            content_type: (eb) => eb.ref("excluded.content_type"),
            file_name: (eb) => eb.ref("excluded.file_name"),
            metadata: (eb) => eb.ref("excluded.metadata"),
            content: (eb) => eb.ref("excluded.content"),
            content_hash: (eb) => eb.ref("excluded.content_hash"),
            page_starts: null,
            version: sql`documents.version + 1`,
            status: "pending",
            stage: null,
            error: null,
            updated_at: sql`now()`,
          })
          .where(({ or, eb, ref }) =>
            or([
              eb(ref("documents.status"), "in", ["failed", "needs_ocr"]),
              eb(
                sql`(documents.content_hash, documents.metadata, documents.title, documents.source, documents.file_name)`,
                "is distinct from",
                sql`(excluded.content_hash, excluded.metadata, excluded.title, excluded.source, excluded.file_name)`,
              ),
            ]),
          ),
      )
      .returning(["id", "version", "external_id"])
      .execute();
    for (const row of rows) written.set(row.external_id, { id: row.id, version: row.version });
  }
  await storeOriginals(
    db,
    owner.tenantId,
    inputs.flatMap((input) => {
      const row = written.get(input.externalId);
      return row ? [{ documentId: row.id, bytes: input.original }] : [];
    }),
  );
  return written;
}

/**
 * Gives documents (by external id) new access lists, with their chunks, where they differ: no new
 * version, nothing embedded again. The rows are locked first, in the order every writer locks them
 * (compareExternalIds); the updates are statements of their own, so they see the chunks of a worker's
 * write that held a lock before them (one statement would keep its first snapshot and miss them).
 */
export async function setDocumentAccess(
  tx: Kysely<Database>,
  owner: { tenantId: string; collectionId: string },
  changes: readonly { externalId: string; access: readonly string[] }[],
): Promise<void> {
  if (changes.length === 0) return;
  const { rows: locked } = await sql<{ id: string; access: string }>`
    SELECT d.id, w.access FROM documents d
    JOIN unnest(${changes.map((c) => c.externalId)}::text[], ${changes.map((c) => textArrayLiteral(c.access))}::text[])
      AS w(external_id, access) USING (external_id)
    WHERE d.tenant_id = ${owner.tenantId}::uuid AND d.collection_id = ${owner.collectionId}::uuid
      AND d.access IS DISTINCT FROM w.access::text[]
    ORDER BY d.external_id COLLATE "C"
    FOR UPDATE OF d
  `.execute(tx);
  if (locked.length === 0) return;
  const ids = locked.map((l) => l.id);
  const lists = locked.map((l) => l.access);
  await sql`
    UPDATE documents d SET access = w.access::text[], updated_at = now()
    FROM unnest(${ids}::uuid[], ${lists}::text[]) AS w(id, access) WHERE d.id = w.id
  `.execute(tx);
  await sql`
    UPDATE chunks c SET access = w.access::text[]
    FROM unnest(${ids}::uuid[], ${lists}::text[]) AS w(id, access)
    WHERE c.collection_id = ${owner.collectionId}::uuid AND c.document_id = w.id
  `.execute(tx);
}

/** Keeps the files' bytes of written documents; a document replaced by text keeps none. */
async function storeOriginals(
  db: Kysely<Database>,
  tenantId: string,
  documents: readonly { documentId: string; bytes: Buffer | null }[],
): Promise<void> {
  const files = documents.filter((d): d is { documentId: string; bytes: Buffer } => d.bytes !== null);
  const texts = documents.filter((d) => d.bytes === null).map((d) => d.documentId);
  if (texts.length > 0) {
    await db
      .deleteFrom("document_originals")
      .where("document_id", "=", sql<string>`any(${texts}::uuid[])`)
      .execute();
  }
  // One file a statement: a file may be as large as a request body, and a statement's parameters are held whole.
  for (const file of files) {
    await db
      .insertInto("document_originals")
      .values({ document_id: file.documentId, tenant_id: tenantId, bytes: file.bytes })
      .onConflict((oc) => oc.column("document_id").doUpdateSet({ bytes: (eb) => eb.ref("excluded.bytes") }))
      .execute();
  }
}

/** A document as uploaded: a file's bytes, or (sent as text) null and its stored text. */
export async function findOriginal(
  db: Kysely<Database>,
  documentId: string,
): Promise<{ bytes: Buffer | null; text: string } | undefined> {
  return db
    .selectFrom("documents as d")
    .leftJoin("document_originals as o", "o.document_id", "d.id")
    .select(["o.bytes", "d.content as text"])
    .where("d.id", "=", documentId)
    .executeTakeFirst();
}

/**
 * Queues documents kept as files to be parsed again (a new version, pending): those of `documentIds`,
 * or every file of the collection when none are named. Returns the versions to process.
 */
export async function requeueFiles(
  db: Kysely<Database>,
  where: { tenantId: string; collectionId: string; documentIds?: readonly string[] },
): Promise<{ id: string; version: number }[]> {
  let query = db
    .updateTable("documents")
    .set({
      version: sql`version + 1`,
      status: "pending",
      stage: null,
      error: null,
      page_starts: null,
      updated_at: sql`now()`,
    })
    .where("tenant_id", "=", where.tenantId)
    .where("collection_id", "=", where.collectionId)
    .where(({ exists, selectFrom }) =>
      exists(
        selectFrom("document_originals as o").select("o.document_id").whereRef("o.document_id", "=", "documents.id"),
      ),
    );
  if (where.documentIds) query = query.where("id", "=", sql<string>`any(${[...where.documentIds]}::uuid[])`);
  return query.returning(["id", "version"]).execute();
}

/** The stored id and version of documents of a collection, by external id. */
export async function documentVersions(
  db: Kysely<Database>,
  owner: { tenantId: string; collectionId: string },
  externalIds: readonly string[],
): Promise<Map<string, { id: string; version: number }>> {
  if (externalIds.length === 0) return new Map();
  const rows = await db
    .selectFrom("documents")
    .select(["id", "version", "external_id"])
    .where("tenant_id", "=", owner.tenantId)
    .where("collection_id", "=", owner.collectionId)
    .where("external_id", "=", sql<string>`any(${[...externalIds]}::text[])`)
    .execute();
  return new Map(rows.map((r) => [r.external_id, { id: r.id, version: r.version }]));
}

export async function findDocumentSummary(
  db: Kysely<Database>,
  where: { tenantId: string; collectionId: string; externalId: string } | { tenantId: string; id: string },
): Promise<DocumentSummary | undefined> {
  let query = db
    .selectFrom("documents")
    .innerJoin("collections", "collections.id", "documents.collection_id")
    .select(summaryColumns)
    .where("documents.tenant_id", "=", where.tenantId);
  query =
    "id" in where
      ? query.where("documents.id", "=", where.id)
      : query
          .where("documents.collection_id", "=", where.collectionId)
          .where("documents.external_id", "=", where.externalId);
  const row = await query.executeTakeFirst();
  return row && rowToSummary(row);
}

/** Where documents stand now: their status (and error) at their current version. */
export async function documentStates(
  db: Kysely<Database>,
  ids: readonly string[],
): Promise<Map<string, { status: DocumentStatus; error: string | null }>> {
  const rows = await db
    .selectFrom("documents")
    .select(["id", "status", "error"])
    .where("id", "=", sql<string>`any(${[...ids]}::uuid[])`)
    .execute();
  return new Map(rows.map((r) => [r.id, { status: r.status as DocumentStatus, error: r.error }]));
}

export async function listDocumentSummaries(
  db: Kysely<Database>,
  filter: {
    tenantId: string;
    collectionId: string;
    status?: DocumentStatus;
    /** Only documents whose access list names this principal (`*`: those open to the whole tenant). */
    principal?: string;
    after?: string;
    limit: number;
  },
): Promise<DocumentSummary[]> {
  let query = db
    .selectFrom("documents")
    .innerJoin("collections", "collections.id", "documents.collection_id")
    .select(summaryColumns)
    .where("documents.tenant_id", "=", filter.tenantId)
    .where("documents.collection_id", "=", filter.collectionId)
    .orderBy("documents.external_id")
    .limit(filter.limit);
  if (filter.status) query = query.where("documents.status", "=", filter.status);
  if (filter.principal) query = query.where(sql<boolean>`documents.access @> ARRAY[${filter.principal}]::text[]`);
  if (filter.after !== undefined) query = query.where("documents.external_id", ">", filter.after);
  return (await query.execute()).map(rowToSummary);
}

/**
 * Deletes a document with its chunks (recording what they counted in the BM25 document frequencies)
 * and takes what its chunks added out of the collection's BM25 statistics, in the caller's transaction.
 */
export async function deleteDocument(
  db: Kysely<Database>,
  where: { tenantId: string; collectionId: string; externalId: string },
): Promise<boolean> {
  const document = await db
    .selectFrom("documents")
    .select("id")
    .where("tenant_id", "=", where.tenantId)
    .where("collection_id", "=", where.collectionId)
    .where("external_id", "=", where.externalId)
    .forUpdate()
    .executeTakeFirst();
  if (!document) return false;
  await deleteChunksOf(db, [document.id]);
  const deleted = await db
    .deleteFrom("documents")
    .where("id", "=", document.id)
    .returning(["collection_id", "tenant_id", "chunk_count", "lexeme_total"])
    .executeTakeFirst();
  if (!deleted) return false;
  await adjustCollectionStats(
    db,
    deleted.collection_id,
    deleted.tenant_id,
    -deleted.chunk_count,
    -Number(deleted.lexeme_total),
  );
  return true;
}

/** Marks written documents ready with what their chunks add to the BM25 statistics, in one statement. */
export async function markDocumentsReady(
  db: Kysely<Database>,
  documents: readonly { id: string; chunkCount: number; lexemeTotal: number; parsed?: ParsedDocument | null }[],
): Promise<void> {
  if (documents.length === 0) return;
  // A file's text, as parsed for this version: few per batch, and each may be large.
  for (const doc of documents) {
    if (!doc.parsed) continue;
    await db
      .updateTable("documents")
      .set({ content: doc.parsed.text, page_starts: [...doc.parsed.pageStarts] })
      .where("id", "=", doc.id)
      .execute();
  }
  await sql`
    UPDATE documents AS d
    SET status = 'ready', stage = NULL, error = NULL, chunk_count = w.chunk_count, lexeme_total = w.lexeme_total, updated_at = now()
    FROM unnest(${documents.map((doc) => doc.id)}::uuid[], ${documents.map((doc) => doc.chunkCount)}::int[],
                ${documents.map((doc) => doc.lexemeTotal)}::bigint[]) AS w(id, chunk_count, lexeme_total)
    WHERE d.id = w.id
  `.execute(db);
}

/** The tenant of each queued document: the worker serves every tenant (a SECURITY DEFINER door). */
export async function documentTenants(
  db: Kysely<Database>,
  documentIds: readonly string[],
): Promise<Map<string, string>> {
  const { rows } = await sql<{ document_id: string; tenant_id: string }>`
    SELECT document_id, tenant_id FROM pgrag_document_tenants(${documentIds}::uuid[])
  `.execute(db);
  return new Map(rows.map((r) => [r.document_id, r.tenant_id]));
}

/** Each document's size in bytes, its text's and its file's, from their stored lengths (neither is read). */
export async function documentSizes(
  db: Kysely<Database>,
  documentIds: readonly string[],
): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom("documents")
    .leftJoin("document_originals as o", "o.document_id", "documents.id")
    .select([
      "documents.id",
      sql<string>`octet_length(documents.content) + coalesce(octet_length(o.bytes), 0)`.as("bytes"),
    ])
    .where("documents.id", "in", documentIds)
    .execute();
  return new Map(rows.map((r) => [r.id, Number(r.bytes)]));
}

/** Documents to ingest, with their collection's settings. */
export function documentsToIngest(db: Kysely<Database>, documentIds: readonly string[]) {
  return db
    .selectFrom("documents")
    .innerJoin("collections", "collections.id", "documents.collection_id")
    .leftJoin("document_originals as o", "o.document_id", "documents.id")
    .select([
      "documents.id",
      "documents.version",
      "documents.status",
      "documents.tenant_id",
      "documents.content",
      "documents.content_type",
      "documents.page_starts",
      "documents.metadata",
      "o.bytes as original",
      "collections.id as collection_id",
      "collections.name",
      "collections.language",
      "collections.settings",
      "collections.created_at",
    ])
    .where("documents.id", "in", documentIds)
    .execute();
}

/**
 * Locks document rows for the write, in the order uploads lock them too (compareExternalIds: a sort
 * under FOR UPDATE locks rows as they leave it), so that neither two workers' batches nor a batch and
 * an upload can deadlock: a concurrent replace or delete waits for this transaction, or has made a
 * job stale.
 */
export function lockDocuments(tx: Kysely<Database>, documentIds: readonly string[]) {
  return tx
    .selectFrom("documents")
    .select(["id", "version", "chunk_count", "lexeme_total", "access"])
    .where("id", "in", documentIds)
    .orderBy("collection_id")
    .orderBy(sql`external_id COLLATE "C"`)
    .forUpdate()
    .execute();
}

/**
 * Shows where pending document versions' ingestion is (null: back in the queue). Only a display: rows
 * an upload or a write holds are skipped rather than waited for, so this never joins a lock queue
 * (nor a deadlock) with them, and a version replaced or settled meanwhile keeps its own state.
 */
export async function markIngestionStage(
  tx: Kysely<Database>,
  documents: readonly { id: string; version: number }[],
  stage: "parsing" | "embedding" | null,
): Promise<void> {
  if (documents.length === 0) return;
  await sql`
    UPDATE documents AS d SET stage = ${stage}
    FROM (
      SELECT d.id FROM documents AS d
      JOIN unnest(${documents.map((doc) => doc.id)}::uuid[], ${documents.map((doc) => doc.version)}::int[]) AS w(id, version)
        ON d.id = w.id AND d.version = w.version
      WHERE d.status = 'pending'
      FOR UPDATE OF d SKIP LOCKED
    ) AS free
    WHERE d.id = free.id
  `.execute(tx);
}

/** A document version that cannot be ingested (`failed`), or a file without a text layer (`needs_ocr`), with the reason. */
export async function markDocumentFailed(
  tx: Kysely<Database>,
  document: { id: string; version: number; error: string; status?: "failed" | "needs_ocr" },
): Promise<void> {
  await tx
    .updateTable("documents")
    .set({
      status: document.status ?? "failed",
      stage: null,
      error: document.error.slice(0, 2000),
      updated_at: sql`now()`,
    })
    .where("id", "=", document.id)
    .where("version", "=", document.version)
    .execute();
}
