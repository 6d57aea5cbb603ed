/**
 * Bulk imports build a collection's indexes once instead of row by row: `chunks` becomes a table
 * partitioned by collection. Every collection starts in the shared default partition (the former
 * table, moved to schema chunk_partitions, indexes and all, without a copy). A large import stages
 * its chunks in a table of its own with no index, builds the indexes there in one pass (HNSW in
 * parallel, with the import's maintenance_work_mem) and attaches it as the collection's partition;
 * from then on the collection's searches use its own, smaller graph.
 *
 * The application reaches chunks only through the parent, where its grants and the row-level
 * security policies are; partitions carry the same policies (forced) and no grants. The DDL of an
 * import runs in SECURITY DEFINER functions that do only that and check the tenant; the app role
 * still owns nothing and creates nothing.
 *
 * Keys: partitioned tables need the partition key in every unique constraint, so `id` and
 * `(document_id, ordinal)` stay unique per partition (ids come from one sequence), not on the parent.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    CREATE SCHEMA chunk_partitions;
    ALTER TABLE chunks SET SCHEMA chunk_partitions;
    ALTER TABLE chunk_partitions.chunks RENAME TO shared;
    CREATE TABLE chunks (LIKE chunk_partitions.shared INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING IDENTITY
                                                      INCLUDING CONSTRAINTS)
      PARTITION BY LIST (collection_id);
    ALTER TABLE chunk_partitions.shared ALTER COLUMN id DROP IDENTITY;
    SELECT setval(pg_get_serial_sequence('public.chunks', 'id'), coalesce((SELECT max(id) FROM chunk_partitions.shared), 0) + 1, false);
    ALTER TABLE chunks ATTACH PARTITION chunk_partitions.shared DEFAULT;

    -- The shared partition's indexes, declared on the parent: each existing one is attached, not rebuilt,
    -- and an import's partition gets the same set.
    DO $$
    DECLARE
      index_oid oid;
    BEGIN
      FOR index_oid IN
        SELECT i.indexrelid FROM pg_index i
        WHERE i.indrelid = 'chunk_partitions.shared'::regclass AND NOT i.indisunique
      LOOP
        EXECUTE replace(pg_get_indexdef(index_oid), 'ON chunk_partitions.shared', 'ON public.chunks');
      END LOOP;
    END $$;
    ALTER TABLE chunks ADD FOREIGN KEY (document_id) REFERENCES documents ON DELETE CASCADE;

    GRANT SELECT, INSERT, UPDATE, DELETE ON chunks TO pgrag_app;
    GRANT SELECT ON chunks TO pgrag_cross_tenant;
    REVOKE ALL ON chunk_partitions.shared FROM pgrag_app, pgrag_cross_tenant;
    ALTER TABLE chunks ENABLE ROW LEVEL SECURITY;
    ALTER TABLE chunks FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON chunks
      USING (tenant_id = pgrag_current_tenant()) WITH CHECK (tenant_id = pgrag_current_tenant());
    CREATE POLICY cross_tenant_select ON chunks FOR SELECT TO pgrag_cross_tenant USING (true);

    -- The analysts' view named the table itself, which is now the shared partition.
    ${asViewOwner(`EXECUTE 'CREATE OR REPLACE VIEW analytics.top_documents AS '
              || replace(pg_get_viewdef('analytics.top_documents'::regclass), 'chunk_partitions.shared c', 'public.chunks c');`)}

    CREATE TABLE imports (
      id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id          uuid NOT NULL,
      collection_id      uuid NOT NULL,
      -- uploading → queued → embedding → indexing → completed | failed
      status             text NOT NULL DEFAULT 'uploading'
                         CHECK (status IN ('uploading', 'queued', 'embedding', 'indexing', 'completed', 'failed')),
      -- Chosen when the index phase starts: a partition of its own, or appended to the collection's.
      target             text CHECK (target IN ('own_partition', 'append')),
      documents_seen     integer NOT NULL DEFAULT 0,
      documents_staged integer NOT NULL DEFAULT 0,
      documents_unchanged integer NOT NULL DEFAULT 0,
      documents_failed   integer NOT NULL DEFAULT 0,
      chunks_staged     integer NOT NULL DEFAULT 0,
      error              text,
      -- The commit that made the import visible: a consistency token for reading it.
      visible_lsn        pg_lsn,
      created_at         timestamptz NOT NULL DEFAULT now(),
      updated_at         timestamptz NOT NULL DEFAULT now(),
      finished_at        timestamptz,
      FOREIGN KEY (tenant_id, collection_id) REFERENCES collections (tenant_id, id) ON DELETE CASCADE
    );
    -- One import at a time per collection: two would race for its partition.
    CREATE UNIQUE INDEX imports_one_running ON imports (collection_id) WHERE status NOT IN ('completed', 'failed');
    CREATE INDEX imports_tenant_idx ON imports (tenant_id, created_at DESC);

    -- The upload, line by line, until the import makes documents of it (all at once, at the end).
    CREATE TABLE import_documents (
      import_id     uuid    NOT NULL REFERENCES imports ON DELETE CASCADE,
      line          integer NOT NULL,
      tenant_id     uuid    NOT NULL,
      external_id   text    NOT NULL,
      title         text,
      source        text,
      content_type  text    NOT NULL,
      metadata      jsonb   NOT NULL DEFAULT '{}',
      content       text    NOT NULL,
      -- pending → staged (its chunks are in the staging table) | unchanged (same as stored) | failed (error)
      state         text    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'staged', 'unchanged', 'failed')),
      error         text,
      -- Chosen when staged: the stored document's id when it replaces one, else a new one.
      document_id   uuid,
      version       integer,
      hash          bytea,
      chunk_count   integer,
      lexeme_total  bigint,
      PRIMARY KEY (import_id, line),
      UNIQUE (import_id, external_id)
    );
    CREATE INDEX import_documents_pending_idx ON import_documents (import_id, line) WHERE state = 'pending';

    GRANT SELECT, INSERT, UPDATE, DELETE ON imports, import_documents TO pgrag_app;
    ALTER TABLE imports ENABLE ROW LEVEL SECURITY;
    ALTER TABLE imports FORCE ROW LEVEL SECURITY;
    ALTER TABLE import_documents ENABLE ROW LEVEL SECURITY;
    ALTER TABLE import_documents FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON imports
      USING (tenant_id = pgrag_current_tenant()) WITH CHECK (tenant_id = pgrag_current_tenant());
    CREATE POLICY tenant_isolation ON import_documents
      USING (tenant_id = pgrag_current_tenant()) WITH CHECK (tenant_id = pgrag_current_tenant());

    ${IMPORT_FUNCTIONS}

    -- One job per import, run in steps (each a job of its own) so a restart resumes where it stopped.
    SELECT pgboss.create_queue('run-import', json_build_object(
      'policy', 'standard', 'retryLimit', 10, 'retryDelay', 5, 'retryBackoff', true,
      'expireInSeconds', 900, 'retentionMinutes', 1440));
  `);
};

/**
 * The DDL of an import, as the owner, for the current tenant's import only (row-level security binds
 * the owner too: an import of another tenant is not found). Staging tables live in chunk_partitions,
 * named after the import.
 */
