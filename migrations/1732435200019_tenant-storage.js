/**
 * What each tenant stores, kept as it changes: the bytes of its documents' text, of its import
 * uploads while they wait to be published, and of its batch files. A quota (stored_bytes) bounds it.
 * Statement-level triggers with transition tables add each statement's difference per tenant, so a
 * write of 1,000 documents updates the tenant's row once; a statement that changes no byte leaves it
 * alone (status updates, the worker's writes). No foreign key to tenants: a tenant's deletion deletes
 * its rows through their own cascades, and a counter row left behind by it is harmless.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    ALTER TABLE tenant_quotas ADD COLUMN stored_bytes bigint CHECK (stored_bytes >= 0);

    CREATE TABLE tenant_storage (
      tenant_id uuid PRIMARY KEY,
      bytes     bigint NOT NULL DEFAULT 0
    );
    GRANT SELECT ON tenant_storage TO pgrag_app;
    ALTER TABLE tenant_storage ENABLE ROW LEVEL SECURITY;
    ALTER TABLE tenant_storage FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON tenant_storage USING (tenant_id = pgrag_current_tenant());
    -- The triggers write every tenant's row as the owner, as operators administer tenants (migration 10).
    DO $$
    BEGIN
      EXECUTE format('CREATE POLICY owner_administration ON tenant_storage TO %I USING (true) WITH CHECK (true)', current_user);
    END $$;

    -- Writers wait until the triggers exist: a write between the count and them would be lost.
    LOCK TABLE documents, import_documents, batch_files IN SHARE MODE;
    INSERT INTO tenant_storage (tenant_id, bytes)
    SELECT tenant_id, sum(bytes) FROM (
      SELECT tenant_id, octet_length(content)::bigint AS bytes FROM documents
      UNION ALL SELECT tenant_id, octet_length(content)::bigint FROM import_documents
      UNION ALL SELECT tenant_id, bytes FROM batch_files
    ) AS stored GROUP BY tenant_id;

    -- Adds what a statement changed, per tenant: TG_ARGV[0] is the expression of a row's bytes.
    CREATE FUNCTION pgrag_count_stored_bytes() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
      AS $fn$
      DECLARE
        size text := TG_ARGV[0];
        added text := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN format('SELECT tenant_id, %s AS bytes FROM new_rows', size) END;
        removed text := CASE WHEN TG_OP IN ('DELETE', 'UPDATE') THEN format('SELECT tenant_id, -(%s) AS bytes FROM old_rows', size) END;
      BEGIN
        EXECUTE format(
          'INSERT INTO tenant_storage AS s (tenant_id, bytes)
           SELECT tenant_id, sum(bytes) FROM (%s) AS d GROUP BY tenant_id HAVING sum(bytes) <> 0
           ON CONFLICT (tenant_id) DO UPDATE SET bytes = s.bytes + excluded.bytes',
          concat_ws(' UNION ALL ', added, removed));
        RETURN NULL;
      END $fn$;
    REVOKE ALL ON FUNCTION pgrag_count_stored_bytes() FROM PUBLIC;

    ${["documents", "import_documents", "batch_files"]
      .map((table) => {
        const size = table === "batch_files" ? "bytes" : "octet_length(content)::bigint";
        return `
    CREATE TRIGGER stored_bytes_insert AFTER INSERT ON ${table} REFERENCING NEW TABLE AS new_rows
      FOR EACH STATEMENT EXECUTE FUNCTION pgrag_count_stored_bytes('${size}');
    CREATE TRIGGER stored_bytes_update AFTER UPDATE ON ${table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
      FOR EACH STATEMENT EXECUTE FUNCTION pgrag_count_stored_bytes('${size}');
    CREATE TRIGGER stored_bytes_delete AFTER DELETE ON ${table} REFERENCING OLD TABLE AS old_rows
      FOR EACH STATEMENT EXECUTE FUNCTION pgrag_count_stored_bytes('${size}');`;
      })
      .join("")}
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    ${["documents", "import_documents", "batch_files"]
      .map(
        (table) => `
    DROP TRIGGER stored_bytes_insert ON ${table};
    DROP TRIGGER stored_bytes_update ON ${table};
    DROP TRIGGER stored_bytes_delete ON ${table};`,
      )
      .join("")}
    DROP FUNCTION pgrag_count_stored_bytes();
    DROP TABLE tenant_storage;
    ALTER TABLE tenant_quotas DROP COLUMN stored_bytes;
  `);
};
