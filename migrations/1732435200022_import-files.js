/**
 * Imports take files too: a line may carry a PDF, Word or PowerPoint file (base64 in the JSON line),
 * kept with the line until the import publishes it as a document with its original (migration 21).
 * The tenant's stored bytes count a waiting file as they count a waiting text (migration 19).
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
const TRIGGERS = (size) => `
    CREATE TRIGGER stored_bytes_insert AFTER INSERT ON import_documents REFERENCING NEW TABLE AS new_rows
      FOR EACH STATEMENT EXECUTE FUNCTION pgrag_count_stored_bytes('${size}');
    CREATE TRIGGER stored_bytes_update AFTER UPDATE ON import_documents REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
      FOR EACH STATEMENT EXECUTE FUNCTION pgrag_count_stored_bytes('${size}');
    CREATE TRIGGER stored_bytes_delete AFTER DELETE ON import_documents REFERENCING OLD TABLE AS old_rows
      FOR EACH STATEMENT EXECUTE FUNCTION pgrag_count_stored_bytes('${size}');`;

const DROP_TRIGGERS = `
    DROP TRIGGER stored_bytes_insert ON import_documents;
    DROP TRIGGER stored_bytes_update ON import_documents;
    DROP TRIGGER stored_bytes_delete ON import_documents;`;

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const up = (pgm) => {
  pgm.sql(`
    ALTER TABLE import_documents ADD COLUMN file_name text, ADD COLUMN original bytea, ADD COLUMN page_starts integer[];
    ALTER TABLE import_documents ALTER COLUMN original SET STORAGE EXTERNAL;
    ${DROP_TRIGGERS}
    ${TRIGGERS("octet_length(content)::bigint + coalesce(octet_length(original), 0)::bigint")}
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    ${DROP_TRIGGERS}
    ${TRIGGERS("octet_length(content)::bigint")}
    ALTER TABLE import_documents DROP COLUMN file_name, DROP COLUMN original, DROP COLUMN page_starts;
  `);
};