const IMPORT_FUNCTIONS = `
    CREATE FUNCTION pgrag_import_staging(import uuid) RETURNS regclass
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
      AS $fn$
      DECLARE
        found imports;
        staging text := 'import_' || replace(import::text, '-', '');
      BEGIN
        SELECT * INTO found FROM imports i WHERE i.id = import;
        IF found.id IS NULL THEN RAISE EXCEPTION 'no import %', import USING ERRCODE = 'no_data_found'; END IF;
        IF to_regclass('chunk_partitions.' || staging) IS NULL THEN
          EXECUTE format('CREATE TABLE chunk_partitions.%I (LIKE public.chunks INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)', staging);
          EXECUTE format('ALTER TABLE chunk_partitions.%I ALTER COLUMN id SET DEFAULT nextval(%L)', staging,
                         pg_get_serial_sequence('public.chunks', 'id'));
          -- Lets ATTACH PARTITION skip scanning the table, and refuses any other collection's rows.
          EXECUTE format('ALTER TABLE chunk_partitions.%I ADD CHECK (collection_id = %L AND tenant_id = %L)',
                         staging, found.collection_id, found.tenant_id);
          EXECUTE format('ALTER TABLE chunk_partitions.%I ENABLE ROW LEVEL SECURITY', staging);
          EXECUTE format('ALTER TABLE chunk_partitions.%I FORCE ROW LEVEL SECURITY', staging);
          EXECUTE format('CREATE POLICY tenant_isolation ON chunk_partitions.%I USING (tenant_id = pgrag_current_tenant())
                            WITH CHECK (tenant_id = pgrag_current_tenant())', staging);
          EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON chunk_partitions.%I TO pgrag_app', staging);
        END IF;
        RETURN ('chunk_partitions.' || staging)::regclass;
      END $fn$;

    -- Every index the parent declares, built on the staging table in one pass each (unique keys first).
    CREATE FUNCTION pgrag_import_build_indexes(import uuid) RETURNS void
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
      AS $fn$
      DECLARE
        staging regclass := pgrag_import_staging(import);
        parent_index record;
      BEGIN
        -- Built already (a restart after the build committed): nothing to do.
        IF EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = staging AND i.indisprimary) THEN RETURN; END IF;
        EXECUTE format('ALTER TABLE %s ADD PRIMARY KEY (id), ADD UNIQUE (document_id, ordinal)', staging);
        FOR parent_index IN
          SELECT i.indexrelid, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE i.indrelid = 'public.chunks'::regclass
        LOOP
          EXECUTE replace(replace(pg_get_indexdef(parent_index.indexrelid), 'ON ONLY public.chunks', 'ON ' || staging::text),
                          'INDEX ' || parent_index.relname || ' ', 'INDEX ');
        END LOOP;
      END $fn$;

    -- The staging table becomes the collection's partition; the caller moved the collection's other
    -- chunks into it first (its own rows, under row-level security). Locks the shared partition
    -- briefly: attaching next to a default partition checks that it holds none of the collection's rows.
    CREATE FUNCTION pgrag_import_attach(import uuid) RETURNS void
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
      AS $fn$
      DECLARE
        staging regclass := pgrag_import_staging(import);
        collection uuid := (SELECT i.collection_id FROM imports i WHERE i.id = import);
      BEGIN
        EXECUTE format('REVOKE ALL ON %s FROM pgrag_app', staging);
        EXECUTE format('ALTER TABLE public.chunks ATTACH PARTITION %s FOR VALUES IN (%L)', staging, collection);
        EXECUTE format('ALTER TABLE %s RENAME TO %I', staging, 'collection_' || replace(collection::text, '-', ''));
      END $fn$;

    CREATE FUNCTION pgrag_import_drop_staging(import uuid) RETURNS void
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
      AS $fn$
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM imports i WHERE i.id = import) THEN RETURN; END IF;
        EXECUTE format('DROP TABLE IF EXISTS chunk_partitions.%I', 'import_' || replace(import::text, '-', ''));
      END $fn$;

    -- Whether the collection has a partition of its own (imports into it append to that partition).
    CREATE FUNCTION pgrag_collection_partition(collection uuid) RETURNS regclass
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
      AS $fn$
        SELECT c.oid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'public.chunks'::regclass
          AND EXISTS (SELECT 1 FROM collections k WHERE k.id = collection)
          AND c.relname = 'collection_' || replace(collection::text, '-', '')
      $fn$;

    REVOKE ALL ON FUNCTION pgrag_import_staging(uuid), pgrag_import_build_indexes(uuid), pgrag_import_attach(uuid),
                           pgrag_import_drop_staging(uuid), pgrag_collection_partition(uuid) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION pgrag_import_staging(uuid), pgrag_import_build_indexes(uuid), pgrag_import_attach(uuid),
                              pgrag_import_drop_staging(uuid), pgrag_collection_partition(uuid) TO pgrag_app;
    GRANT USAGE ON SCHEMA chunk_partitions TO pgrag_app;
    GRANT USAGE ON SEQUENCE chunks_id_seq TO pgrag_app;`;

