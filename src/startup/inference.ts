import { randomBytes } from "node:crypto";
import type { Config } from "../config.ts";
import {
  createDevInference,
  type DevInferenceServer,
  inProcessFetch,
  startDevInferenceServer,
} from "../dev/dev-server.ts";
import type { InferenceTarget } from "../inference/openai-client.ts";
import type { Logger } from "../logger.ts";
import type { Releasers } from "../lifecycle.ts";

export interface InferenceBackend {
  /** How this process reaches it. */
  readonly target: InferenceTarget;
  /** Opens the dev backend (when it is the one) on a port with a key of its own, for other processes. */
  start(): Promise<void>;
  /** How another process reaches it: the configured URL, or the dev backend's port and key. */
  forOtherProcesses(): InferenceTarget;
  /** The dev backend's server once started (undefined with a configured backend). */
  devServer(): DevInferenceServer | undefined;
}

/**
 * The inference backend, known before any client is built: the configured URL, or else the dev
 * backend in this process, reached without a network hop. Its embedding thread is released with
 * the app, whether or not start() ran.
 */
export function createInferenceBackend(config: Config, releasers: Releasers, logger: Logger): InferenceBackend {
  if (config.inference.url) {
    const target = { baseURL: config.inference.url, apiKey: config.inference.apiKey };
    return { target, start: async () => {}, forOtherProcesses: () => target, devServer: () => undefined };
  }
  const options = {
    dimension: config.embedding.dimension,
    embeddingModel: config.embedding.model,
    chatModel: config.inference.chatModel,
  };
  const dev = createDevInference(options);
  releasers.push("dev inference backend", () => dev.close(), { always: true });
  let server: DevInferenceServer | undefined;
  return {
    target: { baseURL: "http://dev-inference.invalid/v1", apiKey: "in-process", fetch: inProcessFetch(dev) },
    async start() {
      const started = await startDevInferenceServer({ ...options, apiKey: randomBytes(24).toString("base64url") }, dev);
      server = started;
      releasers.push("dev inference server", () => started.close());
      logger.info(
        { url: started.url },
        "no PGRAG_INFERENCE_URL: using the in-process dev inference server (hashed embeddings, extractive answers)",
      );
    },
    forOtherProcesses() {
      if (!server) throw new Error("the dev inference server is not started yet");
      return { baseURL: server.url, apiKey: server.apiKey };
    },
    devServer: () => server,
  };
}
