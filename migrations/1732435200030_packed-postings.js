/**
 * BM25 postings blocks hold their postings packed in one bytea instead of three integer arrays, and
 * queries score them in the application (src/postings/postings-codec.ts has the layout): a query
 * reads a block as bytes — about 40 ns a posting, decoded and summed in TypeScript — where unnesting
 * arrays and grouping in the executor cost ~0.6 µs a posting. Per posting, in chunk-id order: the
 * gap from the previous chunk id (the first from `first_chunk`), the term frequency and the chunk's
 * length, each a prefix varint — about 5 bytes against 16.
 *
 * Blocks stay what they were: appended per write, rewritten by compaction heaviest-first, bounded by
 * max_tf and min_dl in the key's INCLUDE. A block of a few hundred postings is a few KB: kept in the
 * row (toast_tuple_target), uncompressed (EXTERNAL), so reading one is one heap fetch.
 *
 * pgrag_varint is the SQL side of the layout, for the statements that write postings from tsvectors.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    CREATE FUNCTION pgrag_varint(v bigint) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN v < 0 THEN NULL
                WHEN v < 128 THEN substr(int4send(v::int), 4)
                WHEN v < 16384 THEN substr(int4send((v + 32768)::int), 3)
                WHEN v < 536870912 THEN substr(int8send(v + 3221225472), 5)
                ELSE '\\xe0'::bytea || int8send(v) END;
    GRANT EXECUTE ON FUNCTION pgrag_varint(bigint) TO pgrag_app;

    -- Row-level security binds the owner (forced): lifted while every tenant's blocks are rewritten.
    ALTER TABLE bm25_blocks NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE bm25_blocks ADD COLUMN first_chunk bigint, ADD COLUMN last_chunk bigint, ADD COLUMN data bytea,
      ALTER COLUMN data SET STORAGE EXTERNAL, SET (toast_tuple_target = 8160);
    UPDATE bm25_blocks SET (first_chunk, last_chunk, data) = (
      SELECT min(chunk_id), max(chunk_id),
             string_agg(pgrag_varint(gap) || pgrag_varint(tf) || pgrag_varint(dl), ''::bytea ORDER BY chunk_id)
      FROM (
        SELECT chunk_id, tf, dl, chunk_id - lag(chunk_id, 1, chunk_id) OVER (ORDER BY chunk_id) AS gap
        FROM unnest(chunk_ids, tfs, dls) AS u(chunk_id, tf, dl)
      ) AS gapped
    );
    ALTER TABLE bm25_blocks FORCE ROW LEVEL SECURITY;
    ALTER TABLE bm25_blocks
      DROP COLUMN chunk_ids, DROP COLUMN tfs, DROP COLUMN dls,
      ALTER COLUMN first_chunk SET NOT NULL, ALTER COLUMN last_chunk SET NOT NULL, ALTER COLUMN data SET NOT NULL,
      ADD CHECK (first_chunk <= last_chunk);
  `);
};

/**
 * Back to integer arrays, rebuilt from the chunks' own lexemes (postings are derived data): one
 * uncompacted block per term and collection, which compaction sorts; no deletions left over.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const down = (pgm) => {
  pgm.sql(`
    ALTER TABLE bm25_blocks NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE bm25_deletions NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE chunks NO FORCE ROW LEVEL SECURITY;
    DELETE FROM bm25_blocks;
    DELETE FROM bm25_deletions;
    ALTER TABLE bm25_blocks
      DROP COLUMN first_chunk, DROP COLUMN last_chunk, DROP COLUMN data,
      ADD COLUMN chunk_ids bigint[] NOT NULL, ADD COLUMN tfs integer[] NOT NULL, ADD COLUMN dls integer[] NOT NULL,
      ADD CHECK (cardinality(chunk_ids) = postings AND cardinality(tfs) = postings AND cardinality(dls) = postings),
      RESET (toast_tuple_target);
    ALTER TABLE bm25_blocks ALTER COLUMN chunk_ids SET STORAGE EXTERNAL,
                            ALTER COLUMN tfs SET STORAGE EXTERNAL,
                            ALTER COLUMN dls SET STORAGE EXTERNAL;
    WITH postings AS (
      SELECT c.collection_id, c.tenant_id, c.id AS chunk_id, u.lexeme AS term, coalesce(cardinality(u.positions), 1) AS tf
      FROM chunks c CROSS JOIN LATERAL unnest(c.tsv) AS u
    ),
    lengths AS (SELECT chunk_id, sum(tf)::int AS dl FROM postings GROUP BY chunk_id)
    INSERT INTO bm25_blocks (collection_id, term, tenant_id, postings, max_tf, min_dl, chunk_ids, tfs, dls)
    SELECT p.collection_id, p.term, p.tenant_id, count(*), max(p.tf), min(l.dl),
           array_agg(p.chunk_id ORDER BY p.chunk_id), array_agg(p.tf ORDER BY p.chunk_id), array_agg(l.dl ORDER BY p.chunk_id)
    FROM postings p JOIN lengths l USING (chunk_id)
    GROUP BY p.collection_id, p.term, p.tenant_id;
    ALTER TABLE chunks FORCE ROW LEVEL SECURITY;
    ALTER TABLE bm25_deletions FORCE ROW LEVEL SECURITY;
    ALTER TABLE bm25_blocks FORCE ROW LEVEL SECURITY;
    DROP FUNCTION pgrag_varint(bigint);
  `);
};
