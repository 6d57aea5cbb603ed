import { readFileSync } from "node:fs";
import { Hono } from "hono";
import type { Config } from "../config.ts";
import type { AppEnv } from "./context.ts";
import { inlinePagePolicy } from "./page-security.ts";
import { documented } from "./route-docs.ts";

const CHAT_PAGE = readFileSync(new URL("./web/chat-page.html", import.meta.url), "utf8");
const CHAT_PAGE_POLICY = inlinePagePolicy(CHAT_PAGE);

/** The chat page at `/` (plain HTML, no build step) and what it needs to know about the backend. */
export function webRoutes(config: Pick<Config, "inference" | "embedding">): Hono<AppEnv> {
  return new Hono<AppEnv>()
    .get("/", documented("The chat page", { public: true, responses: { 200: "HTML" } }), (c) => {
      c.header("Content-Security-Policy", CHAT_PAGE_POLICY);
      return c.html(CHAT_PAGE);
    })
    .get(
      "/v1/info",
      documented("Which inference backend and models answer (dev: extractive answers, no model)", {
        public: true,
        responses: { 200: "Backend and models" },
      }),
      (c) =>
        c.json({
          // "dev": the in-process dev inference server answers extractively (no model weights).
          inference: config.inference.url ? "external" : "dev",
          chat_model: config.inference.chatModel,
          embedding_model: config.embedding.model,
          embedding_dimension: config.embedding.dimension,
        }),
    );
}
