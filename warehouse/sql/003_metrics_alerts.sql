-- Latest rolling metrics per account, rewritten by the aggregator's evaluator; read with FINAL
-- (or argMax by computed_at) because older versions linger until ClickHouse merges them.
-- Windows end on `as_of` inclusive: the 7-day window is [as_of - 6, as_of].
CREATE TABLE IF NOT EXISTS {db}.account_metrics
(
    account_id               String,
    as_of                    Date,
    computed_at              DateTime,
    active_users_1d          UInt64,
    active_users_7d          UInt64,
    active_users_30d         UInt64,
    active_users_prev_7d     UInt64,
    active_users_change_7d   Nullable(Float64),
    logins_7d                UInt64,
    login_users_7d           UInt64,
    events_7d                UInt64,
    features_used_30d        UInt64,
    records_30d              UInt64,
    bytes_30d                UInt64,
    last_seen                Nullable(DateTime),
    last_login               Nullable(DateTime),
    days_since_last_activity Nullable(UInt32),
    days_since_last_login    Nullable(UInt32)
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY account_id;

-- Alert history: one row per state change (firing, resolved) of an episode, same alert_id.
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    alert_id        String,
    account_id      String,
    rule_id         String,
    severity        String,
    status          String,
    fired_at        DateTime,
    resolved_at     Nullable(DateTime),
    recorded_at     DateTime,
    lifecycle_stage String,
    health_score    Nullable(Float64),
    metrics         String,
    csm_owner       String,
    reason          String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(fired_at)
ORDER BY (account_id, rule_id, fired_at, status);
