-- Version 3: views for BI and MES users who do not know the schema. Ratios over several
-- periods are recomputed from summed times and counts, never averaged:
--   availability = Σ run_time / Σ planned_time
--   performance  = Σ ideal time / Σ run_time   (ideal time of a period = performance × run_time)
--   quality      = Σ good / Σ total
--   oee          = availability × performance × quality

CREATE VIEW samples_with_context AS
SELECT s.time, s.source_time,
    t.path, t.asset, t.attribute, t.model, a.site,
    COALESCE(s.value_text, s.value_double::text, s.value_bigint::text, s.value_bool::text, s.value_json::text) AS value_text,
    COALESCE(s.value_double, s.value_bigint::double precision,
        CASE WHEN s.value_bool THEN 1.0 WHEN NOT s.value_bool THEN 0.0 END) AS value_numeric,
    at.unit,
    CASE s.quality WHEN 0 THEN 'good' WHEN 1 THEN 'uncertain' ELSE 'bad' END AS quality,
    s.quality_reason,
    c.work_order, c.product, c.batch, c.lot, c.shift, c.operator, c.machine_state,
    g.name AS gateway, s.seq
FROM samples s
JOIN tags t ON t.id = s.tag_id
LEFT JOIN assets a ON a.path = t.asset
LEFT JOIN attributes at ON at.model = t.model AND at.name = t.attribute
LEFT JOIN contexts c ON c.id = s.context_id
LEFT JOIN gateways g ON g.id = s.gateway_id;

-- OEE periods with their asset's model, site and line, and the ideal time they contain.
CREATE VIEW oee_facts AS
SELECT o.*, l.model, l.site, COALESCE(l.line, o.asset) AS line,
    (o.period_start AT TIME ZONE 'UTC')::date AS day,
    o.performance * o.run_time_ms AS ideal_time_ms
FROM oee_periods o
LEFT JOIN asset_lines l ON l.asset = o.asset;

CREATE VIEW oee_by_line_shift AS
SELECT site, line, shift, day, periods, planned_time_ms, run_time_ms, planned_stop_ms, downtime_ms,
    good, reject, total, availability, performance, quality,
    availability * performance * quality AS oee
FROM (
    SELECT site, line, shift, day, count(*) AS periods,
        sum(planned_time_ms)::bigint AS planned_time_ms, sum(run_time_ms)::bigint AS run_time_ms,
        sum(planned_stop_ms)::bigint AS planned_stop_ms, sum(downtime_ms)::bigint AS downtime_ms,
        sum(good)::bigint AS good, sum(reject)::bigint AS reject, sum(total)::bigint AS total,
        sum(run_time_ms)::double precision / NULLIF(sum(planned_time_ms), 0) AS availability,
        sum(ideal_time_ms) / NULLIF(sum(run_time_ms) FILTER (WHERE ideal_time_ms IS NOT NULL), 0) AS performance,
        sum(good)::double precision / NULLIF(sum(total), 0) AS quality
    FROM oee_facts
    WHERE period = 'shift'
    GROUP BY site, line, shift, day
) sums;

CREATE VIEW oee_by_work_order AS
SELECT work_order, site, line, periods, first_start, last_end, planned_time_ms, run_time_ms,
    planned_stop_ms, downtime_ms, good, reject, total, availability, performance, quality,
    availability * performance * quality AS oee
FROM (
    SELECT work_order, site, line, count(*) AS periods,
        min(period_start) AS first_start, max(period_end) AS last_end,
        sum(planned_time_ms)::bigint AS planned_time_ms, sum(run_time_ms)::bigint AS run_time_ms,
        sum(planned_stop_ms)::bigint AS planned_stop_ms, sum(downtime_ms)::bigint AS downtime_ms,
        sum(good)::bigint AS good, sum(reject)::bigint AS reject, sum(total)::bigint AS total,
        sum(run_time_ms)::double precision / NULLIF(sum(planned_time_ms), 0) AS availability,
        sum(ideal_time_ms) / NULLIF(sum(run_time_ms) FILTER (WHERE ideal_time_ms IS NOT NULL), 0) AS performance,
        sum(good)::double precision / NULLIF(sum(total), 0) AS quality
    FROM oee_facts
    WHERE period = 'work_order'
    GROUP BY work_order, site, line
) sums;

