-- Users, not only totals, and evidence over time (issue 21; docs/SIGNAL.md#users and
-- #the-decline-detector): who used the product regularly, who of them has lapsed and who,
-- the champion, new users, and the decline detector's statistic. Added at the end (the
-- evaluator names its columns when it inserts); rows written before have the defaults until
-- the next pass rewrites them.
ALTER TABLE {db}.account_metrics
    ADD COLUMN regular_users UInt64 DEFAULT 0,
    ADD COLUMN regular_users_lapsed UInt64 DEFAULT 0,
    ADD COLUMN regular_users_lapsed_pct Nullable(Float64),
    ADD COLUMN lapsed_users String DEFAULT '',
    ADD COLUMN users_away_together UInt64 DEFAULT 0,
    ADD COLUMN champion String DEFAULT '',
    ADD COLUMN champion_days_absent Nullable(UInt32),
    ADD COLUMN champion_lapsed Nullable(UInt8),
    ADD COLUMN new_users_7d UInt64 DEFAULT 0,
    ADD COLUMN decline_evidence Nullable(Float64),
    ADD COLUMN decline_started Nullable(Date);
