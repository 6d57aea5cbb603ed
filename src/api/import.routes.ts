import type { MiddlewareHandler } from "hono";
import { Hono } from "hono";
import { z } from "zod";
import { AppError, InvalidRequestError } from "../errors.ts";
import type { ImportDetails, ImportService } from "../ingest/imports/import.service.ts";
import { importDocumentsOf } from "../ingest/imports/import-lines.ts";
import type { ImportSummary } from "../ingest/imports/imports.repository.ts";
import type { Scope } from "../tenancy/principal.ts";
import { readConsistencyToken, setConsistencyToken } from "./consistency.ts";
import type { AppEnv } from "./context.ts";
import { collectionName } from "../request-fields.ts";
import { validate } from "./validation.ts";
import { documented } from "./route-docs.ts";

/** Import uploads stream in under their own limit (PGRAG_IMPORT_MAX_BYTES), not the JSON routes'. */
export const IMPORT_UPLOAD_PATH = /^\/v1\/collections\/[^/]+\/imports$/;

const JSONL_TYPES = ["application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/json-lines"];

const params = z.object({ collection: collectionName, importId: z.string().uuid("an import id").optional() });

function importJson(i: ImportSummary & { collection?: string; failures?: ImportDetails["failures"] }) {
  return {
    id: i.id,
    collection: i.collection,
    status: i.status,
    placement: i.target,
    progress: {
      documents_seen: i.documentsSeen,
      documents_staged: i.documentsStaged,
      documents_unchanged: i.documentsUnchanged,
      documents_failed: i.documentsFailed,
      chunks_staged: i.chunksStaged,
    },
    error: i.error,
    failures: i.failures?.map((f) => ({ line: f.line, external_id: f.externalId, error: f.error })),
    // Reading with it sees everything the import wrote (on any replica).
    consistency_token: i.visibleToken,
    created_at: i.createdAt,
    finished_at: i.finishedAt,
  };
}

export function importRoutes(
  service: ImportService,
  auth: (scope: Scope) => MiddlewareHandler<AppEnv>,
  limits: { maxBytes: number; maxDocuments: number; maxDocumentBytes: number },
): Hono<AppEnv> {
  return new Hono<AppEnv>()
    .post(
      "/v1/collections/:collection/imports",
      documented(
        "Bulk import: JSON Lines, one document per line (external_id or _id, content or text, title, source, metadata, content_type), streamed; large imports get a partition with indexes built once",
        {
          requestBody: { required: true, content: { "application/x-ndjson": { schema: { type: "string" } } } },
          responses: {
            202: "The import, queued",
            409: "Another import into the collection runs",
            413: "The upload is over PGRAG_IMPORT_MAX_BYTES",
          },
        },
      ),
      auth("write"),
      validate("param", params),
      async (c) => {
        const contentType = (c.req.header("Content-Type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
        if (!JSONL_TYPES.includes(contentType)) {
          throw new AppError(
            "invalid_request",
            `an import is JSON Lines, one document per line: send it as Content-Type: application/x-ndjson (got "${contentType || "none"}")`,
          );
        }
        const body = c.req.raw.body;
        if (!body) throw new InvalidRequestError("the import is empty: send one JSON document per line");
        const { value, token } = await service.upload(
          c.get("principal"),
          c.req.valid("param").collection,
          importDocumentsOf(body, { ...limits, what: "PGRAG_IMPORT_MAX_BYTES" }),
        );
        return c.json({ import: importJson(value), consistency_token: setConsistencyToken(c, token) }, 202);
      },
    )
    .get(
      "/v1/collections/:collection/imports",
      documented("The collection's latest imports", { consistent: true, responses: { 200: "Imports" } }),
      auth("read"),
      validate("param", params),
      async (c) => {
        const { value } = await service.listImports(
          c.get("principal"),
          c.req.valid("param").collection,
          50,
          readConsistencyToken(c),
        );
        return c.json({ imports: value.map(importJson) });
      },
    )
    .get(
      "/v1/collections/:collection/imports/:importId",
      documented("An import's status and progress; when completed, a consistency token to read it with", {
        consistent: true,
        responses: { 200: "The import" },
      }),
      auth("read"),
      validate("param", params),
      async (c) => {
        const { collection, importId = "" } = c.req.valid("param");
        const { value } = await service.getImport(c.get("principal"), collection, importId, readConsistencyToken(c));
        return c.json({ import: importJson(value) });
      },
    );
}
