/**
 * The binary index keeps 8 neighbours a node (HNSW m = 8) instead of pgvector's 16. A bit(D) code is
 * D/8 bytes, so at 384 dimensions the neighbour lists, not the codes, were most of the index: with
 * m = 16 it took 0.17× the vector index, with m = 8 0.12× (bench:vectors, sift projected to 384-d).
 * The sparser graph finds slightly worse candidates, which the exact re-rank of the oversampled set
 * absorbs: recall@10 0.998 → 0.997 at 384-d, 0.995 → 0.992 at 768-d, 0.968 → 0.965 at 128-d.
 * The vector and halfvec indexes keep m = 16: they return the results themselves, with no re-rank.
 *
 * A database migrated with the binary index rebuilds it here (every partition's too).
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => rebuildBinaryIndex(pgm, 8);

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => rebuildBinaryIndex(pgm, 16);

/**
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 * @param {number} m
 */
function rebuildBinaryIndex(pgm, m) {
  // Built on the shared partition first, under the name it had, then declared on the parent, which
  // attaches it and builds the other partitions' (as migration 1732435200013 set them up).
  pgm.sql(`
    DO $$
    DECLARE
      dimension integer := (SELECT s.dimension FROM embedding_settings s WHERE s.index_type = 'binary');
      definition text;
    BEGIN
      IF dimension IS NOT NULL THEN
        definition := format('USING hnsw ((binary_quantize(embedding)::bit(%s)) bit_hamming_ops) WITH (m = ${m}, ef_construction = 64)', dimension);
        DROP INDEX IF EXISTS public.chunks_embedding_bit_idx;
        DROP INDEX IF EXISTS chunk_partitions.chunks_embedding_bit_idx;
        EXECUTE 'CREATE INDEX chunks_embedding_bit_idx ON chunk_partitions.shared ' || definition;
        EXECUTE 'CREATE INDEX chunks_embedding_bit_idx ON public.chunks ' || definition;
      END IF;
    END $$;
  `);
}
