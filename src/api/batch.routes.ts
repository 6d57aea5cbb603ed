import type { MiddlewareHandler } from "hono";
import { Hono } from "hono";
import { stream } from "hono/streaming";
import { z } from "zod";
import { BATCH_ENDPOINTS, type BatchService } from "../batch/batch.service.ts";
import type { Batch, BatchFile } from "../batch/batches.repository.ts";
import { InvalidRequestError } from "../errors.ts";
import type { Scope } from "../tenancy/principal.ts";
import type { AppEnv } from "./context.ts";
import { multipartLines } from "./multipart-lines.ts";
import { validate } from "./validation.ts";
import { documented } from "./route-docs.ts";

/** File uploads are bounded by PGRAG_BATCH_MAX_FILE_BYTES, not the JSON routes' limit. */
export const FILE_UPLOAD_PATH = /^\/v1\/files$/;

const seconds = (date: Date | null) => (date ? Math.floor(date.getTime() / 1000) : null);

/** OpenAI's file object. */
function fileJson(f: BatchFile) {
  return {
    id: f.id,
    object: "file",
    bytes: f.bytes,
    created_at: seconds(f.createdAt),
    expires_at: seconds(f.expiresAt),
    filename: f.filename,
    purpose: f.purpose,
    status: "processed",
    status_details: null,
  };
}

/** OpenAI's batch object. */
function batchJson(b: Batch) {
  return {
    id: b.id,
    object: "batch",
    endpoint: b.endpoint,
    errors: null,
    input_file_id: b.inputFileId,
    completion_window: b.completionWindow,
    status: b.status,
    output_file_id: b.outputFileId,
    error_file_id: b.errorFileId,
    created_at: seconds(b.times.created),
    in_progress_at: seconds(b.times.inProgress),
    expires_at: seconds(b.times.expires),
    finalizing_at: seconds(b.times.finalizing),
    completed_at: seconds(b.times.completed),
    failed_at: null,
    expired_at: seconds(b.times.expired),
    cancelling_at: seconds(b.times.cancelling),
    cancelled_at: seconds(b.times.cancelled),
    request_counts: b.counts,
    metadata: b.metadata,
  };
}

const batchBody = z.object({
  input_file_id: z.string().min(1).max(100),
  endpoint: z.enum(BATCH_ENDPOINTS),
  completion_window: z.string().max(20).default("24h"),
  metadata: z.record(z.string().max(64), z.string().max(512)).nullish(),
});

const fileParams = z.object({ id: z.string().min(1).max(100) });
const listQuery = z.object({
  after: z.string().max(100).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});
const fileListQuery = listQuery.extend({
  limit: z.coerce.number().int().min(1).max(10_000).default(10_000),
  purpose: z.enum(["batch", "batch_output"]).optional(),
  order: z.enum(["desc"]).default("desc"),
});

/** OpenAI's list envelope over one more item than the page, which tells whether there is a next page. */
function page<T extends { id: string }>(items: readonly T[], limit: number) {
  const data = items.slice(0, limit);
  return {
    object: "list",
    data,
    first_id: data[0]?.id ?? null,
    last_id: data.at(-1)?.id ?? null,
    has_more: items.length > limit,
  };
}

/** The OpenAI Batch API: the official SDKs' files.create, batches.create/retrieve/list/cancel, files.content. */
/** A batch input file's upload, as OpenAI's files API takes it. */
const FILE_UPLOAD = {
  required: true,
  content: {
    "multipart/form-data": {
      schema: {
        type: "object",
        properties: {
          file: { type: "string", format: "binary" },
          purpose: { type: "string", const: "batch" },
          "expires_after[anchor]": { type: "string", const: "created_at" },
          "expires_after[seconds]": { type: "integer", minimum: 60 },
        },
        required: ["file", "purpose"],
      },
    },
  },
};

