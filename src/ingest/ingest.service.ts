import { setTimeout as delay } from "node:timers/promises";
import { type Kysely, sql } from "kysely";
import type { Database } from "../db/database.ts";
import type { ConsistencyToken } from "../db/consistency-token.ts";
import type { ReadResult, Router } from "../db/router.ts";
import { AppError, InvalidRequestError, NotFoundError } from "../errors.ts";
import { type Principal, readerOf } from "../tenancy/principal.ts";
import type { Quotas } from "../tenancy/quotas.ts";
import type { ChunkingOptions } from "../text/chunking.ts";
import {
  deleteCollection,
  requireCollection,
  insertCollection,
  listCollections,
  textSearchConfigExists,
} from "../collections/collections.repository.ts";
import { charsetOf, contentHash, decodeText, normalizeContent, textTypeOf } from "../text/content.ts";
import { FILE_FORMATS, magicOf } from "../parsing/formats.ts";
import {
  type DocumentStatus,
  type DocumentSummary,
  deleteDocument,
  documentStates,
  documentVersions,
  findDocumentSummary,
  findOriginal,
  requeueFiles,
  listDocumentSummaries,
  type DocumentInput,
  setDocumentAccess,
  upsertDocuments,
} from "./documents.repository.ts";

/** An upload as it is stored. */
type PreparedDocument = Pick<DocumentInput, "contentType" | "text" | "hash" | "fileName" | "original">;
import { runningImportOf } from "./imports/imports.repository.ts";
import { requestCompaction } from "../postings/compact-postings.job.ts";
import type { JobQueue } from "../jobs/queue.ts";
import { sendIngestJobs } from "./ingest-document.job.ts";
import { listDocumentChunks } from "./chunks.repository.ts";
import { isSettled } from "./document-status.ts";
import type { TextPool } from "../text/text-pool.ts";

export interface DocumentUpload {
  readonly externalId: string;
  /**
   * Text, or the bytes of a file as uploaded: a PDF, Word or PowerPoint file (told by its bytes,
   * whatever `contentType` says) or text in the charset `contentType` names.
   */
  readonly content: string | Uint8Array;
  /** As declared: for bytes it may be absent, generic (application/octet-stream) or wrong. */
  readonly contentType: string;
  /** The uploaded file's name: the title when none is given, and the type when the declared one is generic. */
  readonly fileName?: string | null;
  readonly title?: string | null;
  readonly source?: string | null;
  readonly metadata?: Record<string, unknown>;
  /** Who may read it; absent: the whole tenant (`*`) for a new document, unchanged for a stored one. */
  readonly access?: readonly string[];
}

export interface DocumentWriteResult {
  readonly id: string;
  readonly externalId: string;
  readonly version: number | null;
  /** false: identical to what is stored; nothing was queued. */
  readonly changed: boolean;
}

/** Collections and documents: writes on the primary (with their jobs), reads routed with tokens. */
export class IngestService {
  readonly #router: Router;
  readonly #queue: JobQueue;
  readonly #maxDocumentBytes: number;
  readonly #text: TextPool;
  readonly #quotas: Quotas;

  constructor(router: Router, queue: JobQueue, text: TextPool, quotas: Quotas, options: { maxDocumentBytes: number }) {
    this.#router = router;
    this.#queue = queue;
    this.#text = text;
    this.#quotas = quotas;
    this.#maxDocumentBytes = options.maxDocumentBytes;
  }

