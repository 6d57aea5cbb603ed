/**
 * An import's partition is attached without scanning the shared partition under an exclusive lock.
 *
 * Attaching a partition beside a DEFAULT one makes PostgreSQL check that the default holds none of the
 * new partition's rows: with ACCESS EXCLUSIVE on the default held, it scans all of it, unless the
 * default's validated constraints already prove it. That scan of every other tenant's chunks froze
 * their reads and writes (and, replayed, the replicas') for seconds. The lock itself cannot be avoided
 * while there is a default partition; its length can. So an import now:
 *   1. adds `CHECK (collection_id <> X) NOT VALID` to the shared partition (a brief exclusive lock,
 *      taken with a short lock_timeout and retried);
 *   2. in its publish transaction, moves the collection's rows out of the shared partition and
 *      validates that constraint, which scans under SHARE UPDATE EXCLUSIVE: reads and writes go on;
 *   3. attaches, which finds the constraint and skips the scan: the exclusive lock is held for the
 *      rest of the transaction only, and is again asked for with a short lock_timeout and retried.
 * A failed import drops its constraint, unless the collection has its partition by then.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    -- The name of the constraint that keeps a collection's rows out of the shared partition.
    CREATE FUNCTION pgrag_shared_exclusion_name(collection uuid) RETURNS text
      LANGUAGE sql IMMUTABLE
      AS $fn$ SELECT 'not_collection_' || replace(collection::text, '-', '') $fn$;

    -- The import's collection: its id, checked against the current tenant (row-level security binds the owner too).
    CREATE FUNCTION pgrag_import_collection(import uuid) RETURNS uuid
      LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
      AS $fn$
      DECLARE
        collection uuid := (SELECT i.collection_id FROM imports i WHERE i.id = import);
      BEGIN
        IF collection IS NULL THEN RAISE EXCEPTION 'no import %', import USING ERRCODE = 'no_data_found'; END IF;
        RETURN collection;
      END $fn$;

    CREATE FUNCTION pgrag_import_exclude_from_shared(import uuid) RETURNS void
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
      AS $fn$
      DECLARE
        collection uuid := pgrag_import_collection(import);
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = 'chunk_partitions.shared'::regclass
                                                      AND c.conname = pgrag_shared_exclusion_name(collection)) THEN
          EXECUTE format('ALTER TABLE chunk_partitions.shared ADD CONSTRAINT %I CHECK (collection_id <> %L) NOT VALID',
                         pgrag_shared_exclusion_name(collection), collection);
        END IF;
      END $fn$;

    CREATE FUNCTION pgrag_import_validate_exclusion(import uuid) RETURNS void
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
      AS $fn$
      BEGIN
        EXECUTE format('ALTER TABLE chunk_partitions.shared VALIDATE CONSTRAINT %I',
                       pgrag_shared_exclusion_name(pgrag_import_collection(import)));
      END $fn$;

    -- Undoes pgrag_import_exclude_from_shared for an import that did not attach its partition.
    CREATE FUNCTION pgrag_import_include_in_shared(import uuid) RETURNS void
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
      AS $fn$
      DECLARE
        collection uuid := pgrag_import_collection(import);
      BEGIN
        -- Only when there is one to drop: ALTER TABLE locks the shared partition even for nothing.
        IF pgrag_collection_partition(collection) IS NULL
           AND EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = 'chunk_partitions.shared'::regclass
                                                       AND c.conname = pgrag_shared_exclusion_name(collection)) THEN
          EXECUTE format('ALTER TABLE chunk_partitions.shared DROP CONSTRAINT %I', pgrag_shared_exclusion_name(collection));
        END IF;
      END $fn$;

    REVOKE ALL ON FUNCTION pgrag_shared_exclusion_name(uuid), pgrag_import_collection(uuid), pgrag_import_exclude_from_shared(uuid),
                           pgrag_import_validate_exclusion(uuid), pgrag_import_include_in_shared(uuid) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION pgrag_import_exclude_from_shared(uuid), pgrag_import_validate_exclusion(uuid),
                              pgrag_import_include_in_shared(uuid) TO pgrag_app;
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    DO $$
    DECLARE
      name text;
    BEGIN
      FOR name IN SELECT c.conname FROM pg_constraint c
                  WHERE c.conrelid = 'chunk_partitions.shared'::regclass AND c.conname LIKE 'not\\_collection\\_%' LOOP
        EXECUTE format('ALTER TABLE chunk_partitions.shared DROP CONSTRAINT %I', name);
      END LOOP;
    END $$;
    DROP FUNCTION pgrag_import_exclude_from_shared(uuid), pgrag_import_validate_exclusion(uuid),
                  pgrag_import_include_in_shared(uuid), pgrag_import_collection(uuid), pgrag_shared_exclusion_name(uuid);
  `);
};
