#!/usr/bin/env python3
"""Proves the console's SQL on current ClickHouse (chDB, in-process), beside the 18.16 server its
tests use: every migration, a small seed (two accounts' metrics and health history, alerts, a
snooze and a closure as churned, traits, a stored backtest), then every read of `console sql`,
checking the rows each returns.

stdin: `aggregator sql` (database uptake_chdb) followed by `console sql` (same database); the
console's part starts at the line `-- console queries`. Exits non-zero, naming the query, if any
is refused or returns other rows than expected.
"""
import json
import sys
import tempfile

import chdb
from chdb import session

text = sys.stdin.read()
head, _, tail = text.partition("-- console queries\n")
if not tail:
    sys.exit("no `-- console queries` line on stdin: pipe `aggregator sql` and then `console sql`")
ddl = [s.strip() for s in head.split(";\n") if s.strip() and not s.lstrip().upper().startswith(("SELECT", "WITH"))]
queries = {}
for chunk in tail.split(";\n"):
    chunk = chunk.strip()
    if chunk:
        name, _, sql = chunk.partition("\n")
        queries[name.removeprefix("-- ").strip()] = sql

SEED = [
    """INSERT INTO uptake_chdb.account_metrics (account_id, as_of, computed_at, lifecycle_stage, csm_owner,
         health_score, health_band, active_users_7d) VALUES
       ('acme', today(), now(), 'growth', 'dana@vendor.example', 31, 'red', 3),
       ('beta', today(), now(), 'renewal', 'sam@vendor.example', 80, 'green', 9)""",
    """INSERT INTO uptake_chdb.account_health_daily (account_id, day, computed_at, health_score, health_band)
       SELECT 'acme', today() - number, now(), 60 - number, 'yellow' FROM numbers(3)""",
    """INSERT INTO uptake_chdb.alerts (alert_id, account_id, rule_id, severity, status, fired_at, recorded_at,
         lifecycle_stage, metrics, csm_owner, reason) VALUES
       ('al-acme', 'acme', 'usage_drop', 'critical', 'firing', now() - 60, now() - 60, 'growth', '{}', 'dana@vendor.example', 'fell'),
       ('al-acme2', 'acme', 'no_login', 'warning', 'firing', now() - 120, now() - 120, 'growth', '{}', 'dana@vendor.example', 'quiet')""",
    """INSERT INTO uptake_chdb.alert_actions (action_id, alert_id, account_id, rule_id, action, actor, at, at_ms,
         note, snoozed_until, assignee, close_reason, recorded_at) VALUES
       ('s1', 'al-acme', 'acme', 'usage_drop', 'snoozed', 'dana@vendor.example', now(), 1, 'QBR', now() + 86400, '', '', now()),
       ('c1', 'al-acme2', 'acme', 'no_login', 'closed', 'dana@vendor.example', now(), 2, '', toDateTime(0), '', 'churned', now())""",
    """INSERT INTO uptake_chdb.accounts (account_id, traits, updated_at) VALUES ('acme', '{"plan":"pro"}', now())""",
    """INSERT INTO uptake_chdb.backtest_scores VALUES (now(), today() - 28, today(), 90, 'abc', '{"overall":{}}')""",
]

# Per query: how many rows, and values the first row must hold.
EXPECT = {
    "book_filtered": (0, {}),  # dana's red growth accounts whose id contains ac'me: none (the quote is bound)
    "book_bands": (0, {}),
    "book_all_by_alerts": (2, {"account_id": "acme", "open_alerts": 1, "top_severity": 3}),  # the closed one not counted
    "owners": (2, {"csm_owner": "dana@vendor.example"}),
    "scores": (3, {"account_id": "acme"}),
    "account": (1, {"account_id": "acme", "health_band": "red"}),
    "history": (3, {"health_band": "yellow"}),
    "traits": (1, {"traits": '{"plan":"pro"}'}),
    # Dana's inbox with the snoozed shown: al-acme (snoozed until tomorrow); al-acme2 is closed.
    "inbox": (1, {"alert_id": "al-acme", "open": 1, "closed": 0, "snooze_note": "QBR"}),
    "inbox_counts": (1, {"in_scope": 1, "snoozed": 1}),
    "account_alerts": (2, {"alert_id": "al-acme"}),
    "firing": (1, {"alert_id": "al-acme", "open": 1}),
    "closed": (1, {"toUInt8(closed)": 0}),
    "timeline": (4, {}),
    "outcomes": (1, {"outcome": "churned", "source": "console"}),
    "action_stored": (1, {"count()": 0}),
    "latest_backtest": (1, {"horizon_days": 90}),
}


def run(sess, sql, fmt="JSONEachRow"):
    try:
        return str(sess.query(sql, fmt))
    except Exception as e:  # noqa: BLE001 - report which statement failed, whatever the error
        sys.exit(f"chDB {chdb.__version__} rejected:\n{sql}\n-> {e}")


if set(queries) != set(EXPECT):
    sys.exit(f"console sql printed {sorted(queries)}, the check expects {sorted(EXPECT)}")
with tempfile.TemporaryDirectory() as path:
    sess = session.Session(path)
    for s in ddl + SEED:
        run(sess, s, "CSV")
    for name, sql in queries.items():
        rows = [json.loads(line) for line in run(sess, sql).splitlines() if line.strip()]
        count, first = EXPECT[name]
        if len(rows) != count:
            sys.exit(f"{name}: {len(rows)} rows, expected {count}:\n{sql}\n-> {rows}")
        for column, want in first.items():
            got = rows[0].get(column)
            if str(got) != str(want):
                sys.exit(f"{name}: {column} = {got!r}, expected {want!r}:\n{sql}")
    print(f"    {len(queries)} console queries returned the expected rows on ClickHouse {chdb.__version__} (chDB)")
