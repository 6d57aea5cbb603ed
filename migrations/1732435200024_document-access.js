/**
 * Who may read a document inside its tenant. A document's `access` lists principals: `*` (everyone
 * in the tenant: the default, so existing documents keep working), `user:<id>` or `group:<id>`. Its
 * chunks carry the same list, so both search legs and row-level security check a chunk without a
 * join; changing a document's access rewrites its chunks' lists, never their embeddings.
 *
 * The requester's principals are set per transaction (SET LOCAL pgrag.principals, always with `*`),
 * as the tenant is. A restrictive policy on documents, chunks and originals then hides every row the
 * requester may not see, whatever the query. Unset means the platform's own work (ingestion,
 * deletion, the analysts' views' owner) or a key the tenant lets read everything.
 *
 * A key may be scoped to fixed principals (server-to-server use): `api_keys.principals`, returned by
 * the key lookup. The analysts' views name only documents open to the whole tenant.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
const PRINCIPAL = `'^(\\*|(user|group):[^\\s,{}"\\\\]{1,200})$'`;

const asCrossTenant = (statements) => `
    GRANT pgrag_cross_tenant TO CURRENT_USER;
    GRANT CREATE ON SCHEMA public, analytics TO pgrag_cross_tenant;
    ${statements}
    REVOKE CREATE ON SCHEMA public, analytics FROM pgrag_cross_tenant;
    REVOKE pgrag_cross_tenant FROM CURRENT_USER;`;

export const up = (pgm) => {
  pgm.sql(`
    CREATE FUNCTION pgrag_valid_access(access text[]) RETURNS boolean
      LANGUAGE sql IMMUTABLE PARALLEL SAFE
      AS $$ SELECT cardinality(access) BETWEEN 1 AND 100
                   AND NOT EXISTS (SELECT 1 FROM unnest(access) p WHERE p IS NULL OR p !~ ${PRINCIPAL}) $$;
    ALTER TABLE documents ADD COLUMN access text[] NOT NULL DEFAULT '{*}' CHECK (pgrag_valid_access(access));
    ALTER TABLE chunks ADD COLUMN access text[] NOT NULL DEFAULT '{*}';
    -- Selective access lists are counted and scanned through it (the exact path of a filtered search).
    CREATE INDEX chunks_access_idx ON chunks USING gin (access);
    CREATE INDEX documents_access_idx ON documents USING gin (access);
    ALTER TABLE import_documents ADD COLUMN access text[] NOT NULL DEFAULT '{*}' CHECK (pgrag_valid_access(access));
    ALTER TABLE api_keys ADD COLUMN principals text[] CHECK (principals IS NULL OR pgrag_valid_access(principals));

    -- PL/pgSQL, so never inlined: the planner then prices the policy as a function (a third of the rows
    -- pass) instead of estimating its inlined OR at 1%, which made it prefer a full scan and a sort to
    -- the HNSW index whenever no principals are set.
    CREATE FUNCTION pgrag_may_read(access text[]) RETURNS boolean
      LANGUAGE plpgsql STABLE PARALLEL SAFE COST 10
      -- Only catalog functions in this body: the analyst reading a view has no USAGE on schema public,
      -- where a name in it would be looked up.
      AS $$ DECLARE principals text[] := nullif(current_setting('pgrag.principals', true), '')::text[];
            BEGIN RETURN principals IS NULL OR access && principals; END $$;

    -- Called in the tables' checks and policies: by the app, by the doors and views the cross-tenant role
    -- owns, and by the analysts reading those views (a policy's functions run as the querying role).
    GRANT EXECUTE ON FUNCTION pgrag_valid_access(text[]), pgrag_may_read(text[])
      TO pgrag_app, pgrag_cross_tenant, pgrag_analyst;

    CREATE POLICY document_access ON documents AS RESTRICTIVE FOR SELECT USING (pgrag_may_read(access));
    CREATE POLICY document_access ON chunks AS RESTRICTIVE FOR SELECT USING (pgrag_may_read(access));
    -- An original is read only if its document is (the documents' policies apply inside the policy).
    CREATE POLICY document_access ON document_originals AS RESTRICTIVE FOR SELECT
      USING (EXISTS (SELECT 1 FROM documents d WHERE d.id = document_originals.document_id));

    DROP FUNCTION pgrag_authenticate(bytea);
    CREATE FUNCTION pgrag_authenticate(key_hash bytea)
      RETURNS TABLE (tenant_id uuid, key_id uuid, scopes text[], principals text[])
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
      AS $$ SELECT k.tenant_id, k.id, k.scopes, k.principals FROM api_keys k
            WHERE k.secret_hash = key_hash AND k.revoked_at IS NULL $$;
    REVOKE ALL ON FUNCTION pgrag_authenticate(bytea) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION pgrag_authenticate(bytea) TO pgrag_app;
    ${asCrossTenant(`ALTER FUNCTION pgrag_authenticate(bytea) OWNER TO pgrag_cross_tenant;
    CREATE OR REPLACE VIEW analytics.top_documents WITH (security_barrier) AS
      SELECT e.tenant_id, d.external_id, d.title, count(*) AS times_retrieved, round(avg((r ->> 'rank')::int), 1) AS avg_rank
      FROM analytics.events e
      CROSS JOIN LATERAL jsonb_array_elements(coalesce(e.payload -> 'results', '[]')) AS r
      JOIN public.chunks c ON c.id = (r ->> 'chunk_id')::bigint
      JOIN public.documents d ON d.id = c.document_id
      WHERE '*' = ANY (d.access)
      GROUP BY 1, 2, 3;
    CREATE OR REPLACE VIEW analytics.ingestion_failures WITH (security_barrier) AS
      SELECT d.tenant_id, c.name AS collection, d.external_id, d.version, d.error, d.updated_at
      FROM public.documents d JOIN public.collections c ON c.id = d.collection_id
      WHERE d.status = 'failed' AND '*' = ANY (d.access);`)}
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    ${asCrossTenant(`CREATE OR REPLACE VIEW analytics.top_documents WITH (security_barrier) AS
      SELECT e.tenant_id, d.external_id, d.title, count(*) AS times_retrieved, round(avg((r ->> 'rank')::int), 1) AS avg_rank
      FROM analytics.events e
      CROSS JOIN LATERAL jsonb_array_elements(coalesce(e.payload -> 'results', '[]')) AS r
      JOIN public.chunks c ON c.id = (r ->> 'chunk_id')::bigint
      JOIN public.documents d ON d.id = c.document_id
      GROUP BY 1, 2, 3;
    CREATE OR REPLACE VIEW analytics.ingestion_failures WITH (security_barrier) AS
      SELECT d.tenant_id, c.name AS collection, d.external_id, d.version, d.error, d.updated_at
      FROM public.documents d JOIN public.collections c ON c.id = d.collection_id
      WHERE d.status = 'failed';`)}
    DROP FUNCTION pgrag_authenticate(bytea);
    CREATE FUNCTION pgrag_authenticate(key_hash bytea)
      RETURNS TABLE (tenant_id uuid, key_id uuid, scopes text[])
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
      AS $$ SELECT k.tenant_id, k.id, k.scopes FROM api_keys k WHERE k.secret_hash = key_hash AND k.revoked_at IS NULL $$;
    REVOKE ALL ON FUNCTION pgrag_authenticate(bytea) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION pgrag_authenticate(bytea) TO pgrag_app;
    ${asCrossTenant(`ALTER FUNCTION pgrag_authenticate(bytea) OWNER TO pgrag_cross_tenant;`)}
    DROP POLICY document_access ON document_originals;
    DROP POLICY document_access ON chunks;
    DROP POLICY document_access ON documents;
    DROP FUNCTION pgrag_may_read(text[]);
    ALTER TABLE api_keys DROP COLUMN principals;
    ALTER TABLE import_documents DROP COLUMN access;
    ALTER TABLE documents DROP COLUMN access;
    ALTER TABLE chunks DROP COLUMN access;
    DROP FUNCTION pgrag_valid_access(text[]);
  `);
};
