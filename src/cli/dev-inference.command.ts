import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { loadConfig } from "../config.ts";
import { startDevInferenceServer } from "../dev/dev-server.ts";
import { untilSignal } from "./signals.ts";

/**
 * `pgrag dev-inference`: the OpenAI-compatible dev inference server on its own. Any local user can
 * reach its port, so it asks every request for a key: PGRAG_INFERENCE_API_KEY when set (the value a
 * pgrag pointed at it sends), else one made up now and printed.
 */
export async function runDevInference(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { port: { type: "string", default: "8081" }, host: { type: "string", default: "127.0.0.1" } },
  });
  const given = process.env.PGRAG_INFERENCE_API_KEY;
  const config = loadConfig({ PGRAG_PRIMARY_URL: "postgres://unused/unused", ...process.env });
  const server = await startDevInferenceServer({
    host: values.host,
    port: Number(values.port),
    apiKey: given ?? randomBytes(24).toString("base64url"),
    dimension: config.embedding.dimension,
    embeddingModel: config.embedding.model,
    chatModel: config.inference.chatModel,
  });
  process.stdout.write(
    `dev inference server at ${server.url} (embeddings: ${config.embedding.model}/${config.embedding.dimension}, chat: ${config.inference.chatModel})\n` +
      (given
        ? "it asks for the key in PGRAG_INFERENCE_API_KEY\n"
        : `its key: PGRAG_INFERENCE_URL=${server.url} PGRAG_INFERENCE_API_KEY=${server.apiKey}\n`),
  );
  await untilSignal({ info: () => {}, error: () => {} }, 5_000);
  await server.close();
}
