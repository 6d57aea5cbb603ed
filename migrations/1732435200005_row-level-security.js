/**
 * Tenant isolation in the database: row-level security on every tenant-owned table, keyed on the
 * tenant the application sets per transaction (SET LOCAL pgrag.tenant_id, via set_config(..., true)),
 * which is safe under PgBouncer's transaction pooling. With no tenant set, no row is visible: a bug
 * that forgets the tenant fails closed. pgrag_app does not own the tables, so the policies bind it;
 * the owner (migrations, admin CLI) is not bound.
 *
 * Two doors are deliberately cross-tenant, as SECURITY DEFINER functions doing one narrow thing:
 * resolving an API key (the tenant is not known before) and the tenant of a queued document (the
 * ingestion worker serves every tenant).
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
const TABLES = [
  ["tenants", "id"],
  ["api_keys", "tenant_id"],
  ["collections", "tenant_id"],
  ["documents", "tenant_id"],
  ["chunks", "tenant_id"],
  ["chunk_terms", "tenant_id"],
  ["collection_stats", "tenant_id"],
  ["conversations", "tenant_id"],
  ["messages", "tenant_id"],
  ["analytics.events", "tenant_id"],
];

export const up = (pgm) => {
  pgm.sql(`
    CREATE FUNCTION pgrag_current_tenant() RETURNS uuid
      LANGUAGE sql STABLE PARALLEL SAFE
      AS $$ SELECT nullif(current_setting('pgrag.tenant_id', true), '')::uuid $$;

    CREATE FUNCTION pgrag_authenticate(key_hash bytea)
      RETURNS TABLE (tenant_id uuid, key_id uuid, scopes text[])
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
      AS $$ SELECT k.tenant_id, k.id, k.scopes FROM api_keys k WHERE k.secret_hash = key_hash AND k.revoked_at IS NULL $$;

    CREATE FUNCTION pgrag_document_tenants(document_ids uuid[])
      RETURNS TABLE (document_id uuid, tenant_id uuid)
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
      AS $$ SELECT d.id, d.tenant_id FROM documents d WHERE d.id = any(document_ids) $$;

    REVOKE ALL ON FUNCTION pgrag_authenticate(bytea), pgrag_document_tenants(uuid[]) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION pgrag_authenticate(bytea), pgrag_document_tenants(uuid[]), pgrag_current_tenant() TO pgrag_app;
  `);
  for (const [table, column] of TABLES) {
    pgm.sql(`
      ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY;
      CREATE POLICY tenant_isolation ON ${table}
        USING (${column} = pgrag_current_tenant())
        WITH CHECK (${column} = pgrag_current_tenant());
    `);
  }
};

export const down = (pgm) => {
  for (const [table] of TABLES) {
    pgm.sql(`
      DROP POLICY tenant_isolation ON ${table};
      ALTER TABLE ${table} DISABLE ROW LEVEL SECURITY;
    `);
  }
  pgm.sql(`
    DROP FUNCTION pgrag_document_tenants(uuid[]);
    DROP FUNCTION pgrag_authenticate(bytea);
    DROP FUNCTION pgrag_current_tenant();
  `);
};
