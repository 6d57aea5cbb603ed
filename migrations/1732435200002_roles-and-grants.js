/**
 * Privileges of the two roles the platform uses. The roles themselves are cluster-wide and may be
 * provisioned outside (replicas/cluster.sh, or a managed service's console); they are created here,
 * without login, only where they are missing, so the migrations run anywhere.
 *
 * pgrag_app: reads and writes application tables, never owns them (so row-level security binds it).
 * pgrag_analyst: the analytics schema only (refined with curated views).
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    DO $$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgrag_app') THEN CREATE ROLE pgrag_app; END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgrag_analyst') THEN CREATE ROLE pgrag_analyst; END IF;
    END $$;

    GRANT USAGE ON SCHEMA public, analytics TO pgrag_app;
    GRANT SELECT, INSERT, UPDATE, DELETE
      ON tenants, api_keys, collections, documents, chunks, conversations, messages TO pgrag_app;
    GRANT SELECT ON embedding_settings TO pgrag_app;
    GRANT SELECT, INSERT ON analytics.events TO pgrag_app;

    REVOKE ALL ON SCHEMA public FROM pgrag_analyst;
    GRANT USAGE ON SCHEMA analytics TO pgrag_analyst;

    -- Startup parameters do not pass PgBouncer, so the time bound lives on the role.
    ALTER ROLE pgrag_app SET statement_timeout = '30s';
    ALTER ROLE pgrag_app SET idle_in_transaction_session_timeout = '60s';
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    REVOKE ALL ON ALL TABLES IN SCHEMA public FROM pgrag_app;
    REVOKE ALL ON ALL TABLES IN SCHEMA analytics FROM pgrag_app;
    REVOKE ALL ON SCHEMA public, analytics FROM pgrag_app;
    REVOKE ALL ON SCHEMA analytics FROM pgrag_analyst;
    ALTER ROLE pgrag_app RESET statement_timeout;
    ALTER ROLE pgrag_app RESET idle_in_transaction_session_timeout;
  `);
};
