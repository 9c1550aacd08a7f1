-- Rule conditions that hold but whose episode has not necessarily fired: per (account, rule), the
-- instant the condition started holding (`since`), so a rule's `for = "3d"` is measured from there
-- across restarts and rebalances (docs/architecture.md#alert-episodes). Only changes are written:
-- a row when a condition starts holding, a row with `cleared = 1` (and the old `since`) when it
-- stops. The latest row of a pair is its state; read with argMax, a clear winning a tie in time.
CREATE TABLE IF NOT EXISTS {db}.alert_pending
(
    account_id    String,
    rule_id       String,
    since         DateTime,
    cleared       UInt8,
    recorded_at   DateTime
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY (account_id, rule_id);
