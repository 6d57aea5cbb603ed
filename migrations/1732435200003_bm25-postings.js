/**
 * Storage for Okapi BM25 over PostgreSQL's text-search lexemes, designed so that a query reads only
 * the postings of its own terms:
 *
 * - chunk_terms: one posting per (collection, lexeme, chunk) with the term frequency and the chunk's
 *   length, in a primary key that INCLUDEs them, so scoring is an index-only scan of the query's
 *   terms. Document frequency is the number of postings read, so no df table has to be kept hot.
 * - collection_stats: N (chunks) and the summed length per collection, for the average length;
 *   updated in the same transaction as the chunks, so the statistics are exact after every
 *   add, replace and delete.
 *
 * Postings are derived by the database from chunks.tsv, the same lexemes a query is parsed into.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    CREATE TABLE chunk_terms (
      collection_id uuid   NOT NULL,
      term          text   NOT NULL,
      chunk_id      bigint NOT NULL REFERENCES chunks ON DELETE CASCADE,
      tenant_id     uuid   NOT NULL,
      tf            integer NOT NULL CHECK (tf > 0),
      dl            integer NOT NULL CHECK (dl > 0),
      PRIMARY KEY (collection_id, term, chunk_id) INCLUDE (tf, dl, tenant_id)
    );
    -- Cascading deletes from chunks look postings up by chunk.
    CREATE INDEX chunk_terms_chunk_idx ON chunk_terms (chunk_id);

    CREATE TABLE collection_stats (
      collection_id uuid PRIMARY KEY REFERENCES collections ON DELETE CASCADE,
      tenant_id     uuid NOT NULL,
      chunk_count   bigint NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
      total_length  bigint NOT NULL DEFAULT 0 CHECK (total_length >= 0)
    );

    -- What a document's current chunks add to its collection's statistics, so replacing or
    -- deleting it can subtract exactly that.
    ALTER TABLE documents ADD COLUMN lexeme_total bigint NOT NULL DEFAULT 0;

    -- Content-addressed embeddings: identical text is never sent to the backend twice.
    CREATE TABLE embedding_cache (
      content_hash bytea PRIMARY KEY,
      embedding    vector NOT NULL,
      created_at   timestamptz NOT NULL DEFAULT now()
    );

    GRANT SELECT, INSERT, UPDATE, DELETE ON chunk_terms, collection_stats TO pgrag_app;
    GRANT SELECT, INSERT ON embedding_cache TO pgrag_app;
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    DROP TABLE embedding_cache, collection_stats, chunk_terms;
    ALTER TABLE documents DROP COLUMN lexeme_total;
  `);
};
