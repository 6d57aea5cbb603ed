/**
 * New conversations are counted per tenant over the last day (a read key may create them, so their
 * number is bounded by a quota, PGRAG_MAX_CONVERSATIONS_PER_DAY): the count reads this index only.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  // Built without blocking writes to a table that may already be large.
  pgm.noTransaction();
  pgm.sql(
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS conversations_tenant_created_idx ON conversations (tenant_id, created_at)",
  );
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.noTransaction();
  pgm.sql("DROP INDEX CONCURRENTLY IF EXISTS conversations_tenant_created_idx");
};