  async createCollection(principal: Principal, input: { name: string; language: string; chunking: ChunkingOptions }) {
    if (input.chunking.overlapTokens * 2 > input.chunking.maxTokens) {
      throw new InvalidRequestError(
        `chunking.overlap_tokens (${input.chunking.overlapTokens}) must be at most half of chunking.max_tokens (${input.chunking.maxTokens})`,
      );
    }
    return this.#write(principal, async (tx) => {
      if (!(await textSearchConfigExists(tx, input.language))) {
        throw new InvalidRequestError(
          `unknown text-search language "${input.language}" (e.g. english, simple, german, french)`,
        );
      }
      await this.#quotas.reserve(tx, principal.tenantId, "collections");
      const created = await insertCollection(tx, { tenantId: principal.tenantId, ...input });
      if (!created) throw new AppError("conflict", `collection "${input.name}" already exists`);
      return created;
    });
  }

  listCollections(principal: Principal, token: ConsistencyToken | null) {
    return this.#read(principal, { token }, (db) => listCollections(db, principal.tenantId));
  }

  /** Stores the documents and queues their ingestion in one transaction: all or nothing. */
  async putDocuments(principal: Principal, collectionName: string, uploads: readonly DocumentUpload[]) {
    const firstIndex = new Map<string, number>();
    for (const [index, upload] of uploads.entries()) {
      const earlier = firstIndex.get(upload.externalId);
      if (earlier !== undefined) {
        throw new InvalidRequestError(
          `documents[${index}] repeats the external_id "${upload.externalId}" of documents[${earlier}]: send each document once per request`,
        );
      }
      firstIndex.set(upload.externalId, index);
    }
    // One document at a time: HTML and files go through the bounded pools, and a batch must not fill their queues.
    const prepared: { upload: DocumentUpload; document: PreparedDocument }[] = [];
    for (const [index, upload] of uploads.entries()) {
      try {
        prepared.push({ upload, document: await this.#prepare(upload) });
      } catch (error) {
        if (error instanceof AppError && uploads.length > 1) {
          throw new AppError(error.code, `documents[${index}] (${upload.externalId}): ${error.message}`, {
            cause: error,
          });
        }
        throw error;
      }
    }
    return this.#write(principal, async (tx) => {
      const collection = await requireCollection(tx, principal.tenantId, collectionName);
      const owner = { tenantId: principal.tenantId, collectionId: collection.id };
      const written = await upsertDocuments(
        tx,
        owner,
        prepared.map(({ upload, document }) => ({
          externalId: upload.externalId,
          title: upload.title ?? upload.fileName ?? null,
          source: upload.source ?? null,
          metadata: upload.metadata ?? {},
          access: upload.access ?? null,
          ...document,
        })),
      );
      // Access changes of stored documents without a new version (nothing embedded again for them),
      // after the upsert has locked every row in the writers' order.
      await setDocumentAccess(
        tx,
        owner,
        uploads.flatMap((u) => (u.access ? [{ externalId: u.externalId, access: u.access }] : [])),
      );
      await this.#quotas.refuseIfOverStorage(tx, principal.tenantId);
      const unchanged = await documentVersions(
        tx,
        owner,
        uploads.filter((u) => !written.has(u.externalId)).map((u) => u.externalId),
      );
      await sendIngestJobs(
        this.#queue,
        tx,
        uploads.flatMap((u) => {
          const job = written.get(u.externalId);
          return job ? [{ documentId: job.id, version: job.version }] : [];
        }),
      );
      return uploads.map((u): DocumentWriteResult => {
        const changed = written.get(u.externalId);
        const stored = changed ?? unchanged.get(u.externalId);
        return { id: stored?.id ?? "", externalId: u.externalId, version: stored?.version ?? null, changed: !!changed };
      });
    });
  }

  /**
   * What is stored of an upload: text as it is searched and cited (HTML converted), or a file's
   * bytes (its text is parsed by the worker). A file's type is read from its bytes; an encrypted
   * PDF or an Office file over the zip-bomb limits is refused here, with the reason (422).
   */
  async #prepare(upload: DocumentUpload): Promise<PreparedDocument> {
    const { content } = upload;
    const fileName = upload.fileName ?? null;
    if (typeof content !== "string" && magicOf(content) !== null) {
      const identified = await this.#text.identifyFile(content);
      if (identified.kind === "refused") throw new AppError("unprocessable", identified.reason);
      if (identified.kind === "format") {
        const bytes = Buffer.from(content.buffer, content.byteOffset, content.byteLength);
        const contentType = FILE_FORMATS[identified.format].contentType;
        return { contentType, text: "", hash: contentHash(bytes), fileName, original: bytes };
      }
    }
    const type = textTypeOf(upload.contentType, fileName);
    const text = typeof content === "string" ? content : decodeText(content, charsetOf(upload.contentType));
    const normalized = await normalizeContent(text, type, this.#maxDocumentBytes, (html) =>
      this.#text.htmlToMarkdown(html),
    );
    return { contentType: type, ...normalized, fileName, original: null };
  }

  /**
   * Waits, at most `waitMs`, until these documents are searchable (ready), failed or found to need OCR, re-reading them
   * (with the write's token, so a replica that serves the read has the write) at growing intervals.
   * Returns each one's state at the end, and a token at or past what that read saw: a search with
   * it finds the documents that were ready.
   */
  async awaitDocuments(principal: Principal, ids: readonly string[], token: ConsistencyToken, waitMs: number) {
    const deadline = performance.now() + waitMs;
    for (let pause = 50; ; pause = Math.min(pause * 2, 500)) {
      const result = await this.#read(principal, { token, observe: true }, (db) => documentStates(db, ids));
      const settled = [...result.value.values()].every((d) => isSettled(d.status));
      const left = deadline - performance.now();
      if (settled || left <= 0) return result;
      await delay(Math.min(pause, left));
    }
  }

  async getDocument(principal: Principal, collectionName: string, externalId: string, token: ConsistencyToken | null) {
    const result = await this.#read(principal, { token, observe: true }, async (db) => {
      const collection = await requireCollection(db, principal.tenantId, collectionName);
      return findDocumentSummary(db, {
        tenantId: principal.tenantId,
        collectionId: collection.id,
        externalId,
      });
    });
    if (!result.value) throw new NotFoundError(`no document "${externalId}" in collection "${collectionName}"`);
    return { ...result, value: result.value };
  }

  listDocuments(
    principal: Principal,
    collectionName: string,
    filter: { status?: DocumentStatus; principal?: string; after?: string; limit: number },
    token: ConsistencyToken | null,
  ): Promise<ReadResult<DocumentSummary[]>> {
    return this.#read(principal, { token, observe: true }, async (db) => {
      const collection = await requireCollection(db, principal.tenantId, collectionName);
      return listDocumentSummaries(db, {
        tenantId: principal.tenantId,
        collectionId: collection.id,
        ...filter,
      });
    });
  }

  /** Gives a document a new access list, with its chunks: nothing is parsed or embedded again. */
  async updateAccess(principal: Principal, collectionName: string, externalId: string, access: readonly string[]) {
    const { value, token } = await this.#write(principal, async (tx) => {
      const collection = await requireCollection(tx, principal.tenantId, collectionName);
      await setDocumentAccess(tx, { tenantId: principal.tenantId, collectionId: collection.id }, [
        { externalId, access },
      ]);
      return findDocumentSummary(tx, { tenantId: principal.tenantId, collectionId: collection.id, externalId });
    });
    if (!value) throw new NotFoundError(`no document "${externalId}" in collection "${collectionName}"`);
    return { value, token };
  }

  /** A document's chunks in order, with where each came from (page, slide, headings), paged by ordinal. */
  async documentChunks(
    principal: Principal,
    collectionName: string,
    externalId: string,
    page: { after: number; limit: number },
    token: ConsistencyToken | null,
  ) {
    const { value } = await this.getDocument(principal, collectionName, externalId, token);
    return this.#read(principal, { token }, (db) =>
      listDocumentChunks(db, { tenantId: principal.tenantId, documentId: value.id, ...page }),
    );
  }

  /** A document as uploaded: a file's bytes, or for a document sent as text, that text. */
  async original(principal: Principal, collectionName: string, externalId: string, token: ConsistencyToken | null) {
    // One read: the document and its bytes from the same snapshot of the same node.
    const { value } = await this.#read(principal, { token }, async (db) => {
      const collection = await requireCollection(db, principal.tenantId, collectionName);
      const where = { tenantId: principal.tenantId, collectionId: collection.id, externalId };
      const document = await findDocumentSummary(db, where);
      return document && { document, original: await findOriginal(db, document.id) };
    });
    if (!value) throw new NotFoundError(`no document "${externalId}" in collection "${collectionName}"`);
    const { document, original } = value;
    if (original?.bytes)
      return { bytes: original.bytes, contentType: document.contentType, fileName: document.fileName };
    // A document sent as text is given back as its stored text (HTML as the Markdown it became).
    const type = document.contentType === "text/html" ? "text/markdown" : document.contentType;
    return {
      bytes: Buffer.from(original?.text ?? ""),
      contentType: `${type}; charset=utf-8`,
      fileName: document.fileName,
    };
  }

  /**
   * Parses documents kept as files again (after a parser upgrade): one, or every file of the
   * collection. Each gets a new version; its chunks are replaced when the worker has parsed it.
   */
  async reparse(principal: Principal, collectionName: string, externalId?: string) {
    return this.#write(principal, async (tx) => {
      const collection = await requireCollection(tx, principal.tenantId, collectionName);
      const owner = { tenantId: principal.tenantId, collectionId: collection.id };
      let documentIds: string[] | undefined;
      if (externalId !== undefined) {
        const found = await documentVersions(tx, owner, [externalId]);
        const id = found.get(externalId)?.id;
        if (!id) throw new NotFoundError(`no document "${externalId}" in collection "${collectionName}"`);
        documentIds = [id];
      }
      const queued = await requeueFiles(tx, { ...owner, documentIds });
      if (externalId !== undefined && queued.length === 0) {
        throw new AppError("conflict", `document "${externalId}" was sent as text: there is no file to parse again`);
      }
      await sendIngestJobs(
        this.#queue,
        tx,
        queued.map((d) => ({ documentId: d.id, version: d.version })),
      );
      return queued;
    });
  }

  /**
   * Deletes a collection and everything in it; refused while an import into it runs (its staged
   * partition would be left behind). A large collection takes as long as its rows take to delete.
   */
  async deleteCollection(principal: Principal, collectionName: string) {
    return this.#write(principal, async (tx) => {
      const collection = await requireCollection(tx, principal.tenantId, collectionName);
      const running = await runningImportOf(tx, collection.id);
      if (running) {
        throw new AppError(
          "conflict",
          `an import into collection "${collectionName}" is still running (${running}); wait for it to finish`,
        );
      }
      await sql`SELECT set_config('statement_timeout', '0', true)`.execute(tx);
      return { documents: await deleteCollection(tx, collection.id) };
    });
  }

  async deleteDocument(principal: Principal, collectionName: string, externalId: string) {
    return this.#write(principal, async (tx) => {
      const collection = await requireCollection(tx, principal.tenantId, collectionName);
      const deleted = await deleteDocument(tx, {
        tenantId: principal.tenantId,
        collectionId: collection.id,
        externalId,
      });
      if (!deleted) throw new NotFoundError(`no document "${externalId}" in collection "${collectionName}"`);
      await requestCompaction(this.#queue, tx, { collectionId: collection.id, tenantId: principal.tenantId });
    });
  }

  /** Every statement of a tenant's request runs with that tenant set, for row-level security. */
  #write<T>(principal: Principal, work: (tx: Kysely<Database>) => Promise<T>) {
    return this.#router.write({ tenantId: principal.tenantId }, work);
  }

  #read<T>(
    principal: Principal,
    options: { token: ConsistencyToken | null; observe?: boolean },
    work: (db: Kysely<Database>) => Promise<T>,
  ) {
    // As the requester: row-level security shows only the documents it may read.
    return this.#router.read({ ...options, ...readerOf(principal) }, work);
  }
}