/** Replacing a view takes its owner, pgrag_cross_tenant (migration 10), which the migrator becomes only for this. */
const asViewOwner = (statement) => `
    GRANT pgrag_cross_tenant TO CURRENT_USER;
    DO $$
    BEGIN
      ${statement}
    END $$;
    REVOKE pgrag_cross_tenant FROM CURRENT_USER;`;

/** Every partition's rows back into one plain table, which becomes `chunks` again. */
export const down = (pgm) => {
  pgm.sql(`
    SELECT pgboss.delete_queue('run-import');
    DROP FUNCTION pgrag_import_staging(uuid), pgrag_import_build_indexes(uuid), pgrag_import_attach(uuid),
                  pgrag_import_drop_staging(uuid), pgrag_collection_partition(uuid);
    DROP TABLE import_documents, imports;
    ALTER TABLE chunks DETACH PARTITION chunk_partitions.shared;
    DO $$
    DECLARE
      part regclass;
      columns text := (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
                       WHERE attrelid = 'chunk_partitions.shared'::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '');
    BEGIN
      FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'public.chunks'::regclass LOOP
        EXECUTE format('INSERT INTO chunk_partitions.shared (%s) SELECT %s FROM %s', columns, columns, part);
      END LOOP;
    END $$;
    ${asViewOwner(`EXECUTE 'CREATE OR REPLACE VIEW analytics.top_documents AS '
              || replace(pg_get_viewdef('analytics.top_documents'::regclass), 'JOIN chunks c', 'JOIN chunk_partitions.shared c');`)}
    DROP TABLE chunks CASCADE;
    DO $$
    DECLARE
      part regclass;
    BEGIN
      FOR part IN SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = 'chunk_partitions' AND c.relname <> 'shared' AND c.relkind = 'r' LOOP
        EXECUTE format('DROP TABLE %s', part);
      END LOOP;
    END $$;
    ALTER TABLE chunk_partitions.shared SET SCHEMA public;
    DROP SCHEMA chunk_partitions;
    ALTER TABLE public.shared RENAME TO chunks;
    ALTER TABLE chunks ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
    SELECT setval(pg_get_serial_sequence('public.chunks', 'id'), coalesce((SELECT max(id) FROM chunks), 0) + 1, false);
    GRANT SELECT, INSERT, UPDATE, DELETE ON chunks TO pgrag_app;
    GRANT SELECT ON chunks TO pgrag_cross_tenant;
  `);
};
