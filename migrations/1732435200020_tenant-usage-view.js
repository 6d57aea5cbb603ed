/**
 * The analysts' view of quotas (migrations 17 and 19): per tenant, what it holds of each quota and its own
 * limit where it has one (NULL: the deployment's PGRAG_QUOTA_* default, which lives in the
 * application's configuration, not here). Owned by pgrag_cross_tenant like the other views, which
 * reads the counted tables through cross-tenant SELECT policies.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    GRANT SELECT ON imports, tenant_quotas, tenant_storage TO pgrag_cross_tenant;
    CREATE POLICY cross_tenant_select ON tenant_storage FOR SELECT TO pgrag_cross_tenant USING (true);
    -- Tenants' ids only: their names are the platform's customers, not usage.
    GRANT SELECT (id) ON tenants TO pgrag_cross_tenant;
    CREATE POLICY cross_tenant_select ON imports FOR SELECT TO pgrag_cross_tenant USING (true);
    CREATE POLICY cross_tenant_select ON tenant_quotas FOR SELECT TO pgrag_cross_tenant USING (true);
    CREATE POLICY cross_tenant_select ON tenants FOR SELECT TO pgrag_cross_tenant USING (true);

    CREATE VIEW analytics.tenant_usage WITH (security_barrier) AS
      SELECT t.id AS tenant_id,
             (SELECT count(*) FROM collections c WHERE c.tenant_id = t.id) AS collections,
             q.collections AS collections_quota,
             (SELECT count(*) FROM imports i WHERE i.tenant_id = t.id AND i.status NOT IN ('completed', 'failed')) AS running_imports,
             q.running_imports AS running_imports_quota,
             (SELECT count(*) FROM batch_files f WHERE f.tenant_id = t.id AND f.kind = 'upload') AS files,
             q.files AS files_quota,
             (SELECT count(*) FROM batches b WHERE b.tenant_id = t.id
                AND b.status IN ('in_progress', 'finalizing', 'cancelling')) AS running_batches,
             q.running_batches AS running_batches_quota,
             coalesce(s.bytes, 0) AS stored_bytes,
             q.stored_bytes AS stored_bytes_quota
      FROM public.tenants t LEFT JOIN public.tenant_quotas q ON q.tenant_id = t.id
      LEFT JOIN public.tenant_storage s ON s.tenant_id = t.id;
    -- Handed to the role it runs as (as in migration 10).
    GRANT pgrag_cross_tenant TO CURRENT_USER;
    GRANT CREATE ON SCHEMA analytics TO pgrag_cross_tenant;
    ALTER VIEW analytics.tenant_usage OWNER TO pgrag_cross_tenant;
    GRANT SELECT ON analytics.tenant_usage TO pgrag_analyst;
    REVOKE CREATE ON SCHEMA analytics FROM pgrag_cross_tenant;
    REVOKE pgrag_cross_tenant FROM CURRENT_USER;
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    GRANT pgrag_cross_tenant TO CURRENT_USER;
    DROP VIEW analytics.tenant_usage;
    REVOKE pgrag_cross_tenant FROM CURRENT_USER;
    DROP POLICY cross_tenant_select ON tenants;
    DROP POLICY cross_tenant_select ON tenant_quotas;
    DROP POLICY cross_tenant_select ON imports;
    REVOKE SELECT (id) ON tenants FROM pgrag_cross_tenant;
    DROP POLICY cross_tenant_select ON tenant_storage;
    REVOKE SELECT ON imports, tenant_quotas, tenant_storage FROM pgrag_cross_tenant;
  `);
};
