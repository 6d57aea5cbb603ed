import { Piscina } from "piscina";

/**
 * The dev backend's embedding work, in a thread of its own: a real backend embeds on another
 * machine, and hashing thousands of inputs on the event loop would stall the API beside it. The
 * thread starts with the first request and stops after a minute idle.
 */
export class EmbeddingThreads {
  readonly #pool = new Piscina({
    filename: new URL("./embedding-worker.cjs", import.meta.url).href,
    minThreads: 0,
    maxThreads: 1,
    idleTimeout: 60_000,
  });

  /** The texts' vectors one after another, `dimension` float32s each. */
  async embed(texts: readonly string[], dimension: number): Promise<Float32Array> {
    if (texts.length === 0) return new Float32Array(0);
    return (await this.#pool.run({ texts, dimension })) as Float32Array;
  }

  async close(): Promise<void> {
    await this.#pool.close({ force: true });
  }
}
