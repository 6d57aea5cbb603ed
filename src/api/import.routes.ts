import type { MiddlewareHandler } from "hono";
import { Hono } from "hono";
import { z } from "zod";
import { formatLsn, parseLsn } from "../db/lsn.ts";
import { AppError, InvalidRequestError } from "../errors.ts";
import type { ImportDetails, ImportService } from "../ingest/import.service.ts";
import type { ImportLine, ImportSummary } from "../ingest/imports.repository.ts";
import type { Scope } from "../tenancy/principal.ts";
import { bodyLines } from "./body-lines.ts";
import { readConsistencyToken, setConsistencyToken } from "./consistency.ts";
import type { AppEnv } from "./context.ts";
import { documentFields, externalId } from "./ingest.routes.ts";
import { collectionName } from "./request-fields.ts";
import { describeIssues, validate } from "./validation.ts";

/** Import uploads stream in under their own limit (PGRAG_IMPORT_MAX_BYTES), not the JSON routes'. */
export const IMPORT_UPLOAD_PATH = /^\/v1\/collections\/[^/]+\/imports$/;

const JSONL_TYPES = ["application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/json-lines"];

/** A line: a document as the batch upload takes it; BEIR's `_id` and `text` are read as external_id and content. */
const importLine = z.preprocess(
  (value) =>
    value && typeof value === "object" && !Array.isArray(value)
      ? {
          ...value,
          external_id: (value as Record<string, unknown>).external_id ?? (value as Record<string, unknown>)._id,
          content: (value as Record<string, unknown>).content ?? (value as Record<string, unknown>).text,
        }
      : value,
  z.object({ external_id: externalId, ...documentFields }),
);

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
    consistency_token: i.visibleLsn && formatLsn(parseLsn(i.visibleLsn) ?? 0n),
    created_at: i.createdAt,
    finished_at: i.finishedAt,
  };
}

export function importRoutes(
  service: ImportService,
  auth: (scope: Scope) => MiddlewareHandler<AppEnv>,
  limits: { maxBytes: number; maxDocuments: number; maxDocumentBytes: number },
): Hono<AppEnv> {
  /** Validated documents from the uploaded lines; a bad line stops the upload with its number. */
  async function* documentsOf(body: ReadableStream<Uint8Array>): AsyncGenerator<ImportLine> {
    let documents = 0;
    // JSON escapes can double a document's size; titles, metadata and keys add a little.
    const maxLineBytes = limits.maxDocumentBytes * 2 + 256 * 1024;
    for await (const { number, text } of bodyLines(body, { ...limits, maxLineBytes, what: "PGRAG_IMPORT_MAX_BYTES" })) {
      if (text.trim() === "") continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw new InvalidRequestError(`line ${number} is not valid JSON (one document object per line)`);
      }
      const parsed = importLine.safeParse(value);
      if (!parsed.success) {
        const { message, details } = describeIssues(parsed.error);
        throw new InvalidRequestError(`line ${number}: ${message}`, { details });
      }
      documents += 1;
      if (documents > limits.maxDocuments) {
        throw new AppError(
          "payload_too_large",
          `more than ${limits.maxDocuments} documents in one import (PGRAG_IMPORT_MAX_DOCUMENTS); split the file`,
        );
      }
      const d = parsed.data;
      yield {
        line: number,
        externalId: d.external_id,
        title: d.title ?? null,
        source: d.source ?? null,
        contentType: d.content_type,
        metadata: d.metadata ?? {},
        content: d.content,
      };
    }
  }

  return new Hono<AppEnv>()
    .post("/v1/collections/:collection/imports", auth("write"), validate("param", params), async (c) => {
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
        documentsOf(body),
      );
      return c.json({ import: importJson(value), consistency_token: setConsistencyToken(c, token) }, 202);
    })
    .get("/v1/collections/:collection/imports", auth("read"), validate("param", params), async (c) => {
      const { value } = await service.listImports(
        c.get("principal"),
        c.req.valid("param").collection,
        50,
        readConsistencyToken(c),
      );
      return c.json({ imports: value.map(importJson) });
    })
    .get("/v1/collections/:collection/imports/:importId", auth("read"), validate("param", params), async (c) => {
      const { collection, importId = "" } = c.req.valid("param");
      const { value } = await service.getImport(c.get("principal"), collection, importId, readConsistencyToken(c));
      return c.json({ import: importJson(value) });
    });
}
