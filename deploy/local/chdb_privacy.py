#!/usr/bin/env python3
"""Proves uptake's privacy SQL on current ClickHouse (chDB, in-process), beside the 18.16 server
the tests use (docs/privacy.md):

1. the schema: every migration of `aggregator sql` (database uptake_privacy);
2. a small book naming person u1 (events, identify traits, member rows, a CSM's note, an alert's
   reason), person 42 (a numeric id: redacted in text, never as a bare JSON number) and account
   beta, beside people and accounts that must stay;
3. `aggregator privacy-sql --columns FILE`, given this schema's `system.columns`: the retention
   TTLs, a deletion's mutations and its verification queries;
4. the TTLs: applied, then a merge expires the rows past each limit and keeps the rest;
5. the mutations (run synchronously), after which every verification query counts 0, while the
   rows of everyone else are all there, redacted where they named u1.

Usage: chdb_privacy.py AGGREGATOR_BINARY. Exits non-zero naming the statement or the count.
"""
import datetime
import json
import os
import subprocess
import sys
import tempfile

import chdb
from chdb import session

DB = "uptake_privacy"
BINARY = sys.argv[1]
ENV = dict(os.environ, UPTAKE_CLICKHOUSE__DATABASE=DB)


def run(sess, sql, fmt="CSV"):
    try:
        return str(sess.query(sql, fmt))
    except Exception as e:  # noqa: BLE001 - report which statement failed, whatever the error
        sys.exit(f"chDB {chdb.__version__} rejected:\n{sql}\n-> {e}")


def count(sess, sql):
    return int(run(sess, sql, "TabSeparated").strip() or 0)


def statements(text):
    return [s.strip() for s in text.split(";\n") if s.strip()]


migrations = subprocess.run([BINARY, "sql", "--at", "2026-06-30T18:00:00Z"], env=ENV, check=True,
                            capture_output=True, text=True).stdout
ddl = [s for s in statements(migrations) if not s.lstrip().upper().startswith(("SELECT", "WITH"))]

# The TTLs count from the server's today: the book's days are relative to it, so the check
# passes on any day.
TODAY = datetime.datetime.now(datetime.timezone.utc).replace(hour=9, minute=0, second=0, microsecond=0)


