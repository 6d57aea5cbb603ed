import type { MiddlewareHandler } from "hono";
import { type Context, Hono } from "hono";
import { z } from "zod";
import type { ConsistencyToken } from "../db/consistency-token.ts";
import { AppError, describeIssues } from "../errors.ts";
import { DEFAULT_CHUNKING, MIN_CHUNK_TOKENS } from "../text/chunking.ts";
import type { Collection } from "../collections/collections.repository.ts";
import { CONTENT_TYPES } from "../text/content.ts";
import { FILE_CONTENT_TYPES } from "../parsing/formats.ts";
import { locationJson } from "../retrieval/chunk-location.ts";
import { accessList, documentFields, externalId, principal } from "../ingest/document-fields.ts";
import type { DocumentSummary } from "../ingest/documents.repository.ts";
import { isSettled } from "../ingest/document-status.ts";
import type { DocumentUpload, DocumentWriteResult, IngestService } from "../ingest/ingest.service.ts";
import type { Scope } from "../tenancy/principal.ts";
import { readConsistencyToken, setConsistencyToken } from "./consistency.ts";
import { limitBodySize } from "./body-limit.ts";
import { requestedWait } from "./wait-preference.ts";
import type { AppEnv } from "./context.ts";
import { collectionName } from "../request-fields.ts";
import { limitJsonDepth, validate } from "./validation.ts";
import { documented } from "./route-docs.ts";

const collectionBody = z.object({
  name: collectionName,
  language: z
    .string()
    .regex(/^[a-z_]{1,63}$/, "a text-search configuration name such as english")
    .default("english"),
  chunking: z
    .object({
      max_tokens: z.number().int().min(MIN_CHUNK_TOKENS).max(8192).default(DEFAULT_CHUNKING.maxTokens),
      overlap_tokens: z.number().int().min(0).max(4096).default(DEFAULT_CHUNKING.overlapTokens),
      min_tokens: z.number().int().min(0).max(8192).default(DEFAULT_CHUNKING.minTokens),
    })
    .default({
      max_tokens: DEFAULT_CHUNKING.maxTokens,
      overlap_tokens: DEFAULT_CHUNKING.overlapTokens,
      min_tokens: DEFAULT_CHUNKING.minTokens,
    }),
});

const documentBody = z.object(documentFields);
const batchBody = (max: number) =>
  z.object({
    documents: z
      .array(z.object({ external_id: externalId, ...documentFields }))
      .min(1)
      .max(max, `at most ${max} documents per batch`),
  });

