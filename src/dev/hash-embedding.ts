/**
 * The dev inference server's deterministic embedding: hashed word, word-bigram and character
 * trigram features (feature hashing with a sign bit), log-scaled counts, L2-normalised. It carries
 * lexical similarity only, which is what lets the platform run end to end without model weights.
 */

function fnv1a(text: string, seed = 0x811c9dc5): number {
  let hash = seed;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

const WORD = /[\p{L}\p{N}]+/gu;

/** One text's vector, as the backend answers it (float32 values). */
export function hashEmbedding(text: string, dimension: number): number[] {
  return Array.from(hashEmbeddings([text], dimension));
}

/** The texts' vectors one after another: `dimension` float32s each. */
export function hashEmbeddings(texts: readonly string[], dimension: number): Float32Array {
  const out = new Float32Array(texts.length * dimension);
  for (const [index, text] of texts.entries())
    embedInto(text, out.subarray(index * dimension, (index + 1) * dimension));
  return out;
}

function embedInto(text: string, out: Float32Array): void {
  const dimension = out.length;
  const counts = new Float64Array(dimension);
  const add = (feature: string, weight: number) => {
    const hash = fnv1a(feature);
    const sign = hash & 1 ? 1 : -1;
    const slot = (hash >>> 1) % dimension;
    counts[slot] = (counts[slot] as number) + sign * weight;
  };
  let previous = "";
  for (const match of text.toLowerCase().matchAll(WORD)) {
    const word = match[0];
    add(word, 1);
    if (previous) add(`${previous} ${word}`, 0.5);
    if (word.length > 4) {
      const padded = `<${word}>`;
      for (let i = 0; i + 3 <= padded.length; i++) add(padded.slice(i, i + 3), 0.25);
    }
    previous = word;
  }
  let norm = 0;
  for (let i = 0; i < dimension; i++) {
    const c = counts[i] as number;
    const scaled = Math.sign(c) * Math.log1p(Math.abs(c));
    counts[i] = scaled;
    norm += scaled * scaled;
  }
  norm = Math.sqrt(norm);
  for (let i = 0; i < dimension; i++) out[i] = norm > 0 ? (counts[i] as number) / norm : i === 0 ? 1 : 0;
}

/** OpenAI's `encoding_format: "base64"`: little-endian float32s, base64-encoded. */
export function toBase64Floats(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString("base64");
}
