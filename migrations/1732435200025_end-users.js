/**
 * End users. A tenant may register its identity provider (the issuer, the audience, its keys as a
 * JWKS URL or inline, and which claims carry the user id and the groups); a request then carries the
 * end user's token beside the tenant's key, and reads as that user's principals (migration 24).
 * `require_end_user`: the tenant's read-only tenant-wide keys must bring an end user.
 *
 * Conversations belong to whoever started them: `owner` is the requester the transaction runs for
 * (SET LOCAL pgrag.owner: `user:<id>` for an end user, `key:<id>` for a key scoped to principals,
 * unset for a tenant-wide key), filled in by the column's default so no code path can forget it. A
 * restrictive policy shows a requester with an owner only its own conversations, and only their
 * messages (feedback is stored on messages, so it is the owner's too).
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    CREATE TABLE identity_providers (
      tenant_id        uuid PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
      issuer           text NOT NULL,
      audience         text NOT NULL,
      jwks_url         text,
      jwks             jsonb,
      user_claim       text NOT NULL DEFAULT 'sub',
      groups_claim     text NOT NULL DEFAULT 'groups',
      require_end_user boolean NOT NULL DEFAULT false,
      updated_at       timestamptz NOT NULL DEFAULT now(),
      CHECK ((jwks_url IS NULL) <> (jwks IS NULL))
    );
    GRANT SELECT, INSERT, UPDATE, DELETE ON identity_providers TO pgrag_app;
    ALTER TABLE identity_providers ENABLE ROW LEVEL SECURITY;
    ALTER TABLE identity_providers FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON identity_providers
      USING (tenant_id = pgrag_current_tenant()) WITH CHECK (tenant_id = pgrag_current_tenant());

    ALTER TABLE conversations ADD COLUMN owner text DEFAULT nullif(current_setting('pgrag.owner', true), '');
    CREATE INDEX conversations_owner_idx ON conversations (tenant_id, owner, updated_at DESC);

    -- PL/pgSQL and catalog functions only, as pgrag_may_read (migration 24).
    CREATE FUNCTION pgrag_may_own(owner text) RETURNS boolean
      LANGUAGE plpgsql STABLE PARALLEL SAFE COST 10
      AS $$ DECLARE requester text := nullif(current_setting('pgrag.owner', true), '');
            BEGIN RETURN requester IS NULL OR owner = requester; END $$;
    GRANT EXECUTE ON FUNCTION pgrag_may_own(text) TO pgrag_app, pgrag_cross_tenant, pgrag_analyst;
    CREATE POLICY conversation_owner ON conversations AS RESTRICTIVE USING (pgrag_may_own(owner));
    CREATE POLICY conversation_owner ON messages AS RESTRICTIVE
      USING (EXISTS (SELECT 1 FROM conversations c WHERE c.id = messages.conversation_id));
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    DROP POLICY conversation_owner ON messages;
    DROP POLICY conversation_owner ON conversations;
    DROP FUNCTION pgrag_may_own(text);
    DROP INDEX conversations_owner_idx;
    ALTER TABLE conversations DROP COLUMN owner;
    DROP TABLE identity_providers;
  `);
};