-- Closed downtimes by asset and reason (`unassigned` when none was given).
CREATE VIEW downtime_by_reason AS
SELECT l.site, COALESCE(l.line, d.asset) AS line, d.asset,
    COALESCE(d.reason, 'unassigned') AS reason, d.planned,
    count(*) AS downtimes,
    sum(d.duration_ms)::bigint AS downtime_ms,
    min(d.start_time) AS first_start, max(d.end_time) AS last_end
FROM downtimes d
LEFT JOIN asset_lines l ON l.asset = d.asset
WHERE d.end_time IS NOT NULL
GROUP BY l.site, COALESCE(l.line, d.asset), d.asset, COALESCE(d.reason, 'unassigned'), d.planned;

-- For every lot, every lot it was made from (backward) and every lot made from it
-- (forward), at any depth, with the chain of lots between.
CREATE VIEW lot_genealogy AS
WITH RECURSIVE links AS (
    SELECT DISTINCT produced, consumed FROM genealogy_links
), backward (lot, related_lot, depth, chain) AS (
    SELECT produced, consumed, 1, ARRAY[produced, consumed] FROM links
    UNION ALL
    SELECT b.lot, k.consumed, b.depth + 1, b.chain || k.consumed
    FROM backward b JOIN links k ON k.produced = b.related_lot
    WHERE NOT k.consumed = ANY (b.chain) AND b.depth < 64
), forward (lot, related_lot, depth, chain) AS (
    SELECT consumed, produced, 1, ARRAY[consumed, produced] FROM links
    UNION ALL
    SELECT f.lot, k.produced, f.depth + 1, f.chain || k.produced
    FROM forward f JOIN links k ON k.consumed = f.related_lot
    WHERE NOT k.produced = ANY (f.chain) AND f.depth < 64
)
SELECT lot, 'backward'::text AS direction, related_lot, depth, chain FROM backward
UNION ALL
SELECT lot, 'forward'::text AS direction, related_lot, depth, chain FROM forward;

-- Every instance of a model across sites and lines, per period.
CREATE VIEW benchmark_oee AS
SELECT model, site, line, asset, period, shift, day, work_order, periods,
    planned_time_ms, run_time_ms, downtime_ms, good, reject, total,
    availability, performance, quality,
    availability * performance * quality AS oee,
    total::double precision / NULLIF(run_time_ms / 60000.0, 0) AS speed_per_run_min,
    reject::double precision / NULLIF(total, 0) AS reject_rate
FROM (
    SELECT model, site, line, asset, period, shift, day, work_order, count(*) AS periods,
        sum(planned_time_ms)::bigint AS planned_time_ms, sum(run_time_ms)::bigint AS run_time_ms,
        sum(downtime_ms)::bigint AS downtime_ms,
        sum(good)::bigint AS good, sum(reject)::bigint AS reject, sum(total)::bigint AS total,
        sum(run_time_ms)::double precision / NULLIF(sum(planned_time_ms), 0) AS availability,
        sum(ideal_time_ms) / NULLIF(sum(run_time_ms) FILTER (WHERE ideal_time_ms IS NOT NULL), 0) AS performance,
        sum(good)::double precision / NULLIF(sum(total), 0) AS quality
    FROM oee_facts
    GROUP BY model, site, line, asset, period, shift, day, work_order
) sums;

CREATE VIEW benchmark_downtime AS
SELECT l.model, l.site, d.asset, COALESCE(d.reason, 'unassigned') AS reason,
    count(*) AS downtimes,
    sum(d.duration_ms)::bigint AS downtime_ms,
    (sum(d.duration_ms) FILTER (WHERE d.planned))::bigint AS planned_ms,
    (sum(d.duration_ms) FILTER (WHERE NOT d.planned))::bigint AS unplanned_ms,
    avg(d.duration_ms)::double precision AS mean_ms
FROM downtimes d
LEFT JOIN asset_lines l ON l.asset = d.asset
WHERE d.end_time IS NOT NULL
GROUP BY l.model, l.site, d.asset, COALESCE(d.reason, 'unassigned');
