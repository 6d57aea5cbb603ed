import { randomUUID } from "node:crypto";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { adminQuery, clusterUrls } from "../../helpers/cluster.ts";

/**
 * Least privilege, tested: every right of every role on every relation and function of the
 * platform's schemas, read from the primary's catalog, equals this explicit table. A new table,
 * grant or function fails this test until the table below says who may do what with it.
 * (The ingestion worker runs as pgrag_app: it has no role of its own.) pgrag_cross_tenant cannot log
 * in: it owns the cross-tenant doors and the analysts' views, whose rights it defines.
 */
type Role = "pgrag_app" | "pgrag_analyst" | "pgrag_cross_tenant" | "public";

const MATRIX_SQL = `
  WITH objects AS (
    SELECT n.nspname || '.' || c.relname AS name,
           CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' ELSE 'table' END AS kind,
           c.oid
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname IN ('public', 'analytics', 'pgboss', 'chunk_partitions') AND c.relkind IN ('r', 'p', 'v', 'S')
      AND NOT c.relispartition
  ), roles(role) AS (VALUES ('pgrag_app'), ('pgrag_analyst'), ('pgrag_cross_tenant'), ('public'))
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
    matrix[key] ??= { ...none };
    matrix[key][row.role] = row.rights;
  }
  return matrix;
}

const DML = "SELECT,INSERT,UPDATE,DELETE";
const none: Record<Role, string> = { pgrag_app: "", pgrag_analyst: "", pgrag_cross_tenant: "", public: "" };
const app = (rights: string) => ({ ...none, pgrag_app: rights });
const analyst = { ...none, pgrag_analyst: "SELECT" };
/** A function of the row-level security policies: every role whose queries they bind may call it. */
const inPolicies = { pgrag_analyst: "EXECUTE", pgrag_cross_tenant: "EXECUTE" };
/** A view the analyst reads; it runs as pgrag_cross_tenant, which owns it. */
const analystView = { ...analyst, pgrag_cross_tenant: "SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER" };
/** A door the app calls; it runs as pgrag_cross_tenant, which owns it. */
const door = { ...app("EXECUTE"), pgrag_cross_tenant: "EXECUTE" };

const EXPECTED: Record<string, Record<Role, string>> = {
  // SECURITY DEFINER doors and maintenance: the app only; nobody else can forge events or drop partitions.
  "function analytics.drop_partitions_before(integer)": app("EXECUTE"),
  "function analytics.ensure_partitions(integer)": app("EXECUTE"),
  "function analytics.record_events(jsonb)": door,
  "function pgboss.create_queue(text,json)": app("EXECUTE"),
  "function pgboss.delete_queue(text)": app("EXECUTE"),
  "function pgrag_authenticate(bytea)": door,
  // The batch runner's doors (migration 14): claiming lines of every tenant, finding finished batches.
  "function pgrag_batches_to_finalize()": door,
  "function pgrag_claim_batch_lines(integer,integer)": door,
  "function pgrag_delete_expired_files(integer)": door,
  "function pgrag_current_tenant()": { ...app("EXECUTE"), pgrag_cross_tenant: "EXECUTE" },
  // Document access (migrations 24, 27): in the checks and policies the app, the cross-tenant doors and views, and
  // the analysts reading those views meet (a policy's functions run as the querying role).
  "function pgrag_readers()": { ...app("EXECUTE"), ...inPolicies },
  "function pgrag_may_own(text)": { ...app("EXECUTE"), ...inPolicies },
  "function pgrag_valid_access(text[])": { ...app("EXECUTE"), ...inPolicies },
  "function pgrag_document_tenants(uuid[])": door,
  // An import's DDL (migration 13), as the owner, for the caller's tenant's import only.
  "function pgrag_collection_partition(uuid)": app("EXECUTE"),
  "function pgrag_import_attach(uuid)": app("EXECUTE"),
  "function pgrag_import_build_indexes(uuid)": app("EXECUTE"),
  "function pgrag_import_drop_staging(uuid)": app("EXECUTE"),
  "function pgrag_import_staging(uuid)": app("EXECUTE"),
  // Keeping an importing collection's rows out of the shared partition (migration 16); the helpers only for them.
  "function pgrag_import_exclude_from_shared(uuid)": app("EXECUTE"),
  "function pgrag_import_include_in_shared(uuid)": app("EXECUTE"),
  "function pgrag_import_validate_exclusion(uuid)": app("EXECUTE"),
  "function pgrag_import_collection(uuid)": none,
  // Packing BM25 postings (migration 30): a pure function of its argument, for the app's writes.
  "function pgrag_varint(bigint)": app("EXECUTE"),
  "function pgrag_shared_exclusion_name(uuid)": none,
  // Identity sequences need no grants.
  "sequence analytics.events_id_seq": none,
  "sequence public.bm25_blocks_block_id_seq": none,
  "sequence public.bm25_deletions_deletion_id_seq": none,
  // Import staging tables take their ids from the chunks' sequence, so that they keep them once attached.
  "sequence public.chunks_id_seq": app("USAGE"),
  "sequence public.messages_id_seq": none,
  "sequence public.pgmigrations_id_seq": none,
  "table analytics.events": { ...app("SELECT,INSERT"), pgrag_cross_tenant: "SELECT,INSERT" },
  "table analytics.model_prices": { ...analyst, pgrag_cross_tenant: "SELECT" },
  "table pgboss.archive": app(DML),
  "table pgboss.job": app(DML),
  "table pgboss.queue": app(DML),
  "table pgboss.schedule": app(DML),
  "table pgboss.subscription": app(DML),
  "table pgboss.version": app(DML),
  // Keys only through pgrag_authenticate; tenants and keys are written by the owner (admin CLI).
  "table public.api_keys": { ...none, pgrag_cross_tenant: "SELECT" },
  "table public.tenants": app("SELECT"),
  // A tenant's own quotas (migration 17): operators set them; the app reads its tenant's row.
  "table public.tenant_quotas": { ...app("SELECT"), pgrag_cross_tenant: "SELECT" },
  // What each tenant stores, kept by triggers as the owner (migration 19).
  "table public.tenant_storage": { ...app("SELECT"), pgrag_cross_tenant: "SELECT" },
  "function pgrag_count_stored_bytes()": none,
  // The claim door reads a line's body from its batch's input file (migration 18).
  "table public.batch_file_lines": { ...app(DML), pgrag_cross_tenant: "SELECT" },
  // The expiry door deletes every tenant's expired files (migration 17).
  "table public.batch_files": { ...app(DML), pgrag_cross_tenant: "SELECT,DELETE" },
  "table public.batch_lines": { ...app(DML), pgrag_cross_tenant: "SELECT,UPDATE" },
  "table public.batches": { ...app(DML), pgrag_cross_tenant: "SELECT" },
  "table public.bm25_blocks": app(DML),
  "table public.bm25_deletions": app(DML),
  "table public.chunks": { ...app(DML), pgrag_cross_tenant: "SELECT" },
  "table public.collection_stats": app(DML),
  "table public.collections": { ...app(DML), pgrag_cross_tenant: "SELECT" },
  "table public.conversations": app(DML),
  "table public.documents": { ...app(DML), pgrag_cross_tenant: "SELECT" },
  // Files as uploaded (migration 21): the app's tenant's rows only.
  "table public.document_originals": app(DML),
  "table public.messages": app(DML),
  "table public.identity_providers": app(DML),
  // Idempotency keys (migration 29): the app's tenant's rows only.
  "table public.idempotent_requests": app(DML),
  "table public.embedding_cache": app("SELECT,INSERT"),
  "table public.import_documents": app(DML),
  "table public.imports": { ...app(DML), pgrag_cross_tenant: "SELECT" },
  "table public.embedding_settings": app("SELECT"),
  "table public.pgmigrations": none,
  // The analyst: curated views only.
  "view analytics.daily_usage": analystView,
  "view analytics.feedback_rate": analystView,
  "view analytics.ingestion_backlog": analystView,
  "view analytics.ingestion_failures": analystView,
  // Per tenant, each quota's use and own limit (migration 20).
  "view analytics.tenant_usage": analystView,
  "view analytics.stage_latency": analystView,
  "view analytics.token_usage": analystView,
  "view analytics.top_documents": analystView,
  "view analytics.zero_result_queries": analystView,
  // pg_stat_statements' own grant; it shows other roles' query texts only to superusers.
  "view public.pg_stat_statements": {
    pgrag_app: "SELECT",
    pgrag_analyst: "SELECT",
    pgrag_cross_tenant: "SELECT",
    public: "SELECT",
  },
  "view public.pg_stat_statements_info": {
    pgrag_app: "SELECT",
    pgrag_analyst: "SELECT",
    pgrag_cross_tenant: "SELECT",
    public: "SELECT",
  },
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
  it("binds every table with a tenant column, the owner included, and names every policy that crosses tenants", async () => {
    const tables = await adminQuery<{ name: string; rls: boolean; forced: boolean; policies: string; owner: string }>(
      "primary",
      `SELECT c.oid::regclass::text AS name, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
              (SELECT string_agg(p.polname || ' ' || p.polcmd::text || ' ' ||
                                 array_to_string(ARRAY(SELECT CASE r WHEN 0 THEN 'public' ELSE pg_get_userbyid(r) END
                                                       FROM unnest(p.polroles) r), '+'), ', ' ORDER BY p.polname)
               FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
              pg_get_userbyid(c.relowner) AS owner
       FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname IN ('tenant_id', 'id') AND NOT a.attisdropped
       WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
         AND (a.attname = 'tenant_id' OR c.oid = 'public.tenants'::regclass)
       ORDER BY 1`,
    );
    // polcmd: * all commands, r SELECT, a INSERT.
    const tenantOnly = "tenant_isolation * public";
    // Restrictive: a document (its chunks, its original) read only by a requester its access list names.
    const documentAccess = "document_access r public";
    // Restrictive: a requester with an owner (an end user, a scoped key) sees only its own conversations and their messages.
    const conversationOwner = "conversation_owner * public";
    expect(Object.fromEntries(tables.map((t) => [t.name, t.policies]))).toEqual({
      "analytics.events": `cross_tenant_insert a pgrag_cross_tenant, cross_tenant_select r pgrag_cross_tenant, ${tenantOnly}`,
      api_keys: `cross_tenant_select r pgrag_cross_tenant, owner_administration * pgrag, ${tenantOnly}`,
      batch_file_lines: `cross_tenant_select r pgrag_cross_tenant, ${tenantOnly}`,
      batch_files: `cross_tenant_delete d pgrag_cross_tenant, cross_tenant_expiry r pgrag_cross_tenant, ${tenantOnly}`,
      batch_lines: `cross_tenant_select r pgrag_cross_tenant, cross_tenant_update w pgrag_cross_tenant, ${tenantOnly}`,
      batches: `cross_tenant_select r pgrag_cross_tenant, ${tenantOnly}`,
      bm25_blocks: tenantOnly,
      bm25_deletions: tenantOnly,
      chunks: `cross_tenant_select r pgrag_cross_tenant, ${documentAccess}, ${tenantOnly}`,
      collection_stats: tenantOnly,
      collections: `cross_tenant_select r pgrag_cross_tenant, ${tenantOnly}`,
      conversations: `${conversationOwner}, ${tenantOnly}`,
      document_originals: `${documentAccess}, ${tenantOnly}`,
      documents: `cross_tenant_select r pgrag_cross_tenant, ${documentAccess}, ${tenantOnly}`,
      import_documents: tenantOnly,
      imports: `cross_tenant_select r pgrag_cross_tenant, ${tenantOnly}`,
      messages: `${conversationOwner}, ${tenantOnly}`,
      identity_providers: tenantOnly,
      idempotent_requests: tenantOnly,
      tenant_quotas: `cross_tenant_select r pgrag_cross_tenant, owner_administration * pgrag, ${tenantOnly}`,
      tenant_storage: `cross_tenant_select r pgrag_cross_tenant, owner_administration * pgrag, ${tenantOnly}`,
      tenants: `cross_tenant_select r pgrag_cross_tenant, owner_administration * pgrag, ${tenantOnly}`,
    });
    for (const table of tables) {
      expect(table, table.name).toMatchObject({ rls: true, forced: true, owner: "pgrag" });
    }
    const roles = await adminQuery<{
      rolname: string;
      rolsuper: boolean;
      rolbypassrls: boolean;
      rolcanlogin: boolean;
      members: number;
    }>(
      "primary",
      `SELECT rolname, rolsuper, rolbypassrls, rolcanlogin,
              (SELECT coalesce(string_agg(pg_get_userbyid(m.member), ','), '') FROM pg_auth_members m WHERE m.roleid = r.oid) AS members
       FROM pg_roles r WHERE rolname IN ('pgrag_app', 'pgrag_cross_tenant') ORDER BY 1`,
    );
    expect(roles).toEqual([
      // The owner administers the app role (ADMIN OPTION); row-level security binds both.
      { rolname: "pgrag_app", rolsuper: false, rolbypassrls: false, rolcanlogin: true, members: "pgrag" },
      // Nobody can become the role the doors run as.
      { rolname: "pgrag_cross_tenant", rolsuper: false, rolbypassrls: false, rolcanlogin: false, members: "" },
    ]);
    const memberships = await adminQuery<{ rolname: string; member_of: string }>(
      "primary",
      `SELECT r.rolname, coalesce(string_agg(g.rolname, ',' ORDER BY g.rolname), '') AS member_of
       FROM pg_roles r LEFT JOIN pg_auth_members m ON m.member = r.oid LEFT JOIN pg_roles g ON g.oid = m.roleid
       WHERE r.rolname IN ('pgrag', 'pgrag_app', 'pgrag_analyst') GROUP BY 1 ORDER BY 1`,
    );
    expect(memberships).toEqual([
      { rolname: "pgrag", member_of: "pgrag_analyst,pgrag_app" },
      { rolname: "pgrag_analyst", member_of: "" },
      // Statistics only (no data, no files): each replica's WAL receiver timeline, read after a failover.
      { rolname: "pgrag_app", member_of: "pg_read_all_stats" },
    ]);
  });

  it("shows the owner no tenant's rows unless it names the tenant; administration of tenants and keys stays open", async () => {
    const tenantId = randomUUID();
    const collectionId = randomUUID();
    await adminQuery("primary", "INSERT INTO tenants (id, name) VALUES ($1, $2)", [tenantId, `forced-${tenantId}`]);
    await adminQuery("primary", "INSERT INTO collections (id, tenant_id, name) VALUES ($1, $2, 'forced')", [
      collectionId,
      tenantId,
    ]);
    const owner = new pg.Client({ connectionString: clusterUrls().PGRAG_MIGRATION_URL });
    await owner.connect();
    try {
      const count = async (sql: string) => (await owner.query<{ n: number }>(sql, [tenantId])).rows[0]?.n;
      expect(await count("SELECT count(*)::int AS n FROM collections WHERE tenant_id = $1")).toBe(0);
      expect(await count("SELECT count(*)::int AS n FROM tenants WHERE id = $1")).toBe(1);
      await owner.query("BEGIN");
      await owner.query("SELECT set_config('pgrag.tenant_id', $1, true)", [tenantId]);
      expect(await count("SELECT count(*)::int AS n FROM collections WHERE tenant_id = $1")).toBe(1);
      await owner.query("COMMIT");
    } finally {
      await owner.end();
      await adminQuery("primary", "DELETE FROM tenants WHERE id = $1", [tenantId]);
    }
  });
});
