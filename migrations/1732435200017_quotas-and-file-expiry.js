/**
 * Per-tenant quotas and expiring files.
 *
 * tenant_quotas holds a tenant's own limits; a NULL column (or no row) means the configured default
 * (PGRAG_QUOTA_*). The application reads its tenant's row; operators set it (`pgrag quotas`).
 *
 * Files get an expiry (OpenAI's `expires_after`; outputs and uploads without one get the configured
 * default), and the batch runner deletes expired files of every tenant through a narrow door owned by
 * pgrag_cross_tenant. A batch no longer holds its input file: its lines were copied into batch_lines
 * when it was created, so the file may be deleted (as OpenAI allows) and its id stays on the batch.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    CREATE TABLE tenant_quotas (
      tenant_id        uuid PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
      collections      integer CHECK (collections >= 0),
      running_imports  integer CHECK (running_imports >= 0),
      files            integer CHECK (files >= 0),
      running_batches  integer CHECK (running_batches >= 0)
    );
    GRANT SELECT ON tenant_quotas TO pgrag_app;
    ALTER TABLE tenant_quotas ENABLE ROW LEVEL SECURITY;
    ALTER TABLE tenant_quotas FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON tenant_quotas USING (tenant_id = pgrag_current_tenant());
    -- Operators set any tenant's quotas, as they administer tenants and keys (migration 10).
    DO $$
    BEGIN
      EXECUTE format('CREATE POLICY owner_administration ON tenant_quotas TO %I USING (true) WITH CHECK (true)', current_user);
    END $$;

    ALTER TABLE batch_files ADD COLUMN expires_at timestamptz;
    CREATE INDEX batch_files_expiry_idx ON batch_files (expires_at) WHERE expires_at IS NOT NULL;
    ALTER TABLE batches DROP CONSTRAINT batches_input_file_id_fkey;

    GRANT SELECT, DELETE ON batch_files TO pgrag_cross_tenant;
    CREATE POLICY cross_tenant_expiry ON batch_files FOR SELECT TO pgrag_cross_tenant USING (true);
    CREATE POLICY cross_tenant_delete ON batch_files FOR DELETE TO pgrag_cross_tenant USING (true);

    -- Deletes up to max_files files of any tenant whose expiry has passed (their lines go with them),
    -- but not the input of a batch that has not ended: its lines' requests are read from it.
    CREATE FUNCTION pgrag_delete_expired_files(max_files integer) RETURNS integer
      LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
      AS $$
        WITH gone AS (
          DELETE FROM batch_files WHERE id IN (
            SELECT f.id FROM batch_files f
            WHERE f.expires_at <= now()
              AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.input_file_id = f.id
                                AND b.status IN ('in_progress', 'finalizing', 'cancelling'))
            ORDER BY f.expires_at LIMIT max_files
          )
          RETURNING 1
        )
        SELECT count(*)::int FROM gone
      $$;
    REVOKE ALL ON FUNCTION pgrag_delete_expired_files(integer) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION pgrag_delete_expired_files(integer) TO pgrag_app;
    -- Handed to the role it runs as (as in migration 14), once its grants are set.
    GRANT pgrag_cross_tenant TO CURRENT_USER;
    GRANT CREATE ON SCHEMA public TO pgrag_cross_tenant;
    ALTER FUNCTION pgrag_delete_expired_files(integer) OWNER TO pgrag_cross_tenant;
    REVOKE CREATE ON SCHEMA public FROM pgrag_cross_tenant;
    REVOKE pgrag_cross_tenant FROM CURRENT_USER;
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    DROP FUNCTION pgrag_delete_expired_files(integer);
    DROP POLICY cross_tenant_delete ON batch_files;
    DROP POLICY cross_tenant_expiry ON batch_files;
    REVOKE SELECT, DELETE ON batch_files FROM pgrag_cross_tenant;
    DELETE FROM batches b WHERE NOT EXISTS (SELECT 1 FROM batch_files f WHERE f.id = b.input_file_id);
    ALTER TABLE batches ADD FOREIGN KEY (input_file_id) REFERENCES batch_files;
    DROP INDEX batch_files_expiry_idx;
    ALTER TABLE batch_files DROP COLUMN expires_at;
    DROP TABLE tenant_quotas;
  `);
};
