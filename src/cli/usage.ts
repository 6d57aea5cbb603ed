/** What `pgrag --help` prints, and the error for a command line it cannot take (exit code 2). */
export const USAGE = `pgrag — retrieval-augmented generation on PostgreSQL

Usage: pgrag <command> [options]

Commands:
  serve                 run the HTTP API (and ingestion workers) until SIGINT/SIGTERM
  worker                run ingestion workers only, for scale-out (set PGRAG_WORKER_CONCURRENCY)
  migrate [up|down]     apply pending migrations (up) or revert the last one (down)
      --count N         how many migrations to apply or revert
  ingest <path…> [--tenant T] [--collection C]
                        Markdown, text and HTML files (folders recursively) into a collection
  import <file.jsonl|folder> [--tenant T] [--collection C]
                        bulk-import JSON Lines (one document per line: external_id or _id, content or text,
                        title, source, metadata, content_type; a folder: each .jsonl in it), with progress
  ask "<question>" [--tenant T] [--collection C] [--mode hybrid|vector|bm25]
                        stream an answer with citations to the terminal
  search "<query>" [--tenant T] [--collection C] [--mode hybrid|vector|bm25] [--k N]
                        the best chunks: rank, score, document, start of the text
  collections [list] | create NAME [--language L] | delete NAME [--tenant T]
                        a tenant's collections (delete takes its documents with it)
  conversations [--tenant T] [--limit N]
                        a tenant's conversations, most recently active first
  keys create --tenant NAME [--name LABEL] [--scopes read,write,admin]
                        create an API key (and the tenant if new); the key is shown once
  keys list --tenant NAME
  keys revoke KEY_ID
  quotas show|set --tenant NAME [--collections N] [--running-imports N] [--files N] [--running-batches N] [--stored-bytes N]
                        a tenant's own quotas (N or "default"; unset ones follow PGRAG_QUOTA_*)
  eval [--dataset DIR (default: the vendored SciFact)] [--split train] [--modes hybrid,vector,bm25] [--limit N]
                        ingest a BEIR-format folder and print nDCG@10, Recall@100 and latency per mode
  config                print every configuration variable with its default and meaning
  compose-secrets [--out FILE]
                        random passwords and their SCRAM verifiers for docker compose (default .env)
  dev-inference [--port N]
                        run the OpenAI-compatible dev inference server on its own

Configuration comes from PGRAG_* environment variables (see README), or from the env file named
by PGRAG_ENV_FILE.`;

export class UsageError extends Error {}