export function batchRoutes(
  service: BatchService,
  auth: (scope: Scope) => MiddlewareHandler<AppEnv>,
  limits: { maxFileBytes: number; maxLineBytes: number },
): Hono<AppEnv> {
  return new Hono<AppEnv>()
    .post(
      "/v1/files",
      documented(
        "Upload a batch input file (OpenAI Batch API): multipart, fields file (JSONL of requests) and purpose=batch",
        {
          requestBody: FILE_UPLOAD,
          responses: { 200: "The file", 413: "The file is over PGRAG_BATCH_MAX_FILE_BYTES" },
        },
      ),
      auth("write"),
      async (c) => {
        const body = c.req.raw.body;
        const contentType = c.req.header("Content-Type") ?? "";
        if (!body || !contentType.toLowerCase().startsWith("multipart/form-data")) {
          throw new InvalidRequestError("send the file as multipart/form-data with fields file and purpose");
        }
        const form = multipartLines(body, contentType, {
          // The multipart envelope around the file adds a little.
          maxBytes: limits.maxFileBytes + 64 * 1024,
          maxLineBytes: limits.maxLineBytes,
          what: "PGRAG_BATCH_MAX_FILE_BYTES",
        });
        return c.json(fileJson(await service.uploadFile(c.get("principal"), form)));
      },
    )
    .get(
      "/v1/files",
      documented("The tenant's files, newest first", { responses: { 200: "A list" } }),
      auth("read"),
      validate("query", fileListQuery),
      async (c) => {
        const { after, limit, purpose } = c.req.valid("query");
        const files = await service.listFiles(c.get("principal"), {
          after: after ?? null,
          limit: limit + 1,
          purpose: purpose ?? null,
        });
        return c.json(page(files.map(fileJson), limit));
      },
    )
    .get(
      "/v1/files/:id",
      documented("A file", { responses: { 200: "The file" } }),
      auth("read"),
      validate("param", fileParams),
      async (c) => c.json(fileJson(await service.getFile(c.get("principal"), c.req.valid("param").id))),
    )
    .delete(
      "/v1/files/:id",
      documented("Delete a file (409 while a batch reads it)", {
        responses: { 200: "The file, deleted: true", 409: "An unfinished batch reads it" },
      }),
      auth("write"),
      validate("param", fileParams),
      async (c) => {
        const { id } = c.req.valid("param");
        await service.deleteFile(c.get("principal"), id);
        return c.json({ id, object: "file", deleted: true });
      },
    )
    .get(
      "/v1/files/:id/content",
      documented("A file's content: an input file's requests, a batch's output or error lines (JSONL)", {
        responses: { 200: "JSON Lines" },
      }),
      auth("read"),
      validate("param", fileParams),
      async (c) => {
        const principal = c.get("principal");
        const file = await service.getFile(principal, c.req.valid("param").id);
        c.header("Content-Type", "application/jsonl");
        return stream(c, async (out) => {
          for await (const line of service.fileContent(principal, file)) await out.write(line);
        });
      },
    )
    .post(
      "/v1/batches",
      documented(
        "Create a batch over an input file (/v1/chat/completions with model rag:<collection>, or /v1/embeddings)",
        { responses: { 200: "The batch" } },
      ),
      auth("write"),
      validate("json", batchBody),
      async (c) => {
        const body = c.req.valid("json");
        const batch = await service.createBatch(c.get("principal"), {
          inputFileId: body.input_file_id,
          endpoint: body.endpoint,
          completionWindow: body.completion_window,
          metadata: body.metadata ?? null,
        });
        return c.json(batchJson(batch));
      },
    )
    .get(
      "/v1/batches",
      documented("The tenant's batches, newest first", { responses: { 200: "A list" } }),
      auth("read"),
      validate("query", listQuery),
      async (c) => {
        const { after, limit } = c.req.valid("query");
        const batches = await service.listBatches(c.get("principal"), after ?? null, limit + 1);
        return c.json(page(batches.map(batchJson), limit));
      },
    )
    .get(
      "/v1/batches/:id",
      documented("A batch: status, request_counts, output and error files", { responses: { 200: "The batch" } }),
      auth("read"),
      validate("param", fileParams),
      async (c) => c.json(batchJson(await service.getBatch(c.get("principal"), c.req.valid("param").id))),
    )
    .delete(
      "/v1/batches/:id",
      documented("Delete a finished batch with its output and error files", {
        responses: { 200: "The batch, deleted: true", 409: "It runs: cancel it first" },
      }),
      auth("write"),
      validate("param", fileParams),
      async (c) => {
        const { id } = c.req.valid("param");
        await service.deleteBatch(c.get("principal"), id);
        return c.json({ id, object: "batch", deleted: true });
      },
    )
    .post(
      "/v1/batches/:id/cancel",
      documented("Cancel a batch: no new line starts; answered ones are kept", {
        responses: { 200: "The batch", 409: "It has ended" },
      }),
      auth("write"),
      validate("param", fileParams),
      async (c) => c.json(batchJson(await service.cancelBatch(c.get("principal"), c.req.valid("param").id))),
    );
}
