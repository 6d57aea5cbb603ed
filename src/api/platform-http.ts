import type { Hono } from "hono";
import type { EventRecorder } from "../analytics/event-recorder.ts";
import type { BatchService } from "../batch/batch.service.ts";
import type { ChatService } from "../chat/chat.service.ts";
import type { Config } from "../config.ts";
import type { NodeMonitor } from "../db/node-monitor.ts";
import type { Router } from "../db/router.ts";
import type { IngestService } from "../ingest/ingest.service.ts";
import type { ImportService } from "../ingest/imports/import.service.ts";
import type { Logger } from "../logger.ts";
import type { Registry } from "../metrics.ts";
import type { SearchService } from "../retrieval/search.service.ts";
import { Authenticator } from "../tenancy/authenticator.ts";
import { EndUsers } from "../tenancy/end-users.ts";
import type { Quotas } from "../tenancy/quotas.ts";
import { requireApiKey, tenantWideOnly } from "./auth.middleware.ts";
import type { Scope } from "../tenancy/principal.ts";
import { batchRoutes, FILE_UPLOAD_PATH } from "./batch.routes.ts";
import { chatRoutes } from "./chat.routes.ts";
import type { AppEnv } from "./context.ts";
import { createHttpApp } from "./http-app.ts";
import { IMPORT_UPLOAD_PATH, importRoutes } from "./import.routes.ts";
import { DOCUMENT_UPLOAD_PATH, ingestRoutes } from "./ingest.routes.ts";
import { openAiRoutes } from "./openai.routes.ts";
import { openApiRoutes } from "./openapi.ts";
import { searchRoutes } from "./search.routes.ts";
import { usageRoutes } from "./usage.routes.ts";
import { identityRoutes } from "./identity.routes.ts";
import { webRoutes } from "./web.routes.ts";
import type { Tracing } from "../tracing.ts";

export interface PlatformServices {
  readonly router: Router;
  readonly monitor: NodeMonitor;
  readonly ingest: IngestService;
  readonly imports: ImportService;
  readonly search: SearchService;
  readonly chat: ChatService;
  readonly batches: BatchService;
  readonly quotas: Quotas;
  readonly usageEvents: EventRecorder;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly tracing: Tracing;
  /** The embedded mode's API key once started (the console offers it to a browser on this machine). */
  readonly localApiKey: () => string | undefined;
}

/** Every route of the platform's API and pages, behind one API-key check. */
export function createPlatformHttp(config: Config, services: PlatformServices): Hono<AppEnv> {
  const { ingest, chat, usageEvents } = services;
  const endUsers = new EndUsers(services.router, { ...config.endUsers, cacheTtlMs: config.authCacheTtlMs });
  const auth = requireApiKey(
    new Authenticator(services.router, { cacheTtlMs: config.authCacheTtlMs }),
    endUsers,
    config.rateLimit,
    config.database.embedded === null,
  );
  // Writing documents, imports and batches act on the whole tenant: not for requesters reading as principals.
  const documentsAuth = (scope: Scope) =>
    scope === "read" ? auth(scope) : tenantWideOnly(auth, "changes to collections and documents")(scope);
  const app = createHttpApp({
    logger: services.logger,
    monitor: services.monitor,
    router: services.router,
    registry: services.registry,
    tracing: services.tracing,
    bodyLimit: {
      maxBytes: config.http.maxJsonBodyBytes,
      ownLimit: new RegExp([DOCUMENT_UPLOAD_PATH, IMPORT_UPLOAD_PATH, FILE_UPLOAD_PATH].map((p) => p.source).join("|")),
    },
    routes: [
      ingestRoutes(ingest, documentsAuth, config.ingest),
      importRoutes(services.imports, tenantWideOnly(auth, "imports"), {
        ...config.imports,
        maxDocumentBytes: config.ingest.maxDocumentBytes,
      }),
      searchRoutes(services.search, auth, usageEvents),
      chatRoutes(chat, auth, usageEvents),
      openAiRoutes(chat, auth, usageEvents, async (principal) => [
        ...(await ingest.listCollections(principal, null)).value.map((collection) => ({
          id: `rag:${collection.name}`,
          created: collection.createdAt,
          ownedBy: "pgrag",
        })),
        { id: config.inference.chatModel, created: new Date(0), ownedBy: "inference-backend" },
      ]),
      usageRoutes(services.quotas, auth),
      identityRoutes(endUsers, auth, config.endUsers),
      // A line is one request: its body is a chat request, bounded like the JSON routes' bodies.
      batchRoutes(services.batches, tenantWideOnly(auth, "batches and their files"), {
        maxFileBytes: config.batches.maxFileBytes,
        maxLineBytes: config.http.maxJsonBodyBytes,
      }),
      webRoutes(config, services.localApiKey),
    ],
  });
  return app.route("/", openApiRoutes(app));
}
