import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { offlineKysely } from "../../../harness/offline-kysely.ts";
import { decodeBlock, gapInBlock, PACKED_BLOCK_COLUMNS } from "../../../src/postings/postings-codec.ts";
import { adminQuery } from "../../helpers/cluster.ts";

/**
 * Postings are packed by SQL (ingestion, bulk builds) and by TypeScript (compaction), and read by
 * TypeScript: the SQL side must write exactly the layout postings-codec.ts reads, at every varint
 * width.
 */
describe("postings packed in SQL", () => {
  it("decode in TypeScript to the postings they were built from, at every varint width", async () => {
    const widths = [0, 1, 127, 128, 16_383, 16_384, 2 ** 29 - 1, 2 ** 29, 2 ** 40];
    const postings: { chunkId: number; tf: number; dl: number }[] = [];
    let chunkId = 7;
    for (const [i, gap] of widths.entries()) {
      if (gap === 0) continue;
      chunkId += gap;
      // Frequencies and lengths are int4 columns: every width up to theirs.
      const small = (j: number) => Math.min(widths[j % widths.length] || 1, 2 ** 31 - 1);
      postings.push({ chunkId, tf: small(i + 3), dl: small(i + 5) });
    }
    postings.unshift({ chunkId: 7, tf: 256, dl: 16_384 });
    const query = sql`
      SELECT * FROM (
        SELECT ${PACKED_BLOCK_COLUMNS} FROM (
          SELECT chunk_id, tf, dl, ${gapInBlock(sql`chunk_id`, sql`1`)} AS gap
          FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS p(chunk_id, tf, dl)
        ) AS gapped
      ) AS block(postings, max_tf, min_dl, first_chunk, last_chunk, data)`.compile(offlineKysely());
    const [row] = await adminQuery<{ postings: number; first_chunk: string; last_chunk: string; data: Buffer }>(
      "primary",
      query.sql,
      [postings.map((p) => p.chunkId), postings.map((p) => p.tf), postings.map((p) => p.dl)],
    );
    expect(row?.postings).toBe(postings.length);
    expect([Number(row?.first_chunk), Number(row?.last_chunk)]).toEqual([7, postings.at(-1)?.chunkId]);
    const decoded = decodeBlock(row?.data ?? Buffer.alloc(0), Number(row?.first_chunk), postings.length);
    expect(Array.from(decoded.chunkIds)).toEqual(postings.map((p) => p.chunkId));
    expect(Array.from(decoded.tfs)).toEqual(postings.map((p) => p.tf));
    expect(Array.from(decoded.dls)).toEqual(postings.map((p) => p.dl));
  });
});
