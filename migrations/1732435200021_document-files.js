/**
 * Files as documents (PDF, Word, PowerPoint): the original bytes are kept, so a document can be
 * downloaded as it was uploaded and parsed again when the parser improves; the parsed text is the
 * document's content as before. `page_starts` maps the text's offsets to pages (slides), and each
 * chunk records the pages it spans, so a citation can say "p. 12". A file with no text layer is
 * kept as `needs_ocr`. Originals count toward the tenant's stored bytes (migration 19).
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    ALTER TABLE documents DROP CONSTRAINT documents_status_check;
    ALTER TABLE documents ADD CONSTRAINT documents_status_check
      CHECK (status IN ('pending', 'processing', 'ready', 'failed', 'needs_ocr'));
    ALTER TABLE documents ADD COLUMN file_name text, ADD COLUMN page_starts integer[];
    ALTER TABLE chunks ADD COLUMN page_start integer, ADD COLUMN page_end integer;

    CREATE TABLE document_originals (
      document_id uuid PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
      tenant_id   uuid NOT NULL,
      bytes       bytea NOT NULL
    );
    -- PDF and Office files are compressed already: TOAST stores them out of line without trying again.
    ALTER TABLE document_originals ALTER COLUMN bytes SET STORAGE EXTERNAL;
    GRANT SELECT, INSERT, UPDATE, DELETE ON document_originals TO pgrag_app;
    ALTER TABLE document_originals ENABLE ROW LEVEL SECURITY;
    ALTER TABLE document_originals FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON document_originals
      USING (tenant_id = pgrag_current_tenant()) WITH CHECK (tenant_id = pgrag_current_tenant());

    CREATE TRIGGER stored_bytes_insert AFTER INSERT ON document_originals REFERENCING NEW TABLE AS new_rows
      FOR EACH STATEMENT EXECUTE FUNCTION pgrag_count_stored_bytes('octet_length(bytes)::bigint');
    CREATE TRIGGER stored_bytes_update AFTER UPDATE ON document_originals REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
      FOR EACH STATEMENT EXECUTE FUNCTION pgrag_count_stored_bytes('octet_length(bytes)::bigint');
    CREATE TRIGGER stored_bytes_delete AFTER DELETE ON document_originals REFERENCING OLD TABLE AS old_rows
      FOR EACH STATEMENT EXECUTE FUNCTION pgrag_count_stored_bytes('octet_length(bytes)::bigint');
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    DROP TABLE document_originals;
    ALTER TABLE chunks DROP COLUMN page_start, DROP COLUMN page_end;
    ALTER TABLE documents DROP COLUMN file_name, DROP COLUMN page_starts;
    DELETE FROM documents WHERE status = 'needs_ocr';
    ALTER TABLE documents DROP CONSTRAINT documents_status_check;
    ALTER TABLE documents ADD CONSTRAINT documents_status_check
      CHECK (status IN ('pending', 'processing', 'ready', 'failed'));
  `);
};
