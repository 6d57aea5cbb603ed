/**
 * Row-level security binds the schema owner too (FORCE), so a plain query as the owner — a console
 * session, a mistaken pooler login, a migration — sees no tenant's rows unless it names the tenant.
 * What must cross tenants does so through explicit, narrow policies:
 *
 * - The owner administers tenants and API keys (the admin CLI): a policy on those two tables only.
 * - The cross-tenant doors (resolving an API key, the tenant of a queued document, recording usage
 *   events of many tenants) and the analysts' views move to pgrag_cross_tenant, a role that cannot
 *   log in and that no role is a member of. Its policies and grants list exactly what those doors and
 *   views read or write; SECURITY DEFINER functions and views run with their owner's rights, so that
 *   is all any caller can reach through them.
 *
 * The owner can still undo this (it owns the tables); the boundary against the owner is that it logs
 * in only directly on the primary (pg_hba), never through PgBouncer.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
const FORCED = [
  "tenants",
  "api_keys",
  "collections",
  "documents",
  "chunks",
  "chunk_terms",
  "collection_stats",
  "conversations",
  "messages",
  "analytics.events",
];

const DOORS = [
  "FUNCTION pgrag_authenticate(bytea)",
  "FUNCTION pgrag_document_tenants(uuid[])",
  "FUNCTION analytics.record_events(jsonb)",
  "VIEW analytics.daily_usage",
  "VIEW analytics.stage_latency",
  "VIEW analytics.zero_result_queries",
  "VIEW analytics.top_documents",
  "VIEW analytics.feedback_rate",
  "VIEW analytics.token_usage",
  "VIEW analytics.ingestion_backlog",
  "VIEW analytics.ingestion_failures",
];

/** What the doors read (SELECT) and write (INSERT), table by table. */
const CROSS_TENANT_RIGHTS = [
  ["api_keys", "SELECT"],
  ["documents", "SELECT"],
  ["chunks", "SELECT"],
  ["collections", "SELECT"],
  ["analytics.events", "SELECT"],
  ["analytics.events", "INSERT"],
];

/** Ownership can only be handed to a role one may become and that may create in the object's schema. */
const handOver = (to, objects) => `
    GRANT ${to} TO CURRENT_USER;
    GRANT CREATE ON SCHEMA public, analytics TO ${to};
    ${objects.map((object) => `ALTER ${object} OWNER TO ${to};`).join("\n    ")}
    REVOKE CREATE ON SCHEMA public, analytics FROM ${to};
    REVOKE ${to} FROM CURRENT_USER;`;

export const up = (pgm) => {
  pgm.sql(`
    DO $$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgrag_cross_tenant') THEN
        CREATE ROLE pgrag_cross_tenant NOLOGIN;
      END IF;
    END $$;
    GRANT USAGE ON SCHEMA public, analytics TO pgrag_cross_tenant;
    GRANT EXECUTE ON FUNCTION pgrag_current_tenant() TO pgrag_cross_tenant;
    GRANT SELECT ON analytics.model_prices TO pgrag_cross_tenant;
    ${CROSS_TENANT_RIGHTS.map(
      ([table, right]) => `
    GRANT ${right} ON ${table} TO pgrag_cross_tenant;
    CREATE POLICY cross_tenant_${right.toLowerCase()} ON ${table} FOR ${right} TO pgrag_cross_tenant
      ${right === "INSERT" ? "WITH CHECK (true)" : "USING (true)"};`,
    ).join("")}
    ${handOver("pgrag_cross_tenant", DOORS)}

    DO $$
    BEGIN
      EXECUTE format('CREATE POLICY owner_administration ON tenants TO %I USING (true) WITH CHECK (true)', current_user);
      EXECUTE format('CREATE POLICY owner_administration ON api_keys TO %I USING (true) WITH CHECK (true)', current_user);
    END $$;
    ${FORCED.map((table) => `ALTER TABLE ${table} FORCE ROW LEVEL SECURITY;`).join("\n    ")}
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    ${FORCED.map((table) => `ALTER TABLE ${table} NO FORCE ROW LEVEL SECURITY;`).join("\n    ")}
    DROP POLICY owner_administration ON tenants;
    DROP POLICY owner_administration ON api_keys;
    GRANT pgrag_cross_tenant TO CURRENT_USER;
    ${DOORS.map((object) => `ALTER ${object} OWNER TO CURRENT_USER;`).join("\n    ")}
    REVOKE pgrag_cross_tenant FROM CURRENT_USER;
    ${CROSS_TENANT_RIGHTS.map(
      ([table, right]) => `
    DROP POLICY cross_tenant_${right.toLowerCase()} ON ${table};
    REVOKE ${right} ON ${table} FROM pgrag_cross_tenant;`,
    ).join("")}
    REVOKE SELECT ON analytics.model_prices FROM pgrag_cross_tenant;
    REVOKE EXECUTE ON FUNCTION pgrag_current_tenant() FROM pgrag_cross_tenant;
    REVOKE USAGE ON SCHEMA public, analytics FROM pgrag_cross_tenant;
  `);
};