const listQuery = z.object({
  status: z.enum(["pending", "ready", "failed", "needs_ocr"]).optional(),
  principal: principal.optional(),
  after: z.string().max(512).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const chunksQuery = z.object({
  after: z.coerce.number().int().min(-1).default(-1),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

const params = z.object({ collection: collectionName, externalId: externalId.optional() });

/** The API speaks snake_case JSON; these are the explicit mappings from the service's objects. */
function collectionJson(c: Collection) {
  return {
    id: c.id,
    name: c.name,
    language: c.language,
    chunking: {
      max_tokens: c.chunking.maxTokens,
      overlap_tokens: c.chunking.overlapTokens,
      min_tokens: c.chunking.minTokens,
    },
    created_at: c.createdAt,
  };
}

function documentJson(d: DocumentSummary) {
  return {
    id: d.id,
    external_id: d.externalId,
    collection: d.collection,
    title: d.title,
    source: d.source,
    content_type: d.contentType,
    file_name: d.fileName,
    metadata: d.metadata,
    access: d.access,
    version: d.version,
    status: d.status,
    stage: d.stage,
    error: d.error,
    chunk_count: d.chunkCount,
    updated_at: d.updatedAt,
  };
}

function writeResultJson(r: DocumentWriteResult, state?: { status: string; error: string | null }) {
  return {
    id: r.id,
    external_id: r.externalId,
    version: r.version,
    changed: r.changed,
    // An unchanged document is as it was (ready, unless its earlier version is still being processed).
    status: state?.status ?? (r.changed ? "pending" : "unchanged"),
    ...(state?.error ? { error: state.error } : {}),
  };
}

/** Reads hand back a token covering what they saw; see the Router's `observe`. */
function observedToken(c: Context, observed: ConsistencyToken | undefined): string | null {
  return observed === undefined ? null : setConsistencyToken(c, observed);
}

function toUpload(d: z.infer<typeof documentBody>, id: string) {
  return {
    externalId: id,
    content: d.content,
    contentType: d.content_type,
    title: d.title ?? null,
    source: d.source ?? null,
    metadata: d.metadata ?? {},
    ...(d.access ? { access: d.access } : {}),
  };
}

const accessBody = z.object({ access: accessList }).strict();

/** A file upload's access list: the `access` query parameter, principals separated by commas. */
function queryAccess(c: Context): { access?: readonly string[] } {
  const given = c.req.query("access");
  if (given === undefined) return {};
  const parsed = accessList.safeParse(given.split(","));
  if (!parsed.success) {
    const { message, details } = describeIssues(parsed.error);
    throw new AppError("invalid_request", `the access query parameter: ${message}`, { details });
  }
  return { access: parsed.data };
}

/** The wait a write may ask for, as a query parameter (or `Prefer: wait=N`). */
const WAIT = [
  {
    name: "wait",
    in: "query",
    required: false,
    description:
      "Seconds (at most 60) to wait until the written documents are searchable; or the header Prefer: wait=N",
    schema: { type: "integer", minimum: 0, maximum: 60 },
  },
];

/** One document's body: JSON with its fields, or the file or text itself. */
const FILE_BODIES = {
  required: true,
  content: {
    "application/json": { schema: { type: "object" } },
    ...Object.fromEntries(CONTENT_TYPES.map((type) => [type, { schema: { type: "string" } }])),
    ...Object.fromEntries(
      [...FILE_CONTENT_TYPES, "application/octet-stream"].map((type) => [
        type,
        { schema: { type: "string", format: "binary" } },
      ]),
    ),
  },
};

/** A raw upload's file name: the Content-Disposition header's, else the `file_name` query parameter. */
function uploadedFileName(c: Context): string | null {
  const disposition = c.req.header("Content-Disposition") ?? "";
  const encoded = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(disposition)?.[1];
  if (encoded) {
    try {
      return decodeURIComponent(encoded);
    } catch {
      throw new AppError("invalid_request", "the Content-Disposition filename* is not valid percent-encoded UTF-8");
    }
  }
  return /filename\s*=\s*"?([^";]+)"?/i.exec(disposition)?.[1] ?? c.req.query("file_name") ?? null;
}

/**
 * Files sent as multipart/form-data (`curl -F file=@report.pdf -F file=@notes.md`): each file part
 * is a document whose external id and title are its file name. Other requests go on to the JSON route.
 */
function multipartUploads(service: IngestService, maxDocuments: number): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!/^multipart\/form-data/i.test(c.req.header("Content-Type") ?? "")) return next();
    const form = await c.req.parseBody({ all: true }).catch(() => {
      throw new AppError("invalid_request", "the body is not valid multipart/form-data");
    });
    const files = Object.values(form)
      .flat()
      .filter((value): value is File => typeof value !== "string");
    if (files.length === 0) throw new AppError("invalid_request", "the form has no file parts: send -F file=@path");
    if (files.length > maxDocuments) {
      throw new AppError("invalid_request", `at most ${maxDocuments} files per upload (PGRAG_MAX_BATCH_DOCUMENTS)`);
    }
    const uploads = [];
    for (const file of files) {
      const name = file.name || "upload";
      const id = externalId.safeParse(name);
      if (!id.success)
        throw new AppError("invalid_request", `the file name "${name.slice(0, 100)}" cannot be an external_id`);
      uploads.push({
        externalId: id.data,
        content: new Uint8Array(await file.arrayBuffer()),
        contentType: file.type,
        fileName: name,
        ...queryAccess(c),
      });
    }
    const collection = c.req.param("collection") ?? "";
    const { value, token } = await service.putDocuments(c.get("principal"), collection, uploads);
    const outcome = await settled(c, service, value, token, requestedWait(c));
    return c.json(
      { documents: value.map((r) => writeResultJson(r, outcome.states.get(r.id))), ...outcome.json },
      outcome.status,
    );
  };
}

