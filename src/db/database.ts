import type { ColumnType, Generated, Selectable } from "kysely";

/**
 * Glossary
 * - tenant: an organisation using pgrag; every row it owns carries its tenant_id.
 * - collection: a named set of documents of one tenant, searched together, with one text-search language.
 * - document: one source text (Markdown, HTML, plain text) with metadata; re-ingesting it bumps its version.
 * - chunk: a passage of a document, sized for the embedding model and the prompt, with its offsets.
 * - consistency token: the primary's WAL position (LSN) after a write; a read carrying it is served
 *   only by a node that has replayed that far, so a client always sees its own writes.
 * - leg: one retrieval method (vector, BM25) whose ranked list is fused with the others.
 * - fusion: combining the legs' rankings into one (reciprocal rank fusion or weighted scores).
 */

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json = ColumnType<unknown, string | undefined, string>;

export interface EmbeddingSettingsTable {
  singleton: Generated<boolean>;
  model: string;
  dimension: number;
  index_type: Generated<"vector" | "halfvec" | "binary">;
  created_at: Timestamp;
}

export interface TenantTable {
  id: Generated<string>;
  name: string;
  created_at: Timestamp;
}

/** A tenant's own quotas (migration 17); NULL: the configured default. */
export interface TenantQuotaTable {
  tenant_id: string;
  collections: number | null;
  running_imports: number | null;
  files: number | null;
  running_batches: number | null;
  /** bigint: arrives as a string. */
  stored_bytes: ColumnType<string | null, number | null | undefined, number | null>;
}

/** What a tenant stores, in bytes, kept by triggers (migration 19). */
export interface TenantStorageTable {
  tenant_id: string;
  bytes: ColumnType<string, never, never>;
}

export interface ApiKeyTable {
  id: Generated<string>;
  tenant_id: string;
  name: string;
  prefix: string;
  secret_hash: Buffer;
  scopes: string[];
  /** The principals a server-to-server key reads as; null: the whole tenant (migration 24). */
  principals: ColumnType<string[] | null, string[] | null | undefined, string[] | null>;
  created_at: Timestamp;
  revoked_at: Date | null;
}

export interface CollectionTable {
  id: Generated<string>;
  tenant_id: string;
  name: string;
  language: ColumnType<string, string | undefined, string>;
  settings: Json;
  created_at: Timestamp;
}

