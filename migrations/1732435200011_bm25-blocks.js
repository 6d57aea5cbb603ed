/**
 * BM25 postings in blocks: one row holds many postings of one term (parallel arrays of chunk ids,
 * term frequencies and chunk lengths) instead of one 90–150-byte row per posting. Each block keeps
 * the bounds early termination needs — its largest tf and smallest chunk length, which bound the BM25
 * term weight of every posting in it at any average length — in the primary key's INCLUDE, so a
 * query reads all its terms' block headers with one index-only scan and then only the blocks that can
 * still change its top k.
 *
 * - A write appends one block per term of each insert statement, in the chunks' own transaction: a
 *   document is searchable with its consistency token as soon as it commits.
 * - A deleted chunk's postings stay in their blocks until compaction (search drops ids that are no
 *   longer chunks); what they add to each term's document frequency is recorded in bm25_deletions in
 *   the deleting transaction, so df = Σ block postings − Σ deletions is exact at every moment.
 * - Compaction (a background job) rewrites a term's blocks without dead postings, sorted by their
 *   weight so the first blocks hold the heaviest postings (tight bounds, early termination), in
 *   blocks of at most 128, and marks them compacted.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    CREATE TABLE bm25_blocks (
      collection_id uuid     NOT NULL REFERENCES collections ON DELETE CASCADE,
      term          text     NOT NULL,
      block_id      bigint   GENERATED ALWAYS AS IDENTITY,
      tenant_id     uuid     NOT NULL,
      postings      integer  NOT NULL CHECK (postings > 0),
      max_tf        integer  NOT NULL CHECK (max_tf > 0),
      min_dl        integer  NOT NULL CHECK (min_dl > 0),
      compacted     boolean  NOT NULL DEFAULT false,
      chunk_ids     bigint[] NOT NULL,
      tfs           integer[] NOT NULL,
      dls           integer[] NOT NULL,
      CHECK (cardinality(chunk_ids) = postings AND cardinality(tfs) = postings AND cardinality(dls) = postings),
      PRIMARY KEY (collection_id, term, block_id) INCLUDE (tenant_id, postings, max_tf, min_dl, compacted)
    );
    -- Arrays are read whole for every block a query touches: decompressing them would cost more than
    -- the bytes they save, and blocks stay under the size where PostgreSQL would compress them anyway.
    ALTER TABLE bm25_blocks ALTER COLUMN chunk_ids SET STORAGE EXTERNAL,
                            ALTER COLUMN tfs SET STORAGE EXTERNAL,
                            ALTER COLUMN dls SET STORAGE EXTERNAL;
    ALTER TABLE bm25_blocks SET (autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_vacuum_insert_threshold = 10000);

    CREATE TABLE bm25_deletions (
      collection_id uuid    NOT NULL REFERENCES collections ON DELETE CASCADE,
      term          text    NOT NULL,
      deletion_id   bigint  GENERATED ALWAYS AS IDENTITY,
      tenant_id     uuid    NOT NULL,
      postings      integer NOT NULL CHECK (postings > 0),
      PRIMARY KEY (collection_id, term, deletion_id) INCLUDE (tenant_id, postings)
    );

    -- Today's postings, moved into blocks (uncompacted; the first compaction sorts them). Row-level
    -- security binds the owner (forced), so it is lifted from the table being dropped.
    ALTER TABLE chunk_terms NO FORCE ROW LEVEL SECURITY;
    INSERT INTO bm25_blocks (collection_id, term, tenant_id, postings, max_tf, min_dl, chunk_ids, tfs, dls)
    SELECT collection_id, term, tenant_id, count(*), max(tf), min(dl),
           array_agg(chunk_id ORDER BY chunk_id), array_agg(tf ORDER BY chunk_id), array_agg(dl ORDER BY chunk_id)
    FROM chunk_terms GROUP BY collection_id, term, tenant_id;
    DROP TABLE chunk_terms;

    GRANT SELECT, INSERT, UPDATE, DELETE ON bm25_blocks, bm25_deletions TO pgrag_app;

    -- Compaction jobs: at most one waiting and one running per collection (the singleton key).
    SELECT pgboss.create_queue('compact-postings', json_build_object(
      'policy', 'stately', 'retryLimit', 5, 'retryDelay', 5, 'retryBackoff', true,
      'expireInSeconds', 900, 'retentionMinutes', 60));
  `);
  for (const table of ["bm25_blocks", "bm25_deletions"]) {
    pgm.sql(`
      ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY;
      ALTER TABLE ${table} FORCE ROW LEVEL SECURITY;
      CREATE POLICY tenant_isolation ON ${table}
        USING (tenant_id = pgrag_current_tenant()) WITH CHECK (tenant_id = pgrag_current_tenant());
    `);
  }
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    SELECT pgboss.delete_queue('compact-postings');
    CREATE TABLE chunk_terms (
      collection_id uuid   NOT NULL,
      term          text   NOT NULL,
      chunk_id      bigint NOT NULL REFERENCES chunks ON DELETE CASCADE,
      tenant_id     uuid   NOT NULL,
      tf            integer NOT NULL CHECK (tf > 0),
      dl            integer NOT NULL CHECK (dl > 0),
      PRIMARY KEY (collection_id, term, chunk_id) INCLUDE (tf, dl, tenant_id)
    );
    CREATE INDEX chunk_terms_chunk_idx ON chunk_terms (chunk_id);
    ALTER TABLE chunk_terms SET (autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_vacuum_insert_threshold = 10000);
    ALTER TABLE bm25_blocks NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE chunks NO FORCE ROW LEVEL SECURITY;
    INSERT INTO chunk_terms (collection_id, term, chunk_id, tenant_id, tf, dl)
    SELECT b.collection_id, b.term, p.chunk_id, b.tenant_id, p.tf, p.dl
    FROM bm25_blocks b CROSS JOIN LATERAL unnest(b.chunk_ids, b.tfs, b.dls) AS p(chunk_id, tf, dl)
    WHERE EXISTS (SELECT 1 FROM chunks c WHERE c.id = p.chunk_id);
    ALTER TABLE chunks FORCE ROW LEVEL SECURITY;
    GRANT SELECT, INSERT, UPDATE, DELETE ON chunk_terms TO pgrag_app;
    ALTER TABLE chunk_terms ENABLE ROW LEVEL SECURITY;
    ALTER TABLE chunk_terms FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON chunk_terms
      USING (tenant_id = pgrag_current_tenant()) WITH CHECK (tenant_id = pgrag_current_tenant());
    DROP TABLE bm25_deletions, bm25_blocks;
  `);
};
