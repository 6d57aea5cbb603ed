/**
 * Core schema: tenants, keys, collections, documents, chunks, conversations, messages.
 * Every tenant-owned row carries tenant_id, so row-level security can key on it.
 *
 * The embedding model and dimension come from session settings that `src/db/migrate.ts` sets from
 * the validated config (pgrag.embedding_model / pgrag.embedding_dimension): the vector column needs a
 * fixed dimension for its HNSW index, and the choice is recorded so that a later mismatch is refused.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    CREATE EXTENSION IF NOT EXISTS vector;

    CREATE TABLE embedding_settings (
      singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
      model      text    NOT NULL,
      dimension  integer NOT NULL CHECK (dimension > 0),
      created_at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO embedding_settings (model, dimension)
    VALUES (current_setting('pgrag.embedding_model'), current_setting('pgrag.embedding_dimension')::integer);

    CREATE TABLE tenants (
      id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name       text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
      created_at timestamptz NOT NULL DEFAULT now()
    );

    -- Only a SHA-256 of the secret is stored; the prefix lets a person recognise a key in listings.
    CREATE TABLE api_keys (
      id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id    uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
      name         text NOT NULL,
      prefix       text NOT NULL,
      secret_hash  bytea NOT NULL UNIQUE,
      scopes       text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'write', 'admin']),
      created_at   timestamptz NOT NULL DEFAULT now(),
      revoked_at   timestamptz
    );
    CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

    CREATE TABLE collections (
      id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id  uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
      name       text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'),
      -- Text-search configuration used for both documents and queries of this collection.
      language   regconfig NOT NULL DEFAULT 'english',
      -- Chunking settings (token budget, overlap); validated by the API, stored as given.
      settings   jsonb NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (tenant_id, name),
      UNIQUE (tenant_id, id)
    );

    CREATE TABLE documents (
      id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id     uuid NOT NULL,
      collection_id uuid NOT NULL,
      -- The caller's own identifier; re-ingesting the same one replaces the document.
      external_id   text NOT NULL,
      source        text,
      title         text,
      content_type  text NOT NULL,
      metadata      jsonb NOT NULL DEFAULT '{}',
      content       text NOT NULL,
      content_hash  bytea NOT NULL,
      version       integer NOT NULL DEFAULT 1,
      status        text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
      error         text,
      chunk_count   integer NOT NULL DEFAULT 0,
      created_at    timestamptz NOT NULL DEFAULT now(),
      updated_at    timestamptz NOT NULL DEFAULT now(),
      FOREIGN KEY (tenant_id, collection_id) REFERENCES collections (tenant_id, id) ON DELETE CASCADE,
      UNIQUE (collection_id, external_id)
    );
    CREATE INDEX documents_tenant_status_idx ON documents (tenant_id, status);
    CREATE INDEX documents_collection_idx ON documents (collection_id, updated_at DESC);

    CREATE TABLE chunks (
      id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      tenant_id        uuid NOT NULL,
      collection_id    uuid NOT NULL,
      document_id      uuid NOT NULL REFERENCES documents ON DELETE CASCADE,
      document_version integer NOT NULL,
      ordinal          integer NOT NULL,
      content          text NOT NULL,
      heading_path     text[] NOT NULL DEFAULT '{}',
      char_start       integer NOT NULL,
      char_end         integer NOT NULL CHECK (char_end >= char_start),
      token_count      integer NOT NULL,
      -- Copied from the document so metadata filters apply inside both retrieval legs without a join.
      metadata         jsonb NOT NULL DEFAULT '{}',
      language         regconfig NOT NULL,
      tsv              tsvector GENERATED ALWAYS AS (to_tsvector(language, content)) STORED,
      created_at       timestamptz NOT NULL DEFAULT now(),
      UNIQUE (document_id, ordinal)
    );
    CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);
    CREATE INDEX chunks_collection_idx ON chunks (collection_id);
    CREATE INDEX chunks_metadata_idx ON chunks USING gin (metadata jsonb_path_ops);

    DO $$
    BEGIN
      EXECUTE format('ALTER TABLE chunks ADD COLUMN embedding vector(%s)',
                     current_setting('pgrag.embedding_dimension')::integer);
    END $$;

    CREATE TABLE conversations (
      id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id     uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
      collection_id uuid,
      title         text,
      created_at    timestamptz NOT NULL DEFAULT now(),
      updated_at    timestamptz NOT NULL DEFAULT now(),
      FOREIGN KEY (tenant_id, collection_id) REFERENCES collections (tenant_id, id) ON DELETE SET NULL (collection_id)
    );
    CREATE INDEX conversations_tenant_idx ON conversations (tenant_id, updated_at DESC);

    CREATE TABLE messages (
      id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      tenant_id       uuid NOT NULL,
      conversation_id uuid NOT NULL REFERENCES conversations ON DELETE CASCADE,
      role            text NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
      content         text NOT NULL,
      -- complete: answered in full; partial: the backend failed mid-answer; failed: no answer.
      status          text NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'partial', 'failed')),
      citations       jsonb NOT NULL DEFAULT '[]',
      prompt_tokens     integer,
      completion_tokens integer,
      model           text,
      created_at      timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX messages_conversation_idx ON messages (conversation_id, id);

    -- Usage events (search, chat, ingestion, feedback), partitioned by day for cheap retention.
    CREATE SCHEMA analytics;
    CREATE TABLE analytics.events (
      id            bigint GENERATED ALWAYS AS IDENTITY,
      occurred_at   timestamptz NOT NULL DEFAULT now(),
      tenant_id     uuid NOT NULL,
      kind          text NOT NULL,
      request_id    text,
      collection_id uuid,
      http_status   integer,
      latency_ms    double precision,
      payload       jsonb NOT NULL DEFAULT '{}',
      PRIMARY KEY (occurred_at, id)
    ) PARTITION BY RANGE (occurred_at);
    CREATE TABLE analytics.events_default PARTITION OF analytics.events DEFAULT;
    CREATE INDEX events_tenant_time_idx ON analytics.events (tenant_id, occurred_at);
  `);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.sql(`
    DROP SCHEMA analytics CASCADE;
    DROP TABLE messages, conversations, chunks, documents, collections, api_keys, tenants, embedding_settings;
  `);
};
