-- Day boundaries in UTC, whatever the server's timezone. `toDate(timestamp)` on a DateTime
-- column without a timezone takes the server's: on a server in UTC+5, an event at 21:00 UTC
-- counted for the next day, and every rolling window shifted. The view is recreated (ClickHouse
-- 18.16 cannot alter a view's query); rows aggregated before stay as they were. Between the two
-- statements an insert by another running aggregator would miss the rollup: migrate with the
-- aggregators stopped, or rebuild the affected days (docs/analysts.md).
DROP TABLE IF EXISTS {db}.account_daily_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.account_daily_mv TO {db}.account_daily AS
SELECT
    account_id,
    toDate(timestamp, 'UTC')                                                    AS day,
    uniqExactStateIf(user_id, user_id != '' AND kind IN ('login', 'feature_used', 'data_volume')) AS active_users,
    uniqExactStateIf(user_id, user_id != '' AND kind = 'login')                 AS login_users,
    sumState(toUInt64(kind = 'login'))                                          AS logins,
    sumState(toUInt64(1))                                                       AS events,
    sumState(if(kind = 'feature_used', uses, toUInt64(0)))                      AS feature_uses,
    groupUniqArrayStateIf(feature, kind = 'feature_used' AND feature != '')     AS features,
    sumState(records)                                                           AS records,
    sumState(bytes)                                                             AS bytes,
    maxStateIf(timestamp, kind IN ('login', 'feature_used', 'data_volume'))     AS last_seen,
    maxStateIf(timestamp, kind = 'login')                                       AS last_login
FROM {db}.events
WHERE account_id != ''
GROUP BY account_id, day;
