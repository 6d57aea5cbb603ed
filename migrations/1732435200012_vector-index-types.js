/**
 * Any embedding size: the HNSW index type is chosen in config (PGRAG_VECTOR_INDEX, validated against
 * the dimension) and recorded with the model, so a start-up with another choice is refused like one
 * with another model. The column stays `vector(D)` (exact distances, re-ranking); the index is over
 * an expression the search queries repeat verbatim:
 *
 * - halfvec: `embedding::halfvec(D)` with halfvec_cosine_ops — up to 4,000 dimensions, half the memory.
 * - binary: `binary_quantize(embedding)::bit(D)` with Hamming distance — any size, 1/32 of the memory;
 *   searches take an oversampled candidate set from it and re-rank it exactly on the full vectors.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    ALTER TABLE embedding_settings ADD COLUMN index_type text NOT NULL DEFAULT 'vector'
      CHECK (index_type IN ('vector', 'halfvec', 'binary'));
    DO $$
    DECLARE
      chosen text := coalesce(nullif(current_setting('pgrag.vector_index', true), ''), 'vector');
      dimension integer := (SELECT s.dimension FROM embedding_settings s);
    BEGIN
      UPDATE embedding_settings SET index_type = chosen;
      IF chosen = 'halfvec' THEN
        EXECUTE format('CREATE INDEX IF NOT EXISTS chunks_embedding_halfvec_idx ON chunks
                          USING hnsw ((embedding::halfvec(%s)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)', dimension);
      ELSIF chosen = 'binary' THEN
        EXECUTE format('CREATE INDEX IF NOT EXISTS chunks_embedding_bit_idx ON chunks
                          USING hnsw ((binary_quantize(embedding)::bit(%s)) bit_hamming_ops) WITH (m = 16, ef_construction = 64)', dimension);
      END IF;
    END $$;
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    DROP INDEX IF EXISTS chunks_embedding_halfvec_idx;
    DROP INDEX IF EXISTS chunks_embedding_bit_idx;
    ALTER TABLE embedding_settings DROP COLUMN index_type;
  `);
};
