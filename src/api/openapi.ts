import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Hono } from "hono";
import { z } from "zod";
import { batchBody as batchCreateBody } from "./batch.routes.ts";
import { chatBody, feedbackBody } from "./chat.routes.ts";
import { openAiChatBody } from "../chat/openai-chat.ts";
import type { AppEnv } from "./context.ts";
import { DOCS_POLICY } from "./page-security.ts";
import { batchBody, collectionBody, documentBody, listQuery } from "./ingest.routes.ts";
import { searchBody } from "./search.routes.ts";

/** JSON Schema of a request schema, as the validator sees its input. */
const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: "input", unrepresentable: "any" });

const errorResponse = {
  description: "An error: `{ error: { code, message, request_id } }`",
  content: {
    "application/json": {
      schema: {
        type: "object",
        properties: {
          error: {
            type: "object",
            required: ["code", "message"],
            properties: {
              code: {
                type: "string",
                enum: [
                  "invalid_request",
                  "unauthorized",
                  "forbidden",
                  "not_found",
                  "conflict",
                  "payload_too_large",
                  "unprocessable",
                  "rate_limited",
                  "quota_exceeded",
                  "unavailable",
                  "preempted",
                  "bad_gateway",
                  "timeout",
                  "internal",
                ],
              },
              message: { type: "string" },
              request_id: { type: "string" },
              details: {},
            },
          },
        },
      },
    },
  },
};

const errors = {
  400: errorResponse,
  401: errorResponse,
  403: errorResponse,
  404: errorResponse,
  429: errorResponse,
  503: errorResponse,
};
const consistencyHeader = {
  name: "X-Consistency-Token",
  in: "header",
  required: false,
  description: "The token of your last write: the read is served by a node that has replayed at least that far.",
  schema: { type: "string", example: "0/16B3748" },
};
const ok = (description: string) => ({ description, content: { "application/json": { schema: { type: "object" } } } });
const json = (s: z.ZodType) => ({ required: true, content: { "application/json": { schema: schema(s) } } });
const collectionParam = { name: "collection", in: "path", required: true, schema: { type: "string" } };
const idParam = { name: "id", in: "path", required: true, schema: { type: "string" } };
const documentParam = { name: "externalId", in: "path", required: true, schema: { type: "string" } };

