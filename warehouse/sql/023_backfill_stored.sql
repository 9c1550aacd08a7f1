-- When events over an hour old were last stored for an account (issue 21, docs/architecture.md#
-- one-timeline): a backfill of its past, told apart from live traffic by the age of what
-- arrives, not by the age of the account's newest event. An account whose SDK already sends
-- live traffic when its history is imported has a newest event minutes old, and was never seen
-- importing: it was judged on the history without the replay of its last days, so its episodes
-- that cleared inside `resolve_after`, and its cooldowns, were not the backtest's (the demo's
-- wonka, 2026-12-07). The same age tells the backlog of an outage over an hour long.
--
-- A table of its own, not a column of `account_lifetime`: ClickHouse 18.16 fails an insert whose
-- materialized view lacks a column of its target table, so a new column there would have meant
-- dropping and making again the lifetime view, missing what another aggregator inserts between
-- the two. Live traffic writes no row here: one row per account ever backfilled.
CREATE TABLE IF NOT EXISTS {db}.account_backfills
(
    account_id      String,
    last_backfilled AggregateFunction(max, DateTime)
)
ENGINE = AggregatingMergeTree()
ORDER BY account_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.account_backfills_mv TO {db}.account_backfills AS
SELECT
    account_id,
    maxState(now()) AS last_backfilled
FROM {db}.events
WHERE account_id != '' AND timestamp < now() - 3600
GROUP BY account_id;
