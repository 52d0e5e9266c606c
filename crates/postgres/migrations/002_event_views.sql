-- Version 2: typed views over `events`, one per event kind. Each reads the event's JSON
-- payload (the serde form of docs/payloads.md); where an entity changes over time
-- (downtimes, OEE periods, work orders, lots) the view shows its latest state, ordered
-- by the gateway's stream sequence number.

-- Every asset with its site and line (the nearest ancestor-or-self at a work-center
-- level: line, process-cell, production-unit, storage-zone).
CREATE VIEW asset_lines AS
WITH RECURSIVE up (asset, ancestor, depth) AS (
    SELECT path, path, 0 FROM assets
    UNION ALL
    SELECT up.asset, a.parent, up.depth + 1
    FROM up JOIN assets a ON a.path = up.ancestor
    WHERE a.parent IS NOT NULL AND up.depth < 16
)
SELECT a.path AS asset, a.enterprise, a.site, a.model, a.level,
    (SELECT u.ancestor FROM up u JOIN assets p ON p.path = u.ancestor
     WHERE u.asset = a.path
       AND p.level IN ('line', 'process-cell', 'production-unit', 'storage-zone')
     ORDER BY u.depth LIMIT 1) AS line
FROM assets a;

CREATE VIEW state_changes AS
SELECT e.time, e.asset,
    e.payload ->> 'from' AS from_state,
    e.payload ->> 'to' AS to_state,
    (e.payload ->> 'since')::timestamptz AS since,
    (e.payload ->> 'duration_ms')::bigint AS duration_ms,
    e.payload ->> 'code' AS code,
    e.context_id, e.gateway_id, e.seq
FROM events e
WHERE e.kind = 'state_changed';

-- One row per downtime: its latest `downtime` event, with the reason of a later
-- `downtime_reason_assigned` event when there is one.
CREATE VIEW downtimes AS
WITH latest AS (
    SELECT DISTINCT ON (e.gateway_id, (e.payload ->> 'id')::bigint)
        e.gateway_id, (e.payload ->> 'id')::bigint AS id, e.asset, e.payload, e.seq, e.context_id
    FROM events e
    WHERE e.kind = 'downtime'
    ORDER BY e.gateway_id, (e.payload ->> 'id')::bigint, e.seq DESC
), assigned AS (
    SELECT DISTINCT ON (e.gateway_id, (e.payload ->> 'id')::bigint)
        e.gateway_id, (e.payload ->> 'id')::bigint AS id, e.payload, e.seq
    FROM events e
    WHERE e.kind = 'downtime_reason_assigned'
    ORDER BY e.gateway_id, (e.payload ->> 'id')::bigint, e.seq DESC
)
SELECT l.gateway_id, l.id AS downtime_id, l.asset,
    (l.payload ->> 'start')::timestamptz AS start_time,
    (l.payload ->> 'end')::timestamptz AS end_time,
    (l.payload ->> 'duration_ms')::bigint AS duration_ms,
    l.payload ->> 'state' AS state,
    CASE WHEN r.seq > l.seq THEN r.payload ->> 'reason' ELSE l.payload ->> 'reason' END AS reason,
    CASE WHEN r.seq > l.seq THEN NULL ELSE l.payload ->> 'reason_description' END AS reason_description,
    CASE WHEN r.seq > l.seq THEN (r.payload ->> 'planned')::boolean
         ELSE (l.payload ->> 'planned')::boolean END AS planned,
    CASE WHEN r.seq > l.seq THEN r.payload ->> 'by' ELSE l.payload ->> 'by' END AS assigned_by,
    l.context_id
FROM latest l
LEFT JOIN assigned r ON r.gateway_id = l.gateway_id AND r.id = l.id;

-- One row per OEE period of an asset: the latest revision.
CREATE VIEW oee_periods AS
SELECT DISTINCT ON (e.gateway_id, e.asset, e.payload ->> 'period', (e.payload ->> 'period_start')::timestamptz,
        COALESCE(e.payload ->> 'work_order', ''), COALESCE(e.payload ->> 'shift', ''))
    e.time, e.asset,
    e.payload ->> 'period' AS period,
    (e.payload ->> 'period_start')::timestamptz AS period_start,
    (e.payload ->> 'period_end')::timestamptz AS period_end,
    e.payload ->> 'shift' AS shift,
    e.payload ->> 'work_order' AS work_order,
    (e.payload ->> 'availability')::double precision AS availability,
    (e.payload ->> 'performance')::double precision AS performance,
    (e.payload ->> 'quality')::double precision AS quality,
    (e.payload ->> 'oee')::double precision AS oee,
    (e.payload ->> 'planned_time_ms')::bigint AS planned_time_ms,
    (e.payload ->> 'run_time_ms')::bigint AS run_time_ms,
    (e.payload ->> 'planned_stop_ms')::bigint AS planned_stop_ms,
    (e.payload ->> 'downtime_ms')::bigint AS downtime_ms,
    (e.payload ->> 'good')::bigint AS good,
    (e.payload ->> 'reject')::bigint AS reject,
    (e.payload ->> 'total')::bigint AS total,
    (e.payload ->> 'ideal_rate_per_min')::double precision AS ideal_rate_per_min,
    COALESCE((e.payload ->> 'revised')::boolean, false) AS revised,
    e.context_id, e.gateway_id, e.seq
