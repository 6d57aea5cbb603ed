/**
 * An import line without `access` keeps a stored document's access list (as a PUT without one does)
 * instead of opening the document to the whole tenant again: the line's list is NULL when it gives
 * none, and publication falls back to the stored document's, then to `*`.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`ALTER TABLE import_documents ALTER COLUMN access DROP NOT NULL, ALTER COLUMN access DROP DEFAULT;`);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    UPDATE import_documents SET access = '{*}' WHERE access IS NULL;
    ALTER TABLE import_documents ALTER COLUMN access SET DEFAULT '{*}', ALTER COLUMN access SET NOT NULL;
  `);
};