/** Document uploads, whose bodies are bounded by PGRAG_MAX_BODY_BYTES rather than the JSON routes' limit. */
export const DOCUMENT_UPLOAD_PATH = /^\/v1\/collections\/[^/]+\/documents(\/[^/]+)?$/;

/**
 * After a write, waits up to `wait` seconds for its changed documents to be searchable (or failed).
 * 200 when all are, with a token that finds them; 202 at the deadline, or with no wait, with the
 * write's token and the documents' states as they are.
 */
async function settled(
  c: Context<AppEnv>,
  service: IngestService,
  written: readonly DocumentWriteResult[],
  token: ConsistencyToken,
  wait: number,
) {
  const changed = written.filter((r) => r.changed).map((r) => r.id);
  if (wait === 0 || changed.length === 0) {
    return { states: new Map(), status: 202 as const, json: { consistency_token: setConsistencyToken(c, token) } };
  }
  const { value: states, observed } = await service.awaitDocuments(c.get("principal"), changed, token, wait * 1000);
  const done = [...states.values()].every((s) => isSettled(s.status));
  return {
    states,
    status: done ? (200 as const) : (202 as const),
    json: { consistency_token: setConsistencyToken(c, done && observed ? observed : token) },
  };
}

export function ingestRoutes(
  service: IngestService,
  auth: (scope: Scope) => MiddlewareHandler<AppEnv>,
  limits: { maxBodyBytes: number; maxBatchDocuments: number },
): Hono<AppEnv> {
  const limitBody = limitBodySize(limits.maxBodyBytes, "PGRAG_MAX_BODY_BYTES");
  const limitDepth = limitJsonDepth();
  return new Hono<AppEnv>()
    .post(
      "/v1/collections",
      documented("Create a collection", { responses: { 201: "Created", 409: "A collection of that name exists" } }),
      auth("write"),
      validate("json", collectionBody),
      async (c) => {
        const body = c.req.valid("json");
        const { value, token } = await service.createCollection(c.get("principal"), {
          name: body.name,
          language: body.language,
          chunking: {
            maxTokens: body.chunking.max_tokens,
            overlapTokens: body.chunking.overlap_tokens,
            minTokens: body.chunking.min_tokens,
          },
        });
        return c.json({ collection: collectionJson(value), consistency_token: setConsistencyToken(c, token) }, 201);
      },
    )
    .get(
      "/v1/collections",
      documented("List collections", { consistent: true, responses: { 200: "Collections" } }),
      auth("read"),
      async (c) => {
        const { value, node } = await service.listCollections(c.get("principal"), readConsistencyToken(c));
        c.header("X-Served-By", node);
        return c.json({ collections: value.map(collectionJson) });
      },
    )
    .post(
      "/v1/collections/:collection/documents",
      documented(
        "Create or replace many documents: JSON, or files as multipart/form-data (each named by its file name)",
        {
          parameters: WAIT,
          responses: {
            200: "Written and searchable (with wait)",
            202: "Queued for ingestion",
            413: "The body is over PGRAG_MAX_BODY_BYTES",
          },
        },
      ),
      auth("write"),
      limitBody,
      limitDepth,
      validate("param", params),
      multipartUploads(service, limits.maxBatchDocuments),
      validate("json", batchBody(limits.maxBatchDocuments)),
      async (c) => {
        const { documents } = c.req.valid("json");
        const { collection } = c.req.valid("param");
        const wait = requestedWait(c);
        const { value, token } = await service.putDocuments(
          c.get("principal"),
          collection,
          documents.map((d) => toUpload(d, d.external_id)),
        );
        c.header("Location", `/v1/collections/${encodeURIComponent(collection)}/documents`);
        const outcome = await settled(c, service, value, token, wait);
        return c.json(
          { documents: value.map((r) => writeResultJson(r, outcome.states.get(r.id))), ...outcome.json },
          outcome.status,
        );
      },
    )
    .put(
      "/v1/collections/:collection/documents/:externalId",
      documented(
        "Create or replace one document: JSON, or the file itself (PDF, Word, PowerPoint, Markdown, HTML, text; the type is read from the bytes when it is generic or wrong)",
        {
          parameters: WAIT,
          requestBody: FILE_BODIES,
          responses: {
            200: "Unchanged, or written and searchable (with wait)",
            202: "Queued for ingestion",
            413: "The body is over PGRAG_MAX_BODY_BYTES",
          },
        },
      ),
      auth("write"),
      limitBody,
      limitDepth,
      validate("param", params),
      async (c) => {
        const { collection, externalId: id = "" } = c.req.valid("param");
        const contentType = c.req.header("Content-Type") ?? "";
        let upload: DocumentUpload;
        if (contentType.startsWith("application/json")) {
          const parsed = documentBody.safeParse(
            await c.req.json().catch(() => {
              throw new AppError("invalid_request", "the body is not valid JSON");
            }),
          );
          if (!parsed.success) {
            const { message, details } = describeIssues(parsed.error);
            throw new AppError("invalid_request", message, { details });
          }
          upload = toUpload(parsed.data, id);
        } else {
          // A raw upload: the file or text as the body, title and source in the query.
          upload = {
            externalId: id,
            content: new Uint8Array(await c.req.arrayBuffer()),
            contentType,
            fileName: uploadedFileName(c),
            title: c.req.query("title") ?? null,
            source: c.req.query("source") ?? null,
            metadata: {},
            ...queryAccess(c),
          };
        }
        const wait = requestedWait(c);
        const { value, token } = await service.putDocuments(c.get("principal"), collection, [upload]);
        c.header("Location", `/v1/collections/${encodeURIComponent(collection)}/documents/${encodeURIComponent(id)}`);
        const outcome = await settled(c, service, value, token, wait);
        const [result] = value.map((r) => writeResultJson(r, outcome.states.get(r.id)));
        return c.json({ document: result, ...outcome.json }, result?.changed ? outcome.status : 200);
      },
    )
    .get(
      "/v1/collections/:collection/documents",
      documented("List documents with their ingestion status", { consistent: true, responses: { 200: "Documents" } }),
      auth("read"),
      validate("param", params),
      validate("query", listQuery),
      async (c) => {
        const query = c.req.valid("query");
        const { value, observed } = await service.listDocuments(
          c.get("principal"),
          c.req.valid("param").collection,
          query,
          readConsistencyToken(c),
        );
        const last = value[value.length - 1];
        return c.json({
          documents: value.map(documentJson),
          next_after: value.length === query.limit && last ? last.externalId : null,
          consistency_token: observedToken(c, observed),
        });
      },
    )
    .get(
      "/v1/collections/:collection/documents/:externalId",
      documented("A document's status", { consistent: true, responses: { 200: "The document" } }),
      auth("read"),
      validate("param", params),
      async (c) => {
        const { collection, externalId: id = "" } = c.req.valid("param");
        const { value, node, observed } = await service.getDocument(
          c.get("principal"),
          collection,
          id,
          readConsistencyToken(c),
        );
        c.header("X-Served-By", node);
        return c.json({ document: documentJson(value), consistency_token: observedToken(c, observed) });
      },
    )
    .delete(
      "/v1/collections/:collection",
      documented("Delete a collection with its documents, chunks, postings and conversations", {
        responses: { 200: "Deleted, with the number of documents", 409: "An import into it runs" },
      }),
      auth("write"),
      validate("param", params),
      async (c) => {
        const { collection } = c.req.valid("param");
        const { value, token } = await service.deleteCollection(c.get("principal"), collection);
        return c.json({
          deleted: true,
          collection,
          documents: value.documents,
          consistency_token: setConsistencyToken(c, token),
        });
      },
    )
    .patch(
      "/v1/collections/:collection/documents/:externalId",
      documented(
        "Change who may read a document (its access list): applied to its chunks at once, nothing re-embedded",
        { responses: { 200: "The document, with its new access" } },
      ),
      auth("write"),
      validate("param", params),
      validate("json", accessBody),
      async (c) => {
        const { collection, externalId: id = "" } = c.req.valid("param");
        const { value, token } = await service.updateAccess(
          c.get("principal"),
          collection,
          id,
          c.req.valid("json").access,
        );
        return c.json({ document: documentJson(value), consistency_token: setConsistencyToken(c, token) });
      },
    )
    .delete(
      "/v1/collections/:collection/documents/:externalId",
      documented("Delete a document and its chunks", { responses: { 200: "Deleted" } }),
      auth("write"),
      validate("param", params),
      async (c) => {
        const { collection, externalId: id = "" } = c.req.valid("param");
        const { token } = await service.deleteDocument(c.get("principal"), collection, id);
        return c.json({ deleted: true, consistency_token: setConsistencyToken(c, token) });
      },
    )
    .get(
      "/v1/collections/:collection/documents/:externalId/original",
      documented("Download a document as uploaded: a file's bytes, or the text of one sent as text", {
        consistent: true,
        responses: { 200: "The file, with its content type and file name" },
      }),
      auth("read"),
      validate("param", params),
      async (c) => {
        const { collection, externalId: id = "" } = c.req.valid("param");
        const original = await service.original(c.get("principal"), collection, id, readConsistencyToken(c));
        const name = original.fileName ?? id;
        c.header("Content-Type", original.contentType);
        c.header(
          "Content-Disposition",
          `attachment; filename="${name.replace(/[^\x20-\x7e]|["\\]/g, "_")}"; filename*=UTF-8''${encodeURIComponent(name)}`,
        );
        return c.body(new Uint8Array(original.bytes));
      },
    )
    .get(
      "/v1/collections/:collection/documents/:externalId/chunks",
      documented("A document's chunks in order, with their locations (page, slide, headings)", {
        consistent: true,
        responses: { 200: "Chunks, and the ordinal to page on from" },
      }),
      auth("read"),
      validate("param", params),
      validate("query", chunksQuery),
      async (c) => {
        const { collection, externalId: id = "" } = c.req.valid("param");
        const query = c.req.valid("query");
        const { value, observed } = await service.documentChunks(
          c.get("principal"),
          collection,
          id,
          query,
          readConsistencyToken(c),
        );
        const last = value[value.length - 1];
        return c.json({
          chunks: value.map((chunk) => ({
            id: chunk.id,
            ordinal: chunk.ordinal,
            content: chunk.content,
            heading_path: chunk.location.headingPath,
            location: locationJson(chunk.location, id),
            char_start: chunk.charStart,
            char_end: chunk.charEnd,
            token_count: chunk.tokenCount,
          })),
          next_after: value.length === query.limit && last ? last.ordinal : null,
          consistency_token: observedToken(c, observed),
        });
      },
    )
    .post(
      "/v1/collections/:collection/documents/:externalId/reparse",
      documented("Parse a document kept as a file again (a new version; its chunks are replaced when it is parsed)", {
        responses: { 202: "Queued", 409: "The document was sent as text" },
      }),
      auth("write"),
      validate("param", params),
      async (c) => {
        const { collection, externalId: id = "" } = c.req.valid("param");
        const { value, token } = await service.reparse(c.get("principal"), collection, id);
        return c.json({ documents: value.length, consistency_token: setConsistencyToken(c, token) }, 202);
      },
    )
    .post(
      "/v1/collections/:collection/reparse",
      documented("Parse every document of the collection kept as a file again", {
        responses: { 202: "Queued, with the number of documents" },
      }),
      auth("write"),
      validate("param", params),
      async (c) => {
        const { value, token } = await service.reparse(c.get("principal"), c.req.valid("param").collection);
        return c.json({ documents: value.length, consistency_token: setConsistencyToken(c, token) }, 202);
      },
    );
}
