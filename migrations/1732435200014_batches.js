/**
 * OpenAI-compatible batches: uploaded files of requests, batches over them, and one row per request
 * line whose state is the truth about it. A line is claimed with a lease and an attempt number; its
 * result is stored only by the attempt that holds it, so a line answered twice (a runner that died
 * after asking the backend) keeps one answer: every custom_id appears once in the output.
 *
 * The batch runner serves every tenant: it claims lines and learns which batches are finished through
 * two narrow doors owned by pgrag_cross_tenant (as the key lookup is); everything else it does runs
 * as the line's tenant, under row-level security.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    CREATE TABLE batch_files (
      id          text PRIMARY KEY,
      tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
      purpose     text NOT NULL CHECK (purpose IN ('batch', 'batch_output')),
      filename    text NOT NULL,
      bytes       bigint NOT NULL,
      -- An upload's lines are in batch_file_lines; a batch's output and error files show its lines.
      batch_id    text,
      kind        text NOT NULL CHECK (kind IN ('upload', 'output', 'error')),
      created_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX batch_files_tenant_idx ON batch_files (tenant_id, created_at DESC);

    CREATE TABLE batch_file_lines (
      file_id     text    NOT NULL REFERENCES batch_files ON DELETE CASCADE,
      line        integer NOT NULL,
      tenant_id   uuid    NOT NULL,
      text        text    NOT NULL,
      PRIMARY KEY (file_id, line)
    );

    CREATE TABLE batches (
      id                text PRIMARY KEY,
      tenant_id         uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
      input_file_id     text NOT NULL REFERENCES batch_files,
      endpoint          text NOT NULL CHECK (endpoint IN ('/v1/chat/completions', '/v1/embeddings')),
      completion_window text NOT NULL,
      status            text NOT NULL CHECK (status IN ('in_progress', 'finalizing', 'completed', 'failed', 'expired',
                                                        'cancelling', 'cancelled')),
      metadata          jsonb,
      output_file_id    text,
      error_file_id     text,
      created_at        timestamptz NOT NULL DEFAULT now(),
      in_progress_at    timestamptz NOT NULL DEFAULT now(),
      expires_at        timestamptz NOT NULL,
      finalizing_at     timestamptz,
      completed_at      timestamptz,
      expired_at        timestamptz,
      cancelling_at     timestamptz,
      cancelled_at      timestamptz
    );
    CREATE INDEX batches_tenant_idx ON batches (tenant_id, created_at DESC);

    CREATE TABLE batch_lines (
      batch_id      text    NOT NULL REFERENCES batches ON DELETE CASCADE,
      line          integer NOT NULL,
      tenant_id     uuid    NOT NULL,
      custom_id     text    NOT NULL,
      body          jsonb   NOT NULL,
      -- pending → running (leased) → succeeded | failed; pending lines of an ended batch stay pending.
      state         text    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
      attempts      integer NOT NULL DEFAULT 0,
      not_before    timestamptz NOT NULL DEFAULT now(),
      lease_until   timestamptz,
      status_code   integer,
      response      jsonb,
      error         jsonb,
      finished_at   timestamptz,
      PRIMARY KEY (batch_id, line),
      UNIQUE (batch_id, custom_id)
    );
    CREATE INDEX batch_lines_claimable_idx ON batch_lines (not_before) WHERE state IN ('pending', 'running');

    GRANT SELECT, INSERT, UPDATE, DELETE ON batch_files, batch_file_lines, batches, batch_lines TO pgrag_app;
    ${["batch_files", "batch_file_lines", "batches", "batch_lines"]
      .map(
        (table) => `
    ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY;
    ALTER TABLE ${table} FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON ${table}
      USING (tenant_id = pgrag_current_tenant()) WITH CHECK (tenant_id = pgrag_current_tenant());`,
      )
      .join("")}

    -- The doors' rights: what they read and update, nothing else.
    GRANT SELECT ON batches TO pgrag_cross_tenant;
    GRANT SELECT, UPDATE ON batch_lines TO pgrag_cross_tenant;
    CREATE POLICY cross_tenant_select ON batches FOR SELECT TO pgrag_cross_tenant USING (true);
    CREATE POLICY cross_tenant_select ON batch_lines FOR SELECT TO pgrag_cross_tenant USING (true);
    CREATE POLICY cross_tenant_update ON batch_lines FOR UPDATE TO pgrag_cross_tenant USING (true) WITH CHECK (true);

    -- Claims up to max_lines runnable lines of running batches, taking each tenant's in turn (its
    -- oldest first), so that one tenant's big batch cannot hold back another's: the lines' leases
    -- start now and their attempt numbers go up.
    CREATE FUNCTION pgrag_claim_batch_lines(max_lines integer, lease_seconds integer)
      RETURNS TABLE (batch_id text, line integer, tenant_id uuid, custom_id text, body jsonb, endpoint text, attempt integer)
      LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
      AS $$
        WITH runnable AS (
          SELECT l.batch_id, l.line, l.tenant_id,
                 row_number() OVER (PARTITION BY l.tenant_id ORDER BY b.created_at, l.line) AS turn
          FROM batch_lines l JOIN batches b ON b.id = l.batch_id
          WHERE b.status = 'in_progress' AND b.expires_at > now() AND l.not_before <= now()
            AND (l.state = 'pending' OR (l.state = 'running' AND l.lease_until < now()))
        ),
        chosen AS (
          SELECT l.batch_id, l.line FROM batch_lines l
          JOIN (SELECT r.batch_id, r.line FROM runnable r ORDER BY r.turn, r.tenant_id LIMIT max_lines) r
            ON r.batch_id = l.batch_id AND r.line = l.line
          -- Checked again on the locked row: another runner may have claimed it meanwhile.
          WHERE l.state = 'pending' OR (l.state = 'running' AND l.lease_until < now())
          FOR UPDATE OF l SKIP LOCKED
        )
        UPDATE batch_lines l
        SET state = 'running', attempts = l.attempts + 1, lease_until = now() + make_interval(secs => lease_seconds)
        FROM chosen c, batches b
        WHERE l.batch_id = c.batch_id AND l.line = c.line AND b.id = l.batch_id
        RETURNING l.batch_id, l.line, l.tenant_id, l.custom_id, l.body, b.endpoint, l.attempts
      $$;

    -- Batches with nothing left to run (all lines answered, or cancelled or expired with no line
    -- running): the runner finalizes each as its tenant.
    CREATE FUNCTION pgrag_batches_to_finalize()
      RETURNS TABLE (batch_id text, tenant_id uuid)
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
      AS $$
        SELECT b.id, b.tenant_id FROM batches b
        WHERE b.status IN ('in_progress', 'cancelling', 'finalizing')
          AND NOT EXISTS (SELECT 1 FROM batch_lines l WHERE l.batch_id = b.id AND l.state = 'running' AND l.lease_until >= now())
          AND (b.status <> 'in_progress' OR b.expires_at <= now()
               OR NOT EXISTS (SELECT 1 FROM batch_lines l WHERE l.batch_id = b.id AND l.state IN ('pending', 'running')))
      $$;

    REVOKE ALL ON FUNCTION pgrag_claim_batch_lines(integer, integer), pgrag_batches_to_finalize() FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION pgrag_claim_batch_lines(integer, integer), pgrag_batches_to_finalize() TO pgrag_app;
    -- Handed to the role they run as (as in migration 10), once their grants are set.
    GRANT pgrag_cross_tenant TO CURRENT_USER;
    GRANT CREATE ON SCHEMA public TO pgrag_cross_tenant;
    ALTER FUNCTION pgrag_claim_batch_lines(integer, integer) OWNER TO pgrag_cross_tenant;
    ALTER FUNCTION pgrag_batches_to_finalize() OWNER TO pgrag_cross_tenant;
    REVOKE CREATE ON SCHEMA public FROM pgrag_cross_tenant;
    REVOKE pgrag_cross_tenant FROM CURRENT_USER;
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    DROP FUNCTION pgrag_claim_batch_lines(integer, integer), pgrag_batches_to_finalize();
    DROP TABLE batch_lines, batches, batch_file_lines, batch_files;
  `);
};
