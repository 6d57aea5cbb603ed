import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Hono } from "hono";
import { generateSpecs } from "hono-openapi";
import type { AppEnv } from "./context.ts";
import { DOCS_POLICY } from "./page-security.ts";

/**
 * The OpenAPI 3.1 document of the whole API, generated (hono-openapi) from the app's own routes: each
 * route's validators give its parameters and request schemas, its `documented` notes (route-docs.ts)
 * the rest. Generated once, at the first request, when every route is in place.
 */
function openApiDocument(app: Hono<AppEnv>) {
  return generateSpecs(app, {
    documentation: {
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
    },
  });
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

/** The document of `app` (which these routes join), and its Swagger UI page. */
export function openApiRoutes(app: Hono<AppEnv>): Hono<AppEnv> {
  let document: ReturnType<typeof openApiDocument> | undefined;
  return new Hono<AppEnv>()
    .get("/openapi.json", async (c) => {
      // A failed generation is not kept: the next request tries again.
      document ??= openApiDocument(app).catch((error: unknown) => {
        document = undefined;
        throw error;
      });
      return c.json(await document);
    })
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
