-- Backplane PostgreSQL schema, version 1: the catalog (gateways, models, attributes,
-- assets, tags), contexts, samples and events. Runs with search_path set to the sink's
-- schema. Samples and events are partitioned by range of time (one partition per day,
-- week or month, created by the sink ahead of the rows), or TimescaleDB hypertables when
-- the timescaledb extension is installed in the database.

CREATE TABLE gateways (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE models (
    name text PRIMARY KEY,
    description text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE attributes (
    model text NOT NULL REFERENCES models (name) ON DELETE CASCADE,
    name text NOT NULL,
    type text NOT NULL,
    unit text,
    range_min double precision,
    range_max double precision,
    description text,
    PRIMARY KEY (model, name)
);

CREATE TABLE assets (
    path text PRIMARY KEY,
    enterprise text NOT NULL,
    site text,
    parent text,
    level text NOT NULL,
    model text,
    description text,
    gateway_id integer REFERENCES gateways (id),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tags (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path text NOT NULL UNIQUE,
    asset text NOT NULL,
    attribute text NOT NULL,
    model text NOT NULL
);
CREATE INDEX tags_asset ON tags (asset);

CREATE TABLE contexts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_order text,
    product text,
    batch text,
    lot text,
    shift text,
    operator text,
    machine_state text,
    CONSTRAINT contexts_tuple UNIQUE NULLS NOT DISTINCT
        (work_order, product, batch, lot, shift, operator, machine_state)
);

DO $$
DECLARE
    timescale boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb');
    chunk interval := COALESCE(NULLIF(current_setting('backplane.partition_interval', true), ''), '1 day')::interval;
    partitioned text := CASE WHEN timescale THEN '' ELSE ' PARTITION BY RANGE (time)' END;
BEGIN
    EXECUTE 'CREATE TABLE samples (
        time timestamptz NOT NULL,
        source_time timestamptz,
        tag_id integer NOT NULL,
        value_double double precision,
        value_bigint bigint,
        value_bool boolean,
        value_text text,
        value_json jsonb,
        quality smallint NOT NULL,
        quality_reason text,
        context_id bigint,
        gateway_id integer NOT NULL,
        seq bigint NOT NULL,
        CONSTRAINT samples_once UNIQUE (gateway_id, seq, time)
    )' || partitioned;
    EXECUTE 'CREATE INDEX samples_tag_time ON samples (tag_id, time)';
    EXECUTE 'CREATE TABLE events (
        time timestamptz NOT NULL,
        asset text NOT NULL,
        kind text NOT NULL,
        payload jsonb NOT NULL,
        context_id bigint,
        gateway_id integer NOT NULL,
        seq bigint NOT NULL,
        CONSTRAINT events_once UNIQUE (gateway_id, seq, time)
    )' || partitioned;
    EXECUTE 'CREATE INDEX events_kind_time ON events (kind, time)';
    EXECUTE 'CREATE INDEX events_asset_time ON events (asset, time)';
    IF timescale THEN
        EXECUTE format('SELECT create_hypertable(%L, %L, chunk_time_interval => %L::interval)', 'samples', 'time', chunk);
        EXECUTE format('SELECT create_hypertable(%L, %L, chunk_time_interval => %L::interval)', 'events', 'time', chunk);
    END IF;
END
$$;
