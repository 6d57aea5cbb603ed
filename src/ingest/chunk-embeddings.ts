import type { Router } from "../db/router.ts";
import { AppError } from "../errors.ts";
import type { EmbeddingClient } from "../inference/embedding-client.ts";
import type { Chunk, ChunkingOptions } from "./chunking.ts";
import { cachedEmbeddings, type EmbeddedChunk, storeEmbeddings } from "./chunks.repository.ts";
import { contentHash } from "./content.ts";
import type { TextPool } from "./text-pool.ts";

/** Chunks a document's text off the event loop, refusing (for good) one that makes too many chunks. */
export async function chunkWithinLimit(
  textPool: TextPool,
  text: string,
  chunking: ChunkingOptions,
  maxChunksPerDocument: number,
): Promise<Chunk[]> {
  const chunks = await textPool.chunk(text, chunking);
  if (chunks.length > maxChunksPerDocument) {
    throw new AppError(
      "unprocessable",
      `the document makes ${chunks.length} chunks, more than the limit of ${maxChunksPerDocument} (PGRAG_MAX_CHUNKS_PER_DOCUMENT): split it or raise the collection's chunking.max_tokens`,
    );
  }
  return chunks;
}

/**
 * Embeds the chunks of many documents: each distinct text once, and only texts not in the embedding
 * cache (which this fills). Returns each document's chunks with their vectors.
 */
export async function embedChunks<K>(
  router: Router,
  embeddings: EmbeddingClient,
  documents: ReadonlyMap<K, readonly Chunk[]>,
): Promise<Map<K, EmbeddedChunk[]>> {
  // Each distinct text is hashed once; the hex form keys both the cache and the mapping back.
  const hashes = new Map<string, { hash: Buffer; text: string }>();
  const keyOfText = new Map<string, string>();
  for (const chunks of documents.values()) {
    for (const chunk of chunks) {
      if (keyOfText.has(chunk.content)) continue;
      const hash = contentHash(chunk.content);
      const key = hash.toString("hex");
      keyOfText.set(chunk.content, key);
      hashes.set(key, { hash, text: chunk.content });
    }
  }
  const { value: cached } = await router.read({ primary: true }, (db) =>
    cachedEmbeddings(
      db,
      [...hashes.values()].map((h) => h.hash),
    ),
  );
  const missing = [...hashes.entries()].filter(([key]) => !cached.has(key));
  if (missing.length > 0) {
    const vectors = await embeddings.embed(missing.map(([, h]) => h.text));
    const fresh = missing.map(([key, h], i) => ({ key, hash: h.hash, embedding: vectors[i] as number[] }));
    await router.write((tx) => storeEmbeddings(tx, fresh));
    for (const entry of fresh) cached.set(entry.key, entry.embedding);
  }
  return new Map(
    [...documents].map(([owner, chunks]) => [
      owner,
      chunks.map((chunk) => ({ ...chunk, embedding: cached.get(keyOfText.get(chunk.content) ?? "") as number[] })),
    ]),
  );
}
