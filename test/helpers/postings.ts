import { postingsIn } from "../../src/postings/postings-codec.ts";
import { adminQuery } from "./cluster.ts";

/**
 * The chunk id of every posting in the blocks `where` selects (a clause over `bm25_blocks b`, with
 * `values`), decoded from their packed data: what a test reads the postings by.
 */
export async function chunkIdsInBlocks(where: string, values: unknown[] = []): Promise<number[]> {
  const rows = await adminQuery<{ first_chunk: string; postings: number; data: Buffer }>(
    "primary",
    `SELECT b.first_chunk, b.postings, b.data FROM bm25_blocks b ${where}`,
    values,
  );
  const ids: number[] = [];
  for (const r of rows) for (const p of postingsIn(r.data, Number(r.first_chunk), r.postings)) ids.push(p.chunkId);
  return ids;
}
