-- Per account per day rollup states, filled by a materialized view on every insert into events.
-- Distinct counts are kept as uniqExact states so that any window (7, 30 days…) merges the daily
-- states (uniqExactMerge) instead of summing daily counts, which would count a user once per day.
-- Active = any login, feature_used or data_volume event; surveys, tickets and traits are not use.
CREATE TABLE IF NOT EXISTS {db}.account_daily
(
    account_id   String,
    day          Date,
    active_users AggregateFunction(uniqExact, String),
    login_users  AggregateFunction(uniqExact, String),
    logins       AggregateFunction(sum, UInt64),
    events       AggregateFunction(sum, UInt64),
    feature_uses AggregateFunction(sum, UInt64),
    features     AggregateFunction(groupUniqArray, String),
    records      AggregateFunction(sum, UInt64),
    bytes        AggregateFunction(sum, UInt64),
    last_seen    AggregateFunction(max, DateTime),
    last_login   AggregateFunction(max, DateTime)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (account_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.account_daily_mv TO {db}.account_daily AS
SELECT
    account_id,
    toDate(timestamp)                                                           AS day,
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