/** The OpenAPI 3.1 document of the whole API, generated from the same zod schemas that validate requests. */
export function openApiDocument(limits: { maxBatchDocuments: number }) {
  const listParams = Object.entries(
    (schema(listQuery) as { properties?: Record<string, object> }).properties ?? {},
  ).map(([name, s]) => ({
    name,
    in: "query",
    required: false,
    schema: s,
  }));
  return {
    openapi: "3.1.0",
    info: {
      title: "pgrag",
      version: "0.1.0",
      description:
        "Retrieval-augmented generation on PostgreSQL. Writes return X-Consistency-Token; send it back on reads to read your own writes.",
    },
    components: {
      securitySchemes: {
        apiKey: { type: "http", scheme: "bearer", description: "An API key from `pgrag keys create`" },
      },
    },
    security: [{ apiKey: [] }],
    paths: {
      "/healthz": { get: { summary: "Liveness", security: [], responses: { 200: ok("The process is up") } } },
      "/readyz": {
        get: {
          summary: "Readiness: every database node reachable, with replica lag",
          security: [],
          responses: { 200: ok("Ready"), 503: ok("A node is down") },
        },
      },
      "/": { get: { summary: "The chat page", security: [], responses: { 200: { description: "HTML" } } } },
      "/v1/info": {
        get: {
          summary: "Which inference backend and models answer (dev: extractive answers, no model)",
          security: [],
          responses: { 200: ok("Backend and models") },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus metrics",
          security: [],
          responses: { 200: { description: "Prometheus text format" } },
        },
      },
      "/v1/collections": {
        post: {
          summary: "Create a collection",
          requestBody: json(collectionBody),
          responses: { 201: ok("Created"), 409: errorResponse, ...errors },
        },
        get: {
          summary: "List collections",
          parameters: [consistencyHeader],
          responses: { 200: ok("Collections"), ...errors },
        },
      },
      "/v1/collections/{collection}": {
        delete: {
          summary:
            "Delete a collection with its documents, chunks, postings and conversations (409 while an import into it runs)",
          parameters: [collectionParam],
          responses: { 200: ok("Deleted, with the number of documents"), 409: errorResponse, ...errors },
        },
      },
      "/v1/collections/{collection}/documents": {
        post: {
          summary: "Create or replace many documents",
          parameters: [collectionParam],
          requestBody: json(batchBody(limits.maxBatchDocuments)),
          responses: { 202: ok("Queued for ingestion"), 413: errorResponse, ...errors },
        },
        get: {
          summary: "List documents with their ingestion status",
          parameters: [collectionParam, ...listParams, consistencyHeader],
          responses: { 200: ok("Documents"), ...errors },
        },
      },
      "/v1/collections/{collection}/documents/{externalId}": {
        put: {
          summary: "Create or replace one document: JSON, or a raw text/markdown, text/html or text/plain body",
          parameters: [collectionParam, documentParam],
          requestBody: {
            required: true,
            content: {
              "application/json": { schema: schema(documentBody) },
              "text/markdown": { schema: { type: "string" } },
              "text/html": { schema: { type: "string" } },
              "text/plain": { schema: { type: "string" } },
            },
          },
          responses: { 200: ok("Unchanged"), 202: ok("Queued for ingestion"), 413: errorResponse, ...errors },
        },
        get: {
          summary: "A document's status",
          parameters: [collectionParam, documentParam, consistencyHeader],
          responses: { 200: ok("The document"), ...errors },
        },
        delete: {
          summary: "Delete a document and its chunks",
          parameters: [collectionParam, documentParam],
          responses: { 200: ok("Deleted"), ...errors },
        },
      },
      "/v1/collections/{collection}/imports": {
        post: {
          summary:
            "Bulk import: JSON Lines, one document per line (external_id or _id, content or text, title, source, metadata, content_type), streamed; large imports get a partition with indexes built once",
          parameters: [collectionParam],
          requestBody: {
            required: true,
            content: { "application/x-ndjson": { schema: { type: "string" } } },
          },
          responses: { 202: ok("The import, queued"), 409: errorResponse, 413: errorResponse, ...errors },
        },
        get: {
          summary: "The collection's latest imports",
          parameters: [collectionParam, consistencyHeader],
          responses: { 200: ok("Imports"), ...errors },
        },
      },
      "/v1/collections/{collection}/imports/{importId}": {
        get: {
          summary: "An import's status and progress; when completed, a consistency token to read it with",
          parameters: [
            collectionParam,
            { name: "importId", in: "path", required: true, schema: { type: "string", format: "uuid" } },
            consistencyHeader,
          ],
          responses: { 200: ok("The import"), ...errors },
        },
      },
      "/v1/files": {
        post: {
          summary:
            "Upload a batch input file (OpenAI Batch API): multipart, fields file (JSONL of requests) and purpose=batch",
          requestBody: {
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
          },
          responses: { 200: ok("The file"), 413: errorResponse, ...errors },
        },
        get: {
          summary: "The tenant's files, newest first (after, limit, purpose)",
          responses: { 200: ok("A list"), ...errors },
        },
      },
      "/v1/files/{id}": {
        get: { summary: "A file", parameters: [idParam], responses: { 200: ok("The file"), ...errors } },
        delete: {
          summary: "Delete a file (batches made from an input file keep their requests)",
          parameters: [idParam],
          responses: { 200: ok("The file, deleted: true"), ...errors },
        },
      },
      "/v1/models": {
        get: {
          summary: "The models a client may name: rag:<collection> for each collection, and the chat model",
          responses: { 200: ok("A list"), ...errors },
        },
      },
      "/v1/models/{id}": {
        get: {
          summary: "One model (an id with a slash is sent URL-encoded)",
          parameters: [idParam],
          responses: { 200: ok("The model"), ...errors },
        },
      },
      "/v1/usage": {
        get: {
          summary: "The tenant's quotas (collections, running imports, files, running batches), each with what it uses",
          responses: { 200: ok("Each quota's used and limit"), ...errors },
        },
      },
      "/v1/files/{id}/content": {
        get: {
          summary: "A file's content: an input file's requests, a batch's output or error lines (JSONL)",
          parameters: [idParam],
          responses: { 200: { description: "JSON Lines" }, ...errors },
        },
      },
      "/v1/batches": {
        post: {
          summary:
            "Create a batch over an input file (/v1/chat/completions with model rag:<collection>, or /v1/embeddings)",
          requestBody: json(batchCreateBody),
          responses: { 200: ok("The batch"), ...errors },
        },
        get: {
          summary: "The tenant's batches, newest first (after, limit)",
          responses: { 200: ok("A list"), ...errors },
        },
      },
      "/v1/batches/{id}": {
        get: {
          summary: "A batch: status, request_counts, output and error files",
          parameters: [idParam],
          responses: { 200: ok("The batch"), ...errors },
        },
        delete: {
          summary: "Delete a finished batch with its output and error files (409 while it runs: cancel it first)",
          parameters: [idParam],
          responses: { 200: ok("The batch, deleted: true"), ...errors },
        },
      },
      "/v1/batches/{id}/cancel": {
        post: {
          summary: "Cancel a batch: no new line starts; answered ones are kept",
          parameters: [idParam],
          responses: { 200: ok("The batch"), 409: errorResponse, ...errors },
        },
      },
      "/v1/search": {
        post: {
          summary: "Hybrid, vector or BM25 search",
          parameters: [consistencyHeader],
          requestBody: json(searchBody),
          responses: { 200: ok("Ranked chunks"), ...errors },
        },
      },
      "/v1/chat": {
        post: {
          summary:
            "Ask a question: an answer with citations, streamed as Server-Sent Events (start, token, citations, usage, done) or as JSON",
          parameters: [consistencyHeader],
          requestBody: json(chatBody),
          responses: {
            200: { description: "text/event-stream, or JSON when stream is false" },
            502: errorResponse,
            504: errorResponse,
            ...errors,
          },
        },
      },
      "/v1/chat/completions": {
        post: {
          summary: "OpenAI-compatible chat completions with retrieval; citations in an extra `citations` field",
          requestBody: json(openAiChatBody),
          responses: {
            200: { description: "An OpenAI chat completion, or its SSE stream" },
            502: errorResponse,
            504: errorResponse,
            ...errors,
          },
        },
      },
      "/v1/feedback": {
        post: {
          summary: "Thumbs up or down (and a comment) on an answer",
          requestBody: json(feedbackBody),
          responses: { 202: ok("Recorded"), ...errors },
        },
      },
      "/v1/conversations": {
        get: {
          summary: "The tenant's conversations, most recently active first (after, limit)",
          parameters: [consistencyHeader],
          responses: { 200: ok("A page of conversations"), ...errors },
        },
      },
      "/v1/conversations/{id}": {
        get: {
          summary: "A conversation's messages",
          parameters: [
            { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } },
            consistencyHeader,
          ],
          responses: { 200: ok("Messages"), ...errors },
        },
      },
    },
  };
}