def ago(days):
    return (TODAY - datetime.timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")


# Rows: (message_id, account, user, kind, feature, timestamp, traits, properties).
BOOK = [
    ("e1", "alpha", "u1", "user", "", ago(30), '{"email":"ana@x.example","name":"Ana Lee"}', ""),
    ("e2", "alpha", "u1", "login", "", ago(3), "", ""),
    ("e3", "alpha", "u1", "feature_used", "reports", ago(2), "", ""),
    ("e4", "alpha", "u2", "feature_used", "reports", ago(2), "", '{"shared_with":"ana@x.example"}'),
    ("e5", "alpha", "u2", "login", "", ago(1), "", '{"note":"u10 and u1x are not u1"}'),
    ("e6", "beta", "b1", "login", "", ago(1), "", ""),
    ("e7", "beta", "", "account", "", ago(30), '{"seats":3}', ""),
    ("e8", "alpha", "u2", "login", "", ago(500), "", ""),  # past the 395 days of raw events
    # Person 42, a numeric id: named as a string and in prose, never as a bare number.
    ("e9", "alpha", "42", "login", "", ago(1), "", ""),
    ("e10", "alpha", "u2", "login", "", ago(1), "", '{"count":42,"by":"42","list":[1,42]}'),
]

with tempfile.TemporaryDirectory() as path:
    sess = session.Session(path)
    for s in ddl:
        run(sess, s)
    values = ", ".join(
        f"('{m}', '{a}', '{u}', '{k}', '{f}', toDateTime('{t}', 'UTC'), toDateTime('{t}', 'UTC'), '{tr}', '{p}', 'usage-events', 0, {i})"
        for i, (m, a, u, k, f, t, tr, p) in enumerate(BOOK))
    run(sess, f"INSERT INTO {DB}.events (message_id, account_id, user_id, kind, feature, timestamp, received_at, "
              f"traits, properties, kafka_topic, kafka_partition, kafka_offset) VALUES {values}")
    run(sess, f"""INSERT INTO {DB}.alerts (alert_id, account_id, rule_id, severity, status, fired_at, recorded_at, reason)
                  VALUES ('a1', 'alpha', 'champion_lapsed', 'warning', 'firing', toDateTime('{ago(1)}', 'UTC'),
                          toDateTime('{ago(1)}', 'UTC'), 'Ana Lee (ana@x.example) has not been back for 9 days'),
                         ('a0', 'alpha', 'usage_drop', 'warning', 'firing', toDateTime('{ago(800)}', 'UTC'),
                          toDateTime('{ago(800)}', 'UTC'), 'old')""")
    run(sess, f"""INSERT INTO {DB}.alert_actions (action_id, alert_id, account_id, rule_id, action, actor, at, note, recorded_at)
                  VALUES ('x1', 'a1', 'alpha', 'champion_lapsed', 'acknowledged', 'dana', toDateTime('{ago(1)}', 'UTC'),
                          'Called u1,u1 twice; 42 (3 days) too', toDateTime('{ago(1)}', 'UTC'))""")
    print(f"    {len(ddl)} migration statements and a book naming u1, 42 and account beta on ClickHouse {chdb.__version__} (chDB)")

    columns = run(sess, f"""SELECT table, name, type, toUInt8(is_in_sorting_key OR is_in_partition_key)
                            FROM system.columns WHERE database = '{DB}' AND table IN
                            (SELECT name FROM system.tables WHERE database = '{DB}' AND engine LIKE '%MergeTree')""",
                  "TabSeparated")
    with open(os.path.join(path, "columns.tsv"), "w") as f:
        f.write(columns)
    out = subprocess.run([BINARY, "privacy-sql", "--columns", os.path.join(path, "columns.tsv")], env=ENV,
                         check=True, capture_output=True, text=True).stdout
    sections = {}
    current = None
    for line in out.splitlines(keepends=True):
        if line.startswith("-- ") and line.strip() in ("-- ttl", "-- delete", "-- verify"):
            current = line.strip()[3:]
            sections[current] = ""
        elif current:
            sections[current] += line
    ttl, delete, verify = (statements(sections.get(k, "")) for k in ("ttl", "delete", "verify"))
    if not ttl or not delete or not verify:
        sys.exit(f"privacy-sql printed no ttl/delete/verify statements:\n{out}")

    # Retention at the default limits (raw events 395 days, alerts 760): the recent rows stay,
    # the event of 500 days ago and the alert of 800 go.
    for s in ttl:
        run(sess, s)
    for table in ("events", "alerts", "account_daily", "account_members", "account_health_daily"):
        run(sess, f"OPTIMIZE TABLE {DB}.{table} FINAL")
    if count(sess, f"SELECT count() FROM {DB}.events WHERE message_id = 'e8'") != 0:
        sys.exit("TTL: the event of 500 days ago is still there after a merge")
    if count(sess, f"SELECT count() FROM {DB}.alerts WHERE alert_id = 'a0'") != 0:
        sys.exit("TTL: the alert of 800 days ago is still there after a merge")
    kept = count(sess, f"SELECT count() FROM {DB}.events")
    if kept != len(BOOK) - 1:
        sys.exit(f"TTL: {kept} events kept, expected {len(BOOK) - 1}")
    print(f"    {len(ttl)} retention TTLs set; a merge expired the rows past the limits and kept the rest")

    before = [count(sess, q) for q in verify]
    if sum(before) == 0:
        sys.exit("verification counts nothing before the deletion: it cannot fail")
    run(sess, "SET mutations_sync = 2")
    for s in delete:
        run(sess, s)
    after = [count(sess, q) for q in verify]
    if any(after):
        left = [q for q, n in zip(verify, after) if n]
        sys.exit(f"rows still name a subject after the deletion:\n" + "\n".join(left))
    others = run(sess, f"SELECT message_id, properties FROM {DB}.events ORDER BY message_id", "JSONEachRow")
    rows = {r["message_id"]: r["properties"] for r in map(json.loads, others.splitlines())}
    want = {"e4": '{"shared_with":"[deleted]"}', "e5": '{"note":"u10 and u1x are not u1"}'.replace(" u1\"", " [deleted]\""),
            "e10": '{"count":42,"by":"[deleted]","list":[1,42]}'}
    if rows != want:
        sys.exit(f"after the deletion the events are {rows}, expected {want}")
    note = run(sess, f"SELECT note FROM {DB}.alert_actions", "TabSeparated").strip()
    if note != "Called [deleted],[deleted] twice; [deleted] (3 days) too":
        sys.exit(f"the note became {note!r}")
    reason = run(sess, f"SELECT reason FROM {DB}.alerts WHERE alert_id = 'a1'", "TabSeparated").strip()
    if reason != "[deleted] ([deleted]) has not been back for 9 days":
        sys.exit(f"the alert's reason became {reason!r}")
    print(f"    {len(delete)} deletion mutations left {sum(before)} rows naming u1, 42 or beta at 0 "
          f"({len(verify)} verification queries); everyone else's rows kept, redacted where they named them, bare numbers untouched")