export interface DocumentTable {
  id: Generated<string>;
  tenant_id: string;
  collection_id: string;
  external_id: string;
  source: string | null;
  title: string | null;
  content_type: string;
  metadata: Json;
  content: string;
  content_hash: Buffer;
  /** The uploaded file's name, for files (migration 21). */
  file_name: string | null;
  /** Where each page (slide) starts in `content`, for files with pages (migration 21). */
  page_starts: number[] | null;
  version: Generated<number>;
  status: ColumnType<"pending" | "ready" | "failed" | "needs_ocr", string | undefined, string>;
  /** Who may read it: `*`, `user:<id>`, `group:<id>` (migration 24). */
  access: ColumnType<string[], string[] | undefined, string[]>;
  /** Where a pending document's ingestion is; null while it waits in the queue (migration 23). */
  stage: ColumnType<"parsing" | "embedding" | null, string | null | undefined, string | null>;
  error: string | null;
  chunk_count: Generated<number>;
  /** Sum of the BM25 lengths of the document's current chunks. bigint: arrives as a string. */
  lexeme_total: ColumnType<string, string | number | undefined, string | number>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** A file's bytes as uploaded (migration 21): parsed into the document's content, kept for download and reparse. */
export interface DocumentOriginalTable {
  document_id: string;
  tenant_id: string;
  bytes: Buffer;
}

export interface ChunkTable {
  id: Generated<string>;
  tenant_id: string;
  collection_id: string;
  document_id: string;
  document_version: number;
  ordinal: number;
  content: string;
  heading_path: string[];
  char_start: number;
  char_end: number;
  /** The pages (slides) the chunk spans, for documents with pages (migration 21). */
  page_start: number | null;
  page_end: number | null;
  token_count: number;
  /** Its document's access list, copied so that a chunk is checked without a join (migration 24). */
  access: ColumnType<string[], string[] | undefined, string[]>;
  metadata: Json;
  language: string;
  tsv: ColumnType<string, never, never>;
  /** pgvector text form, e.g. "[0.1,0.2]"; written with pgvector's toSql. */
  embedding: string | null;
  created_at: Timestamp;
}

export interface ConversationTable {
  id: Generated<string>;
  tenant_id: string;
  collection_id: string | null;
  title: string | null;
  /** Who started it: `user:<id>`, `key:<id>`, or null (a tenant-wide key); from pgrag.owner (migration 25). */
  owner: Generated<string | null>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface MessageTable {
  id: Generated<string>;
  tenant_id: string;
  conversation_id: string;
  role: "system" | "user" | "assistant";
  content: string;
  status: ColumnType<"complete" | "partial" | "failed", string | undefined, string>;
  citations: Json;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  model: string | null;
  /** The user's rating of an answer, its comment and when (migration 23). */
  feedback_rating: ColumnType<"up" | "down" | null, string | null | undefined, string | null>;
  feedback_comment: string | null;
  feedback_at: ColumnType<Date | null, string | null | undefined, string | null>;
  created_at: Timestamp;
}

/** A tenant's identity provider for its end users' tokens (migration 25). */
export interface IdentityProviderTable {
  tenant_id: string;
  issuer: string;
  audience: string;
  jwks_url: string | null;
  jwks: Json | null;
  user_claim: Generated<string>;
  groups_claim: Generated<string>;
  require_end_user: Generated<boolean>;
  updated_at: Generated<Date>;
}

/** A claimed idempotency key and the answer its request gave (migration 29). */
export interface IdempotentRequestTable {
  tenant_id: string;
  key: string;
  fingerprint: string;
  response_status: number | null;
  response_body: ColumnType<unknown, string | null, string | null>;
  response_token: string | null;
  created_at: Generated<Date>;
}

export interface EventTable {
  id: Generated<string>;
  occurred_at: Timestamp;
  tenant_id: string;
  kind: string;
  request_id: string | null;
  collection_id: string | null;
  http_status: number | null;
  latency_ms: number | null;
  payload: Json;
}

/** A block of one term's BM25 postings, packed; see migrations 11 and 30. */
export interface Bm25BlockTable {
  collection_id: string;
  term: string;
  block_id: Generated<string>;
  tenant_id: string;
  postings: number;
  max_tf: number;
  min_dl: number;
  compacted: Generated<boolean>;
  first_chunk: string;
  last_chunk: string;
  /** The postings, packed (src/postings/postings-codec.ts). */
  data: Buffer;
}

/** What deleted chunks took from a term's document frequency, until compaction drops their postings. */
export interface Bm25DeletionTable {
  collection_id: string;
  term: string;
  deletion_id: Generated<string>;
  tenant_id: string;
  postings: number;
}

export interface CollectionStatsTable {
  collection_id: string;
  tenant_id: string;
  chunk_count: ColumnType<string, string | number, string | number>;
  total_length: ColumnType<string, string | number, string | number>;
}

export interface EmbeddingCacheTable {
  content_hash: Buffer;
  embedding: string;
  created_at: Timestamp;
}

/** A bulk import (migration 13): uploading → queued → embedding → indexing → completed | failed. */
export interface ImportTable {
  id: Generated<string>;
  tenant_id: string;
  collection_id: string;
  status: Generated<"uploading" | "queued" | "embedding" | "indexing" | "completed" | "failed">;
  /** Chosen when the index phase starts. */
  target: "own_partition" | "append" | null;
  documents_seen: Generated<number>;
  documents_staged: Generated<number>;
  documents_unchanged: Generated<number>;
  documents_failed: Generated<number>;
  chunks_staged: Generated<number>;
  error: string | null;
  /** The consistency token of the commit that made the import visible. */
  visible_token: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  finished_at: Timestamp | null;
}

/** An import's uploaded lines, until the import makes documents of them. */
export interface ImportDocumentTable {
  import_id: string;
  line: number;
  tenant_id: string;
  external_id: string;
  title: string | null;
  source: string | null;
  content_type: string;
  /** The document's access list (migration 24); null: as stored, or `*` for a new document (migration 26). */
  access: string[] | null;
  metadata: Json;
  content: string;
  /** A file's name and bytes, for a line that carries a file (migration 22); its pages once parsed. */
  file_name: string | null;
  original: Buffer | null;
  page_starts: number[] | null;
  state: Generated<"pending" | "staged" | "unchanged" | "failed">;
  error: string | null;
  document_id: string | null;
  version: number | null;
  hash: Buffer | null;
  chunk_count: number | null;
  /** bigint: arrives as a string. */
  lexeme_total: ColumnType<string | null, number | null | undefined, number | null>;
}

/** A file of the OpenAI files API (migrations 14, 17): an upload, or a batch's output or errors. */
export interface BatchFileTable {
  id: string;
  tenant_id: string;
  purpose: "batch" | "batch_output";
  filename: string;
  /** bigint: arrives as a string. */
  bytes: ColumnType<string, number, number>;
  batch_id: string | null;
  kind: "upload" | "output" | "error";
  created_at: Timestamp;
  expires_at: Timestamp | null;
}

/** An uploaded file's lines. */
export interface BatchFileLineTable {
  file_id: string;
  line: number;
  tenant_id: string;
  text: string;
}

export interface BatchTable {
  id: string;
  tenant_id: string;
  input_file_id: string;
  endpoint: "/v1/chat/completions" | "/v1/embeddings";
  completion_window: string;
  status: "in_progress" | "finalizing" | "completed" | "failed" | "expired" | "cancelling" | "cancelled";
  metadata: Json | null;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: Timestamp;
  in_progress_at: Timestamp;
  expires_at: Timestamp;
  finalizing_at: Timestamp | null;
  completed_at: Timestamp | null;
  expired_at: Timestamp | null;
  cancelling_at: Timestamp | null;
  cancelled_at: Timestamp | null;
}

/** A batch's requests (their bodies stay in the input file, migration 18): pending → running → succeeded | failed. */
export interface BatchLineTable {
  batch_id: string;
  line: number;
  tenant_id: string;
  custom_id: string;
  state: Generated<"pending" | "running" | "succeeded" | "failed">;
  attempts: Generated<number>;
  not_before: Timestamp;
  lease_until: Timestamp | null;
  status_code: number | null;
  response: Json | null;
  error: Json | null;
  finished_at: Timestamp | null;
}

export interface Database {
  embedding_settings: EmbeddingSettingsTable;
  tenants: TenantTable;
  tenant_quotas: TenantQuotaTable;
  tenant_storage: TenantStorageTable;
  api_keys: ApiKeyTable;
  collections: CollectionTable;
  documents: DocumentTable;
  document_originals: DocumentOriginalTable;
  chunks: ChunkTable;
  conversations: ConversationTable;
  messages: MessageTable;
  identity_providers: IdentityProviderTable;
  idempotent_requests: IdempotentRequestTable;
  bm25_blocks: Bm25BlockTable;
  bm25_deletions: Bm25DeletionTable;
  collection_stats: CollectionStatsTable;
  embedding_cache: EmbeddingCacheTable;
  imports: ImportTable;
  import_documents: ImportDocumentTable;
  batch_files: BatchFileTable;
  batch_file_lines: BatchFileLineTable;
  batches: BatchTable;
  batch_lines: BatchLineTable;
  "analytics.events": EventTable;
}

export type DocumentRow = Selectable<DocumentTable>;
export type CollectionRow = Selectable<CollectionTable>;