// Swagger UI comes from the swagger-ui-dist package, served from this origin: no CDN, nothing unpinned.
const SWAGGER_DIR = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
const DOCS_PAGE = readFileSync(new URL("./web/docs-page.html", import.meta.url), "utf8");
const DOCS_ASSETS: Record<string, { type: string; body: string }> = {
  "swagger-ui.css": {
    type: "text/css; charset=utf-8",
    body: readFileSync(join(SWAGGER_DIR, "swagger-ui.css"), "utf8"),
  },
  "swagger-ui-bundle.js": {
    type: "text/javascript; charset=utf-8",
    body: readFileSync(join(SWAGGER_DIR, "swagger-ui-bundle.js"), "utf8"),
  },
  "init.js": {
    type: "text/javascript; charset=utf-8",
    body: 'window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });\n',
  },
};

export function openApiRoutes(limits: { maxBatchDocuments: number }): Hono<AppEnv> {
  const document = openApiDocument(limits);
  return new Hono<AppEnv>()
    .get("/openapi.json", (c) => c.json(document))
    .get("/docs", (c) => {
      c.header("Content-Security-Policy", DOCS_POLICY);
      return c.html(DOCS_PAGE);
    })
    .get("/docs/assets/:name", (c) => {
      const asset = DOCS_ASSETS[c.req.param("name")];
      if (!asset) return c.notFound();
      c.header("Cache-Control", "public, max-age=86400");
      return c.body(asset.body, 200, { "Content-Type": asset.type });
    });
}
