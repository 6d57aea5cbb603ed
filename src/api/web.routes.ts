import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Hono } from "hono";
import type { Config } from "../config.ts";
import type { AppEnv } from "./context.ts";
import { consolePolicy } from "./page-security.ts";
import { documented } from "./route-docs.ts";

/** The console's build (`npm run build:console`, run by `npm start` and `npm test`): not committed. */
const CONSOLE_DIR = fileURLToPath(new URL("../../console/dist/", import.meta.url));

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
};

async function consoleFile(path: string): Promise<Buffer | undefined> {
  return readFile(`${CONSOLE_DIR}${path}`).catch(() => undefined);
}

/**
 * The console at `/` (its page, its hashed assets, its icon), and what it needs to know about the
 * backend. `localApiKey` is the embedded mode's key, offered to a browser on this machine only.
 */
export function webRoutes(
  config: Pick<Config, "inference" | "embedding" | "http">,
  localApiKey: () => string | undefined,
): Hono<AppEnv> {
  const policy = consolePolicy(config.http.consoleEngineOrigins);
  return new Hono<AppEnv>()
    .get("/", documented("The console", { public: true, responses: { 200: "HTML" } }), async (c) => {
      const page = await consoleFile("index.html");
      if (!page) {
        return c.text("The console is not built: run `npm run build:console` (npm start does).", 503);
      }
      c.header("Content-Security-Policy", policy);
      c.header("Cache-Control", "no-cache");
      return c.html(page.toString("utf8"));
    })
    .get("/assets/:name{[A-Za-z0-9_.-]+}", async (c) => {
      const name = c.req.param("name");
      const body = await consoleFile(`assets/${name}`);
      if (!body) return c.notFound();
      // Vite names each asset by its content's hash: a new build makes new names.
      c.header("Cache-Control", "public, max-age=31536000, immutable");
      return c.body(new Uint8Array(body), 200, { "Content-Type": TYPES[extname(name)] ?? "application/octet-stream" });
    })
    .get("/favicon.ico", async (c) => {
      const icon = await consoleFile("favicon.svg");
      if (!icon) return c.notFound();
      c.header("Cache-Control", "public, max-age=86400");
      return c.body(new Uint8Array(icon), 200, { "Content-Type": "image/svg+xml" });
    })
    .get(
      "/v1/info",
      documented("Which inference backend and models answer (dev: extractive answers, no model)", {
        public: true,
        responses: { 200: "Backend and models" },
      }),
      (c) => {
        const key = localApiKey();
        return c.json({
          // "dev": the in-process dev inference server answers extractively (no model weights).
          inference: config.inference.url ? "external" : "dev",
          chat_model: config.inference.chatModel,
          embedding_model: config.embedding.model,
          embedding_dimension: config.embedding.dimension,
          // Where the console may send a prompt to generate on the user's device.
          console_engine_origins: config.http.consoleEngineOrigins,
          // Embedded mode only, and only to this machine: the console offers it on sign-in.
          ...(key &&
          isLocalRequest(c.env?.incoming?.socket?.remoteAddress, c.req.header("Host"), c.req.header("Sec-Fetch-Site"))
            ? { local_api_key: key }
            : {}),
        });
      },
    );
}

/**
 * A browser on this machine, on this page: the peer is loopback, the Host names a loopback address
 * (a DNS-rebound name does not), and the browser says the request is not from another site.
 */
function isLocalRequest(peer: string | undefined, host: string | undefined, fetchSite: string | undefined): boolean {
  const loopbackPeer = peer === "127.0.0.1" || peer === "::1" || peer === "::ffff:127.0.0.1";
  const loopbackHost = /^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(host ?? "");
  return (
    loopbackPeer && loopbackHost && (fetchSite === undefined || fetchSite === "same-origin" || fetchSite === "none")
  );
}
