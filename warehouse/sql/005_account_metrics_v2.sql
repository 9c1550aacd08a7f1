-- account_metrics with the full adoption metric set, lifecycle stage and health score.
-- The table is derived (rewritten by every evaluation pass), so it is recreated rather than
-- altered: ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS. Read with FINAL.
-- Windows end on `as_of` inclusive: 7 days = [as_of - 6, as_of]; "prev" = the equal window before.
DROP TABLE IF EXISTS {db}.account_metrics;

CREATE TABLE IF NOT EXISTS {db}.account_metrics
(
    account_id                 String,
    as_of                      Date,
    computed_at                DateTime,
    lifecycle_stage            String,
    days_since_start           Nullable(Int32),
    days_to_renewal            Nullable(Int32),
    plan                       String,
    csm_owner                  String,
    seats                      Nullable(UInt32),
    active_users_1d            UInt64,
    active_users_7d            UInt64,
    active_users_30d           UInt64,
    active_users_prev_7d       UInt64,
    active_users_prev_30d      UInt64,
    active_users_change_7d     Nullable(Float64),
    active_users_change_30d    Nullable(Float64),
    logins_7d                  UInt64,
    logins_30d                 UInt64,
    login_users_7d             UInt64,
    login_users_30d            UInt64,
    events_7d                  UInt64,
    events_prev_7d             UInt64,
    events_change_7d           Nullable(Float64),
    events_30d                 UInt64,
    events_per_active_user_7d  Nullable(Float64),
    features_used_7d           UInt64,
    features_used_30d          UInt64,
    feature_breadth_30d        Nullable(Float64),
    records_30d                UInt64,
    records_prev_30d           UInt64,
    records_change_30d         Nullable(Float64),
    bytes_30d                  UInt64,
    bytes_prev_30d             UInt64,
    bytes_change_30d           Nullable(Float64),
    stickiness_30d             Nullable(Float64),
    seat_utilisation           Nullable(Float64),
    last_seen                  Nullable(DateTime),
    last_login                 Nullable(DateTime),
    days_since_last_activity   Nullable(UInt32),
    days_since_last_login      Nullable(UInt32),
    latest_nps                 Nullable(UInt8),
    avg_csat_90d               Nullable(Float64),
    open_tickets               UInt64,
    health_score               Nullable(Float64),
    health_band                String,
    health_deployment          Nullable(Float64),
    health_adoption            Nullable(Float64),
    health_trend               Nullable(Float64),
    health_value               Nullable(Float64),
    health_experience          Nullable(Float64),
    health_weakest             String
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY account_id;
