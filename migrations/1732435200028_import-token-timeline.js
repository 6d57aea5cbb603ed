/**
 * An import's consistency token carries the timeline it was written on ("2:0/16B3748"), as every
 * token now does: a failover starts a new timeline, and a bare position says nothing about which
 * history it belongs to. Existing positions stay valid as bare tokens.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    ALTER TABLE imports ALTER COLUMN visible_lsn TYPE text USING visible_lsn::text;
    ALTER TABLE imports RENAME COLUMN visible_lsn TO visible_token;
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    ALTER TABLE imports RENAME COLUMN visible_token TO visible_lsn;
    ALTER TABLE imports ALTER COLUMN visible_lsn TYPE pg_lsn USING substring(visible_lsn FROM '[0-9A-F]+/[0-9A-F]+$')::pg_lsn;
  `);
};
