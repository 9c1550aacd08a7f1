-- The CSM workflow (the console): what was done about each alert episode, the account outcomes
-- a closure records, and the stored scored backtests the console shows.

-- One row per action on an episode: acknowledged, snoozed, assigned, closed, snooze_ended.
-- at_ms orders actions within a second. snoozed_until is 0 (1970-01-01) unless action =
-- 'snoozed': not Nullable, so argMaxIf below does not skip the rows that end a snooze.
CREATE TABLE IF NOT EXISTS {db}.alert_actions
(
    action_id     String,
    alert_id      String,
    account_id    String,
    rule_id       String,
    action        String,
    actor         String,
    at            DateTime,
    at_ms         UInt64,
    note          String,
    snoozed_until DateTime,
    assignee      String,
    close_reason  String,
    recorded_at   DateTime
)
ENGINE = ReplacingMergeTree(recorded_at)
PARTITION BY toYYYYMM(at)
ORDER BY (alert_id, at_ms, action_id);

-- Each episode's workflow state. snoozed_until is the latest snooze's end, 0 when the latest
-- snooze-related action ended it (snooze_ended, or a later acknowledgement or closure).
CREATE VIEW IF NOT EXISTS {db}.alert_workflow AS
SELECT
    alert_id,
    any(account_id)                                                                      AS account_id,
    any(rule_id)                                                                         AS rule_id,
    countIf(action = 'acknowledged') > 0                                                 AS acknowledged,
    argMaxIf(actor, at_ms, action = 'acknowledged')                                      AS acknowledged_by,
    argMaxIf(assignee, at_ms, action = 'assigned')                                       AS assignee,
    argMaxIf(snoozed_until, at_ms, action IN ('snoozed', 'snooze_ended', 'closed'))      AS snoozed_until,
    argMaxIf(note, at_ms, action = 'snoozed')                                            AS snooze_note,
    countIf(action = 'closed') > 0                                                       AS closed,
    argMaxIf(close_reason, at_ms, action = 'closed')                                     AS close_reason,
    argMaxIf(actor, at_ms, action = 'closed')                                            AS closed_by,
    maxIf(at, action = 'closed')                                                         AS closed_at,
    max(at)                                                                              AS last_action_at
FROM {db}.alert_actions
GROUP BY alert_id;

-- Outcomes now also come from closures: "churned" and "saved" are the account's outcome on the
-- day the CSM closed the alert (source 'console').
DROP TABLE IF EXISTS {db}.account_outcomes;

CREATE VIEW IF NOT EXISTS {db}.account_outcomes AS
SELECT account_id, outcome, occurred_at, source, message_id
FROM
(
    SELECT account_id, outcome, timestamp AS occurred_at, source, message_id
    FROM {db}.events
    WHERE kind = 'outcome' AND account_id != ''
    UNION ALL
    SELECT account_id, close_reason AS outcome, at AS occurred_at, toString('console') AS source, action_id AS message_id
    FROM {db}.alert_actions
    WHERE action = 'closed' AND close_reason IN ('churned', 'saved')
);

-- One row per stored scored backtest (`aggregator backtest --score --store`): the console's
-- Rules page shows the latest. score is the JSON `--score --json` prints.
CREATE TABLE IF NOT EXISTS {db}.backtest_scores
(
    scored_at     DateTime,
    from_day      Date,
    to_day        Date,
    horizon_days  UInt32,
    rules_digest  String,
    score         String
)
ENGINE = MergeTree()
ORDER BY scored_at;
