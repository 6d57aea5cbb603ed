/**
 * The HNSW index over full vectors (pgvector's `vector`, up to 2,000 dimensions), when the configured
 * index type is `vector` (the only one before PGRAG_VECTOR_INDEX existed, so an unset choice means it).
 * m and ef_construction are pgvector's defaults (16, 64): on the SIFT and SciFact evaluations they
 * reach the recall targets at ef_search 40–100. Other index types: migration 1732435200012.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    DO $$
    BEGIN
      IF coalesce(nullif(current_setting('pgrag.vector_index', true), ''), 'vector') = 'vector' THEN
        CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw_idx
          ON chunks USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
      END IF;
    END $$;
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql("DROP INDEX IF EXISTS chunks_embedding_hnsw_idx");
};
