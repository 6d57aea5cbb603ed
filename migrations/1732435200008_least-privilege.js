/**
 * Least privilege, closed where PostgreSQL's defaults left it open (the privilege matrix test holds
 * every role's rights against an explicit table):
 *
 * - Functions: PostgreSQL grants EXECUTE to PUBLIC on every new function, so any role (the analyst
 *   included) could call the SECURITY DEFINER doors — forge usage events for any tenant, drop
 *   analytics partitions. EXECUTE is revoked from PUBLIC on every function this schema owns (not on
 *   extensions' functions: pgvector's operators must stay callable) and by default on future ones;
 *   each role gets exactly the functions it uses.
 * - Analytics views are security barriers: a caller's cheap "leaky" function in a WHERE clause can
 *   no longer be run on rows a view's own conditions hide.
 * - The app role reads API keys only through pgrag_authenticate (it never sees key hashes) and
 *   writes no tenants or keys: those are the owner's, through the admin CLI.
 * - No temporary objects for PUBLIC (the app and the analyst need none; a temp function is where a
 *   leaky function would be written).
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
/** The functions this schema's owner created in its schemas; extensions' own (pgvector's) are left out. */
const OWN_FUNCTIONS = `SELECT p.oid::regprocedure AS signature
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname IN ('public', 'analytics', 'pgboss')
          AND p.proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`;

export const up = (pgm) => {
  pgm.sql(`
    DO $$
    DECLARE f record;
    BEGIN
      FOR f IN
        ${OWN_FUNCTIONS}
      LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.signature);
      END LOOP;
      EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    END $$;
    ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
    -- PostgreSQL's default lets every role use schema public: only the app needs it.
    REVOKE USAGE ON SCHEMA public FROM PUBLIC;
    REVOKE ALL ON api_keys FROM pgrag_app;
    REVOKE INSERT, UPDATE, DELETE ON tenants FROM pgrag_app;

    ALTER VIEW analytics.daily_usage SET (security_barrier = true);
    ALTER VIEW analytics.stage_latency SET (security_barrier = true);
    ALTER VIEW analytics.zero_result_queries SET (security_barrier = true);
    ALTER VIEW analytics.top_documents SET (security_barrier = true);
    ALTER VIEW analytics.feedback_rate SET (security_barrier = true);
    ALTER VIEW analytics.token_usage SET (security_barrier = true);
    ALTER VIEW analytics.ingestion_backlog SET (security_barrier = true);
    ALTER VIEW analytics.ingestion_failures SET (security_barrier = true);
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    ALTER VIEW analytics.daily_usage RESET (security_barrier);
    ALTER VIEW analytics.stage_latency RESET (security_barrier);
    ALTER VIEW analytics.zero_result_queries RESET (security_barrier);
    ALTER VIEW analytics.top_documents RESET (security_barrier);
    ALTER VIEW analytics.feedback_rate RESET (security_barrier);
    ALTER VIEW analytics.token_usage RESET (security_barrier);
    ALTER VIEW analytics.ingestion_backlog RESET (security_barrier);
    ALTER VIEW analytics.ingestion_failures RESET (security_barrier);
    ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
    GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys, tenants TO pgrag_app;
    GRANT USAGE ON SCHEMA public TO PUBLIC;
    DO $$
    DECLARE f record;
    BEGIN
      -- As before: every owned function callable by PUBLIC but the two doors migration 5 closed.
      FOR f IN
        ${OWN_FUNCTIONS}
          AND p.proname NOT IN ('pgrag_authenticate', 'pgrag_document_tenants')
      LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f.signature);
      END LOOP;
      EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
    END $$;
  `);
};
