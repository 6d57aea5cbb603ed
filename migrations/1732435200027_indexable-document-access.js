/**
 * The access policy in a form the planner can index and estimate. Every chunk and document gets
 * `readers`: its access list plus `~`, a marker no principal can be (see pgrag_valid_access). The
 * requester's principals come from pgrag_readers(): the request's `pgrag.principals`, or `{~}` for
 * a tenant-wide read. The policy `readers && pgrag_readers()` is then one indexable operator:
 *
 * - a selective reader's rows are found through the GIN index on readers, instead of the PL/pgSQL
 *   function of migration 24 being called on every row of a sequential scan (~1 µs a row);
 * - the planner estimates it from the column's element statistics with the requester's actual
 *   principals (it evaluates stable functions when estimating): `~` is in every row, so a
 *   tenant-wide read is estimated to keep every row and keeps the HNSW plan.
 *
 * pgrag_readers() is plain SQL so that it is inlined into the policy, and names only catalog
 * functions: the analysts reading the curated views have no USAGE on schema public.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    CREATE FUNCTION pgrag_readers() RETURNS text[]
      LANGUAGE sql STABLE PARALLEL SAFE
      AS $$ SELECT coalesce(nullif(pg_catalog.current_setting('pgrag.principals', true), '')::text[],
                            '{~}'::text[]) $$;
    GRANT EXECUTE ON FUNCTION pgrag_readers() TO pgrag_app, pgrag_cross_tenant, pgrag_analyst;

    ALTER TABLE chunks ADD COLUMN readers text[] GENERATED ALWAYS AS (access || '{~}'::text[]) STORED;
    ALTER TABLE documents ADD COLUMN readers text[] GENERATED ALWAYS AS (access || '{~}'::text[]) STORED;
    DROP INDEX chunks_access_idx;
    CREATE INDEX chunks_readers_idx ON chunks USING gin (readers);
    CREATE INDEX documents_readers_idx ON documents USING gin (readers);

    ALTER POLICY document_access ON chunks USING (readers && pgrag_readers());
    ALTER POLICY document_access ON documents USING (readers && pgrag_readers());
    DROP FUNCTION pgrag_may_read(text[]);
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    CREATE FUNCTION pgrag_may_read(access text[]) RETURNS boolean
      LANGUAGE plpgsql STABLE PARALLEL SAFE COST 10
      AS $$ DECLARE principals text[] := nullif(current_setting('pgrag.principals', true), '')::text[];
            BEGIN RETURN principals IS NULL OR access && principals; END $$;
    GRANT EXECUTE ON FUNCTION pgrag_may_read(text[]) TO pgrag_app, pgrag_cross_tenant, pgrag_analyst;
    ALTER POLICY document_access ON chunks USING (pgrag_may_read(access));
    ALTER POLICY document_access ON documents USING (pgrag_may_read(access));
    DROP INDEX documents_readers_idx;
    DROP INDEX chunks_readers_idx;
    ALTER TABLE documents DROP COLUMN readers;
    ALTER TABLE chunks DROP COLUMN readers;
    CREATE INDEX chunks_access_idx ON chunks USING gin (access);
    DROP FUNCTION pgrag_readers();
  `);
};
