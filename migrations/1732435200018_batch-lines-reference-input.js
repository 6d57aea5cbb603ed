/**
 * A batch's lines refer to its input file's lines instead of holding a copy of each request body:
 * creating a batch over a 10 MB file wrote ~22 MB (the bodies again, as jsonb) and took a third of a
 * second. A line's body is read from the file when the line is claimed; its custom_id stays on the
 * line (short, and the output and error files name it after the input file may be gone). An input
 * file cannot be deleted while a batch over it has not ended (the application refuses it).
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    -- Lines of batches whose input file is gone can no longer run: they end as failed.
    UPDATE batch_lines l SET state = 'failed', finished_at = now(), lease_until = NULL,
           error = '{"code": "input_file_deleted", "message": "the batch input file was deleted before this request ran"}'
    FROM batches b
    WHERE b.id = l.batch_id AND l.state IN ('pending', 'running')
      AND NOT EXISTS (SELECT 1 FROM batch_file_lines f WHERE f.file_id = b.input_file_id AND f.line = l.line);
    ALTER TABLE batch_lines DROP COLUMN body;

    GRANT SELECT ON batch_file_lines TO pgrag_cross_tenant;
    CREATE POLICY cross_tenant_select ON batch_file_lines FOR SELECT TO pgrag_cross_tenant USING (true);

    -- Replacing the function takes its owner (migration 14), which the migrator becomes only for this.
    GRANT pgrag_cross_tenant TO CURRENT_USER;
    CREATE OR REPLACE FUNCTION pgrag_claim_batch_lines(max_lines integer, lease_seconds integer)
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
        ),
        claimed AS (
          UPDATE batch_lines l
          SET state = 'running', attempts = l.attempts + 1, lease_until = now() + make_interval(secs => lease_seconds)
          FROM chosen c
          WHERE l.batch_id = c.batch_id AND l.line = c.line
          RETURNING l.batch_id, l.line, l.tenant_id, l.custom_id, l.attempts
        )
        -- The request's body, from the batch's input file.
        SELECT c.batch_id, c.line, c.tenant_id, c.custom_id, f.text::jsonb -> 'body', b.endpoint, c.attempts
        FROM claimed c JOIN batches b ON b.id = c.batch_id
        JOIN batch_file_lines f ON f.file_id = b.input_file_id AND f.line = c.line
      $$;
    REVOKE pgrag_cross_tenant FROM CURRENT_USER;
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    ALTER TABLE batch_lines ADD COLUMN body jsonb;
    UPDATE batch_lines l SET body = f.text::jsonb -> 'body'
    FROM batches b, batch_file_lines f WHERE b.id = l.batch_id AND f.file_id = b.input_file_id AND f.line = l.line;
    UPDATE batch_lines SET body = '{}' WHERE body IS NULL;
    ALTER TABLE batch_lines ALTER COLUMN body SET NOT NULL;
    GRANT pgrag_cross_tenant TO CURRENT_USER;
    CREATE OR REPLACE FUNCTION pgrag_claim_batch_lines(max_lines integer, lease_seconds integer)
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
          WHERE l.state = 'pending' OR (l.state = 'running' AND l.lease_until < now())
          FOR UPDATE OF l SKIP LOCKED
        )
        UPDATE batch_lines l
        SET state = 'running', attempts = l.attempts + 1, lease_until = now() + make_interval(secs => lease_seconds)
        FROM chosen c, batches b
        WHERE l.batch_id = c.batch_id AND l.line = c.line AND b.id = l.batch_id
        RETURNING l.batch_id, l.line, l.tenant_id, l.custom_id, l.body, b.endpoint, l.attempts
      $$;
    REVOKE pgrag_cross_tenant FROM CURRENT_USER;
    DROP POLICY cross_tenant_select ON batch_file_lines;
    REVOKE SELECT ON batch_file_lines FROM pgrag_cross_tenant;
  `);
};
