/**
 * Idempotency keys. A tenant's write that carries `Idempotency-Key` claims the key in the same
 * transaction as the write itself, so the claim exists exactly when the write committed: a client
 * that got no answer (a failover, a 503 "outcome unknown") retries with the same key and either gets
 * the first answer again or has the write done once. The answer is stored after the write; keys are
 * kept a day (expired ones are deleted as new ones are claimed).
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    CREATE TABLE idempotent_requests (
      tenant_id       uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
      key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
      -- What the request was (method, path, key, body): a key reused for another request is refused.
      fingerprint     text NOT NULL,
      -- The answer, once recorded: its status, JSON body (NULL when not stored) and consistency token.
      response_status integer,
      response_body   jsonb,
      response_token  text,
      created_at      timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, key)
    );
    CREATE INDEX idempotent_requests_age_idx ON idempotent_requests (tenant_id, created_at);
    GRANT SELECT, INSERT, UPDATE, DELETE ON idempotent_requests TO pgrag_app;
    ALTER TABLE idempotent_requests ENABLE ROW LEVEL SECURITY;
    ALTER TABLE idempotent_requests FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON idempotent_requests
      USING (tenant_id = pgrag_current_tenant()) WITH CHECK (tenant_id = pgrag_current_tenant());
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`DROP TABLE idempotent_requests;`);
};
