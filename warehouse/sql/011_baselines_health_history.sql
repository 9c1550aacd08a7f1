-- Baselines, the health guardrails and a daily health history (issue 12; docs/SIGNAL.md).
-- account_metrics is derived (rewritten by every evaluation pass), so it is recreated with the
-- new columns rather than altered, as in 005: ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS.
-- The next pass fills it again. Read with FINAL.
DROP TABLE IF EXISTS {db}.account_metrics;

CREATE TABLE IF NOT EXISTS {db}.account_metrics
(
    account_id                       String,
    as_of                            Date,
    computed_at                      DateTime,
    lifecycle_stage                  String,
    days_since_start                 Nullable(Int32),
    days_to_renewal                  Nullable(Int32),
    plan                             String,
    csm_owner                        String,
    seats                            Nullable(UInt32),
    active_users_1d                  UInt64,
    active_users_7d                  UInt64,
    active_users_30d                 UInt64,
    active_users_prev_7d             UInt64,
    active_users_prev_30d            UInt64,
    active_users_change_7d           Nullable(Float64),
    active_users_change_30d          Nullable(Float64),
    logins_7d                        UInt64,
    logins_30d                       UInt64,
    login_users_7d                   UInt64,
    login_users_30d                  UInt64,
    events_7d                        UInt64,
    events_prev_7d                   UInt64,
    events_change_7d                 Nullable(Float64),
    events_30d                       UInt64,
    events_per_active_user_7d        Nullable(Float64),
    features_used_7d                 UInt64,
    features_used_30d                UInt64,
    feature_breadth_30d              Nullable(Float64),
    records_30d                      UInt64,
    records_prev_30d                 UInt64,
    records_change_30d               Nullable(Float64),
    bytes_30d                        UInt64,
    bytes_prev_30d                   UInt64,
    bytes_change_30d                 Nullable(Float64),
    stickiness_30d                   Nullable(Float64),
    seat_utilisation                 Nullable(Float64),
    active_user_days_7d              UInt64,
    active_user_days_baseline        Nullable(Float64),
    active_user_days_vs_baseline     Nullable(Float64),
    active_user_days_z               Nullable(Float64),
    active_user_days_3d_vs_baseline  Nullable(Float64),
    active_user_days_momentum        Nullable(Float64),
    active_user_days_3d_z            Nullable(Float64),
    active_users_baseline            Nullable(Float64),
    active_users_vs_baseline         Nullable(Float64),
    logins_baseline                  Nullable(Float64),
    logins_vs_baseline               Nullable(Float64),
    features_used_baseline           Nullable(Float64),
    features_used_vs_baseline        Nullable(Float64),
    records_baseline                 Nullable(Float64),
    records_vs_baseline              Nullable(Float64),
    baseline_weeks                   Nullable(UInt8),
    last_seen                        Nullable(DateTime),
    last_login                       Nullable(DateTime),
    days_since_last_activity         Nullable(UInt32),
    days_since_last_login            Nullable(UInt32),
    latest_nps                       Nullable(UInt8),
    avg_csat_90d                     Nullable(Float64),
    open_tickets                     UInt64,
    health_score                     Nullable(Float64),
    health_band                      String,
    health_deployment                Nullable(Float64),
    health_adoption                  Nullable(Float64),
    health_trend                     Nullable(Float64),
    health_value                     Nullable(Float64),
    health_experience                Nullable(Float64),
    health_weakest                   String,
    health_cap                       String,
    health_score_14d_ago             Nullable(Float64),
    health_change_14d                Nullable(Float64)
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY account_id;

-- One row per account per day: the health score, band, components and key metrics as the last
-- evaluation pass of that day computed them (ReplacingMergeTree keeps the latest `computed_at`;
-- read with FINAL or argMax). "85 three weeks ago, 60 today" is a query on this table, and rules
-- read it through `health_change_14d`. Written by the evaluator with every account_metrics row.
CREATE TABLE IF NOT EXISTS {db}.account_health_daily
(
    account_id                     String,
    day                            Date,
    computed_at                    DateTime,
    lifecycle_stage                String,
    health_score                   Nullable(Float64),
    health_band                    String,
    health_deployment              Nullable(Float64),
    health_adoption                Nullable(Float64),
    health_trend                   Nullable(Float64),
    health_value                   Nullable(Float64),
    health_experience              Nullable(Float64),
    health_weakest                 String,
    health_cap                     String,
    active_users_7d                UInt64,
    active_users_30d               UInt64,
    active_user_days_7d            UInt64,
    active_user_days_vs_baseline   Nullable(Float64),
    logins_7d                      UInt64,
    features_used_30d              UInt64,
    records_30d                    UInt64,
    seat_utilisation               Nullable(Float64),
    days_since_last_activity       Nullable(UInt32),
    latest_nps                     Nullable(UInt8),
    open_tickets                   UInt64
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (account_id, day);
