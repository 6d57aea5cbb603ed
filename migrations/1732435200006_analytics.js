/**
 * Analytics for analysts: daily partitions of analytics.events with retention, curated views, and
 * the analyst role's privileges (SELECT on the views only; no raw tables, no API keys, no writes).
 *
 * Events are written by the API in batches through analytics.record_events, a SECURITY DEFINER
 * function: one round trip for events of many tenants (row-level security binds the app role on the
 * table itself). The views run with their owner's rights: analysts see aggregates across tenants,
 * never the raw tables.
 *
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.sql(`
    CREATE FUNCTION analytics.record_events(events jsonb) RETURNS integer
      LANGUAGE sql SECURITY DEFINER SET search_path = analytics, public, pg_temp
      AS $$
        WITH inserted AS (
          INSERT INTO analytics.events (occurred_at, tenant_id, kind, request_id, collection_id, http_status, latency_ms, payload)
          SELECT occurred_at, tenant_id, kind, request_id, collection_id, http_status, latency_ms, coalesce(payload, '{}')
          FROM jsonb_to_recordset(events) AS e(occurred_at timestamptz, tenant_id uuid, kind text, request_id text,
                                                collection_id uuid, http_status integer, latency_ms float8, payload jsonb)
          RETURNING 1)
        SELECT count(*)::integer FROM inserted
      $$;

    -- Partitions for today and the next days; a day that already landed in the default partition
    -- is left there (creating its partition would fail).
    CREATE FUNCTION analytics.ensure_partitions(days_ahead integer DEFAULT 3) RETURNS void
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = analytics, pg_temp
      AS $$
      DECLARE day date;
      BEGIN
        FOR day IN SELECT generate_series(current_date, current_date + days_ahead, interval '1 day')::date LOOP
          IF to_regclass(format('analytics.events_%s', to_char(day, 'YYYYMMDD'))) IS NULL
             AND NOT EXISTS (SELECT 1 FROM analytics.events_default WHERE occurred_at >= day AND occurred_at < day + 1) THEN
            EXECUTE format('CREATE TABLE analytics.%I PARTITION OF analytics.events FOR VALUES FROM (%L) TO (%L)',
                           'events_' || to_char(day, 'YYYYMMDD'), day, day + 1);
          END IF;
        END LOOP;
      END $$;

    CREATE FUNCTION analytics.drop_partitions_before(keep_days integer) RETURNS integer
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = analytics, pg_temp
      AS $$
      DECLARE part record; dropped integer := 0;
      BEGIN
        FOR part IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = 'analytics.events'::regclass AND c.relname ~ '^events_[0-9]{8}$'
                      AND to_date(substr(c.relname, 8), 'YYYYMMDD') < current_date - keep_days LOOP
          EXECUTE format('DROP TABLE analytics.%I', part.relname);
          dropped := dropped + 1;
        END LOOP;
        DELETE FROM analytics.events_default WHERE occurred_at < current_date - keep_days;
        RETURN dropped;
      END $$;

    SELECT analytics.ensure_partitions();

    CREATE TABLE analytics.model_prices (
      model              text PRIMARY KEY,
      usd_per_1k_prompt  numeric NOT NULL DEFAULT 0,
      usd_per_1k_output  numeric NOT NULL DEFAULT 0
    );
    INSERT INTO analytics.model_prices (model) VALUES ('pgrag-dev-extractive');

    CREATE VIEW analytics.daily_usage AS
      SELECT date_trunc('day', occurred_at)::date AS day, tenant_id, kind,
             count(*) AS requests, count(*) FILTER (WHERE http_status >= 400) AS errors,
             round(avg(latency_ms)::numeric, 1) AS avg_latency_ms
      FROM analytics.events GROUP BY 1, 2, 3;

    CREATE VIEW analytics.stage_latency AS
      SELECT date_trunc('day', e.occurred_at)::date AS day, e.kind, s.key AS stage, count(*) AS samples,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY s.value::float8) AS p50_ms,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY s.value::float8) AS p95_ms,
             percentile_cont(0.99) WITHIN GROUP (ORDER BY s.value::float8) AS p99_ms
      FROM analytics.events e CROSS JOIN LATERAL jsonb_each_text(e.payload -> 'timings_ms') AS s
      GROUP BY 1, 2, 3;

    CREATE VIEW analytics.zero_result_queries AS
      SELECT occurred_at, tenant_id, payload ->> 'collection' AS collection, payload ->> 'query' AS query, payload ->> 'mode' AS mode
      FROM analytics.events
      WHERE kind = 'search' AND http_status = 200 AND jsonb_array_length(coalesce(payload -> 'results', '[]')) = 0;

    CREATE VIEW analytics.top_documents AS
      SELECT e.tenant_id, d.external_id, d.title, count(*) AS times_retrieved, round(avg((r ->> 'rank')::int), 1) AS avg_rank
      FROM analytics.events e
      CROSS JOIN LATERAL jsonb_array_elements(coalesce(e.payload -> 'results', '[]')) AS r
      JOIN public.chunks c ON c.id = (r ->> 'chunk_id')::bigint
      JOIN public.documents d ON d.id = c.document_id
      GROUP BY 1, 2, 3;

    CREATE VIEW analytics.feedback_rate AS
      SELECT date_trunc('day', occurred_at)::date AS day, tenant_id,
             count(*) FILTER (WHERE payload ->> 'rating' = 'up') AS thumbs_up,
             count(*) FILTER (WHERE payload ->> 'rating' = 'down') AS thumbs_down,
             round(count(*) FILTER (WHERE payload ->> 'rating' = 'up')::numeric / nullif(count(*), 0), 3) AS positive_rate
      FROM analytics.events WHERE kind = 'feedback' GROUP BY 1, 2;

    CREATE VIEW analytics.token_usage AS
      SELECT date_trunc('day', e.occurred_at)::date AS day, e.tenant_id, e.payload ->> 'model' AS model,
             sum((e.payload ->> 'prompt_tokens')::bigint) AS prompt_tokens,
             sum((e.payload ->> 'completion_tokens')::bigint) AS completion_tokens,
             round(sum((e.payload ->> 'prompt_tokens')::bigint * coalesce(p.usd_per_1k_prompt, 0) / 1000
                     + (e.payload ->> 'completion_tokens')::bigint * coalesce(p.usd_per_1k_output, 0) / 1000), 4) AS estimated_usd
      FROM analytics.events e LEFT JOIN analytics.model_prices p ON p.model = e.payload ->> 'model'
      WHERE e.kind = 'chat' GROUP BY 1, 2, 3;

    CREATE VIEW analytics.ingestion_backlog AS
      SELECT d.tenant_id, c.name AS collection,
             count(*) FILTER (WHERE d.status = 'pending') AS pending,
             count(*) FILTER (WHERE d.status = 'failed') AS failed,
             count(*) FILTER (WHERE d.status = 'ready') AS ready,
             min(d.updated_at) FILTER (WHERE d.status = 'pending') AS oldest_pending
      FROM public.documents d JOIN public.collections c ON c.id = d.collection_id
      GROUP BY 1, 2;

    CREATE VIEW analytics.ingestion_failures AS
      SELECT d.tenant_id, c.name AS collection, d.external_id, d.version, d.error, d.updated_at
      FROM public.documents d JOIN public.collections c ON c.id = d.collection_id
      WHERE d.status = 'failed';

    GRANT EXECUTE ON FUNCTION analytics.record_events(jsonb), analytics.ensure_partitions(integer),
                              analytics.drop_partitions_before(integer) TO pgrag_app;
    REVOKE ALL ON ALL TABLES IN SCHEMA analytics FROM pgrag_analyst;
    GRANT SELECT ON analytics.daily_usage, analytics.stage_latency, analytics.zero_result_queries,
                    analytics.top_documents, analytics.feedback_rate, analytics.token_usage,
                    analytics.ingestion_backlog, analytics.ingestion_failures, analytics.model_prices TO pgrag_analyst;
    ALTER ROLE pgrag_analyst CONNECTION LIMIT 10;
    DO $$
    BEGIN
      EXECUTE format('ALTER ROLE pgrag_analyst SET statement_timeout = %L',
                     coalesce(nullif(current_setting('pgrag.analyst_statement_timeout', true), ''), '30s'));
    END $$;
  `);
};

export const down = (pgm) => {
  pgm.sql(`
    ALTER ROLE pgrag_analyst RESET statement_timeout;
    ALTER ROLE pgrag_analyst CONNECTION LIMIT -1;
    DROP VIEW analytics.daily_usage, analytics.stage_latency, analytics.zero_result_queries, analytics.top_documents,
              analytics.feedback_rate, analytics.token_usage, analytics.ingestion_backlog, analytics.ingestion_failures;
    DROP TABLE analytics.model_prices;
    DROP FUNCTION analytics.drop_partitions_before(integer);
    DROP FUNCTION analytics.ensure_partitions(integer);
    DROP FUNCTION analytics.record_events(jsonb);
    DO $$
    DECLARE part record;
    BEGIN
      FOR part IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                  WHERE i.inhparent = 'analytics.events'::regclass AND c.relname ~ '^events_[0-9]{8}$' LOOP
        EXECUTE format('DROP TABLE analytics.%I', part.relname);
      END LOOP;
    END $$;
  `);
};
