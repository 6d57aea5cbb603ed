import PgBoss from "pg-boss";

/**
 * The durable job queue (pg-boss) lives in schema pgboss, created here by the schema owner so that
 * the application role needs no DDL rights. The ingestion queue retries a failed job with
 * exponential backoff; a job whose worker died is failed (and so retried) once its expiry passes.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  // pg-boss's construction plan brings its own BEGIN/COMMIT.
  pgm.noTransaction();
  pgm.sql(PgBoss.getConstructionPlans("pgboss"));
  pgm.sql(`
    SELECT pgboss.create_queue('ingest-document', json_build_object(
      'policy', 'standard', 'retryLimit', 4, 'retryDelay', 1, 'retryBackoff', true,
      'expireInSeconds', 300, 'retentionMinutes', 1440));
    GRANT USAGE ON SCHEMA pgboss TO pgrag_app;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgboss TO pgrag_app;
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pgboss TO pgrag_app;
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql("DROP SCHEMA pgboss CASCADE");
};