FROM events e
WHERE e.kind = 'oee'
ORDER BY e.gateway_id, e.asset, e.payload ->> 'period', (e.payload ->> 'period_start')::timestamptz,
    COALESCE(e.payload ->> 'work_order', ''), COALESCE(e.payload ->> 'shift', ''), e.seq DESC;

-- Every status change of every work order.
CREATE VIEW work_order_changes AS
SELECT e.time, e.asset,
    e.payload ->> 'id' AS work_order,
    e.payload ->> 'status' AS status,
    e.payload ->> 'previous' AS previous,
    e.payload ->> 'product' AS product,
    (e.payload ->> 'planned_quantity')::double precision AS planned_quantity,
    (e.payload ->> 'ideal_rate_per_min')::double precision AS ideal_rate_per_min,
    (e.payload ->> 'scheduled_start')::timestamptz AS scheduled_start,
    (e.payload ->> 'scheduled_end')::timestamptz AS scheduled_end,
    (e.payload ->> 'actual_start')::timestamptz AS actual_start,
    (e.payload ->> 'actual_end')::timestamptz AS actual_end,
    e.payload ->> 'by' AS changed_by,
    e.gateway_id, e.seq
FROM events e
WHERE e.kind = 'work_order';

-- The current state of every work order.
CREATE VIEW work_orders AS
SELECT DISTINCT ON (gateway_id, work_order) *
FROM work_order_changes
ORDER BY gateway_id, work_order, seq DESC;

-- The current state of every lot.
CREATE VIEW lots AS
SELECT DISTINCT ON (e.gateway_id, e.payload ->> 'id')
    e.time AS updated, e.asset,
    e.payload ->> 'id' AS lot,
    e.payload ->> 'material' AS material,
    (e.payload ->> 'quantity')::double precision AS quantity,
    e.payload ->> 'unit' AS unit,
    e.payload ->> 'status' AS status,
    e.payload ->> 'previous' AS previous,
    e.payload ->> 'by' AS changed_by,
    e.gateway_id, e.seq
FROM events e
WHERE e.kind = 'lot'
ORDER BY e.gateway_id, e.payload ->> 'id', e.seq DESC;

-- One row per consumed lot of every genealogy record.
CREATE VIEW genealogy_links AS
SELECT e.time, e.asset,
    e.payload ->> 'produced' AS produced,
    c ->> 'lot' AS consumed,
    (c ->> 'quantity')::double precision AS quantity,
    c ->> 'unit' AS unit,
    e.payload ->> 'by' AS recorded_by,
    e.gateway_id, e.seq
FROM events e
CROSS JOIN LATERAL jsonb_array_elements(e.payload -> 'consumed') AS c
WHERE e.kind = 'genealogy';

CREATE VIEW operator_entries AS
SELECT e.time, e.asset,
    e.payload ->> 'form' AS form,
    (e.payload ->> 'entry')::bigint AS entry,
    e.payload ->> 'user' AS operator,
    e.payload -> 'values' AS values,
    e.context_id, e.gateway_id, e.seq
FROM events e
WHERE e.kind = 'operator_entry';

-- When each context field of each asset had which value: a `context_changed` event
-- closes the open interval of its field and opens the next (`end_time` NULL while open).
CREATE VIEW context_intervals AS
SELECT asset, field, value, start_time, end_time, changed_by, gateway_id
FROM (
    SELECT e.asset, e.payload ->> 'field' AS field, e.payload ->> 'new' AS value,
        e.time AS start_time,
        lead(e.time) OVER (PARTITION BY e.gateway_id, e.asset, e.payload ->> 'field' ORDER BY e.seq) AS end_time,
        e.payload ->> 'by' AS changed_by, e.gateway_id
    FROM events e
    WHERE e.kind = 'context_changed'
) changes
WHERE value IS NOT NULL;
