-- The alert episodes open now: one row per alert_id whose latest record is `firing`. The
-- `alerts` table is a log (one row per state change); the latest row is the one with the latest
-- recorded_at, and a `resolved` row recorded in the same second as its firing row wins the tie
-- (the `* 2 + (status = 'resolved')` key), as the evaluator reads it at start. A re-fire after a
-- crash repeats the firing row with the same id: still one row here, with the first fired_at.
-- The inner aliases differ from the column names: ClickHouse 18.16 resolves an alias that
-- shadows a column inside other aggregates of the same SELECT.
CREATE VIEW IF NOT EXISTS {db}.open_alerts AS
SELECT
    alert_id,
    last_account_id   AS account_id,
    last_rule_id      AS rule_id,
    last_severity     AS severity,
    first_fired_at    AS fired_at,
    last_stage        AS lifecycle_stage,
    last_health_score AS health_score,
    last_csm_owner    AS csm_owner,
    last_reason       AS reason,
    last_metrics      AS metrics
FROM
(
    SELECT
        alert_id,
        argMax(status, toUInt64(recorded_at) * 2 + (status = 'resolved'))          AS last_status,
        argMax(account_id, toUInt64(recorded_at) * 2 + (status = 'resolved'))      AS last_account_id,
        argMax(rule_id, toUInt64(recorded_at) * 2 + (status = 'resolved'))         AS last_rule_id,
        argMax(severity, toUInt64(recorded_at) * 2 + (status = 'resolved'))        AS last_severity,
        min(fired_at)                                                              AS first_fired_at,
        argMax(lifecycle_stage, toUInt64(recorded_at) * 2 + (status = 'resolved')) AS last_stage,
        argMax(health_score, toUInt64(recorded_at) * 2 + (status = 'resolved'))    AS last_health_score,
        argMax(csm_owner, toUInt64(recorded_at) * 2 + (status = 'resolved'))       AS last_csm_owner,
        argMax(reason, toUInt64(recorded_at) * 2 + (status = 'resolved'))          AS last_reason,
        argMax(metrics, toUInt64(recorded_at) * 2 + (status = 'resolved'))         AS last_metrics
    FROM {db}.alerts
    GROUP BY alert_id
)
WHERE last_status = 'firing';
