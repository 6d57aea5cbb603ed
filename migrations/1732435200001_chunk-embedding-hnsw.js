/**
 * The HNSW index is built CONCURRENTLY so that adding it to a populated table never blocks ingestion;
 * that forbids a transaction around this migration. m and ef_construction are pgvector's defaults
 * (16, 64): on the SIFT and SciFact evaluations they reach the recall targets at ef_search 40–100.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.noTransaction();
  pgm.sql(`
    CREATE INDEX CONCURRENTLY IF NOT EXISTS chunks_embedding_hnsw_idx
      ON chunks USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.noTransaction();
  pgm.sql("DROP INDEX CONCURRENTLY IF EXISTS chunks_embedding_hnsw_idx");
};
