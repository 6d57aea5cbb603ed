import { describe, expect, it } from "vitest";
import { adminQuery } from "../../helpers/cluster.ts";

/**
 * Least privilege, tested: every right of every role on every relation and function of the
 * platform's schemas, read from the primary's catalog, equals this explicit table. A new table,
 * grant or function fails this test until the table below says who may do what with it.
 * (The ingestion worker runs as pgrag_app: it has no role of its own.)
 */
type Role = "pgrag_app" | "pgrag_analyst" | "public";

const MATRIX_SQL = `
  WITH objects AS (
    SELECT n.nspname || '.' || c.relname AS name,
           CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' ELSE 'table' END AS kind,
           c.oid
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname IN ('public', 'analytics', 'pgboss') AND c.relkind IN ('r', 'p', 'v', 'S')
      AND NOT c.relispartition
  ), roles(role) AS (VALUES ('pgrag_app'), ('pgrag_analyst'), ('public'))
  SELECT o.kind, o.name, r.role,
         array_to_string(ARRAY(
           SELECT p FROM unnest(CASE WHEN o.kind = 'sequence' THEN ARRAY['USAGE', 'SELECT', 'UPDATE']
                                     ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'] END) AS p
           WHERE CASE WHEN o.kind = 'sequence' THEN has_sequence_privilege(r.role, o.oid, p)
                      ELSE has_table_privilege(r.role, o.oid, p) END), ',') AS rights
  FROM objects o CROSS JOIN roles r
  UNION ALL
  SELECT 'function', p.oid::regprocedure::text, r.role,
         CASE WHEN has_function_privilege(r.role, p.oid, 'EXECUTE') THEN 'EXECUTE' ELSE '' END
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace CROSS JOIN roles r
  WHERE n.nspname IN ('public', 'analytics', 'pgboss')
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  ORDER BY 1, 2, 3`;

async function actualMatrix(): Promise<Record<string, Record<Role, string>>> {
  const rows = await adminQuery<{ kind: string; name: string; role: Role; rights: string }>("primary", MATRIX_SQL);
  const matrix: Record<string, Record<Role, string>> = {};
  for (const row of rows) {
    const key = `${row.kind} ${row.name}`;
    matrix[key] ??= { pgrag_app: "", pgrag_analyst: "", public: "" };
    matrix[key][row.role] = row.rights;
  }
  return matrix;
}

const DML = "SELECT,INSERT,UPDATE,DELETE";
const none = { pgrag_app: "", pgrag_analyst: "", public: "" };
const app = (rights: string) => ({ ...none, pgrag_app: rights });
const analyst = { ...none, pgrag_analyst: "SELECT" };

const EXPECTED: Record<string, Record<Role, string>> = {
  // SECURITY DEFINER doors and maintenance: the app only; nobody else can forge events or drop partitions.
  "function analytics.drop_partitions_before(integer)": app("EXECUTE"),
  "function analytics.ensure_partitions(integer)": app("EXECUTE"),
  "function analytics.record_events(jsonb)": app("EXECUTE"),
  "function pgboss.create_queue(text,json)": app("EXECUTE"),
  "function pgboss.delete_queue(text)": app("EXECUTE"),
  "function pgrag_authenticate(bytea)": app("EXECUTE"),
  "function pgrag_current_tenant()": app("EXECUTE"),
  "function pgrag_document_tenants(uuid[])": app("EXECUTE"),
  // Identity sequences need no grants.
  "sequence analytics.events_id_seq": none,
  "sequence public.chunks_id_seq": none,
  "sequence public.messages_id_seq": none,
  "sequence public.pgmigrations_id_seq": none,
  "table analytics.events": app("SELECT,INSERT"),
  "table analytics.model_prices": analyst,
  "table pgboss.archive": app(DML),
  "table pgboss.job": app(DML),
  "table pgboss.queue": app(DML),
  "table pgboss.schedule": app(DML),
  "table pgboss.subscription": app(DML),
  "table pgboss.version": app(DML),
  // Keys only through pgrag_authenticate; tenants and keys are written by the owner (admin CLI).
  "table public.api_keys": none,
  "table public.tenants": app("SELECT"),
  "table public.chunk_terms": app(DML),
  "table public.chunks": app(DML),
  "table public.collection_stats": app(DML),
  "table public.collections": app(DML),
  "table public.conversations": app(DML),
  "table public.documents": app(DML),
  "table public.messages": app(DML),
  "table public.embedding_cache": app("SELECT,INSERT"),
  "table public.embedding_settings": app("SELECT"),
  "table public.pgmigrations": none,
  // The analyst: curated views only.
  "view analytics.daily_usage": analyst,
  "view analytics.feedback_rate": analyst,
  "view analytics.ingestion_backlog": analyst,
  "view analytics.ingestion_failures": analyst,
  "view analytics.stage_latency": analyst,
  "view analytics.token_usage": analyst,
  "view analytics.top_documents": analyst,
  "view analytics.zero_result_queries": analyst,
  // pg_stat_statements' own grant; it shows other roles' query texts only to superusers.
  "view public.pg_stat_statements": { pgrag_app: "SELECT", pgrag_analyst: "SELECT", public: "SELECT" },
  "view public.pg_stat_statements_info": { pgrag_app: "SELECT", pgrag_analyst: "SELECT", public: "SELECT" },
};

describe("the privilege matrix", () => {
  it("gives every role exactly the rights in the table, on every relation and function", async () => {
    expect(await actualMatrix()).toEqual(EXPECTED);
  });

  it("lets no role but the owner create in the schemas, and nobody create temporary objects", async () => {
    const [rights] = await adminQuery<Record<string, boolean>>(
      "primary",
      `SELECT has_schema_privilege('pgrag_app', 'public', 'CREATE') OR has_schema_privilege('pgrag_app', 'analytics', 'CREATE') AS app_create,
              has_schema_privilege('pgrag_analyst', 'public', 'CREATE') OR has_schema_privilege('pgrag_analyst', 'analytics', 'CREATE') AS analyst_create,
              has_schema_privilege('pgrag_analyst', 'public', 'USAGE') AS analyst_public_usage,
              has_database_privilege('pgrag_app', current_database(), 'TEMPORARY') AS app_temp,
              has_database_privilege('pgrag_analyst', current_database(), 'TEMPORARY') AS analyst_temp`,
    );
    expect(rights).toEqual({
      app_create: false,
      analyst_create: false,
      analyst_public_usage: false,
      app_temp: false,
      analyst_temp: false,
    });
  });
});

describe("row-level security coverage", () => {
  it("binds every table with a tenant column, and the app role owns none and bypasses none", async () => {
    const tables = await adminQuery<{ name: string; rls: boolean; policies: number; owner: string }>(
      "primary",
      `SELECT c.oid::regclass::text AS name, c.relrowsecurity AS rls,
              (SELECT count(*)::int FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
              pg_get_userbyid(c.relowner) AS owner
       FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
       WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
       ORDER BY 1`,
    );
    expect(tables.map((t) => t.name)).toEqual([
      "analytics.events",
      "api_keys",
      "chunk_terms",
      "chunks",
      "collection_stats",
      "collections",
      "conversations",
      "documents",
      "messages",
    ]);
    for (const table of tables) {
      expect(table, table.name).toMatchObject({ rls: true, policies: 1, owner: "pgrag" });
    }
    const [app] = await adminQuery<{ rolsuper: boolean; rolbypassrls: boolean }>(
      "primary",
      "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'pgrag_app'",
    );
    expect(app).toEqual({ rolsuper: false, rolbypassrls: false });
  });
});
