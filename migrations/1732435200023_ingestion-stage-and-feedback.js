/**
 * Two things the console shows. A pending document's `stage` says where its ingestion is (parsing,
 * embedding; null while it waits in the queue), without changing what `status` means to those who
 * wait for documents to settle; the `processing` status, never set, goes. An answer's feedback is stored on its message, so it is read back
 * with the conversation; the usage event stays for the analysts' rates.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    ALTER TABLE documents DROP CONSTRAINT documents_status_check;
    ALTER TABLE documents ADD CONSTRAINT documents_status_check
      CHECK (status IN ('pending', 'ready', 'failed', 'needs_ocr'));
    ALTER TABLE documents ADD COLUMN stage text CHECK (stage IN ('parsing', 'embedding'));
    ALTER TABLE messages
      ADD COLUMN feedback_rating text CHECK (feedback_rating IN ('up', 'down')),
      ADD COLUMN feedback_comment text,
      ADD COLUMN feedback_at timestamptz;
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    ALTER TABLE messages DROP COLUMN feedback_rating, DROP COLUMN feedback_comment, DROP COLUMN feedback_at;
    ALTER TABLE documents DROP COLUMN stage;
    ALTER TABLE documents DROP CONSTRAINT documents_status_check;
    ALTER TABLE documents ADD CONSTRAINT documents_status_check
      CHECK (status IN ('pending', 'processing', 'ready', 'failed', 'needs_ocr'));
  `);
};
