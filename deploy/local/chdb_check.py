#!/usr/bin/env python3
"""Proves uptake's SQL on current ClickHouse (chDB, in-process), beside the 18.16 server the
tests use: every migration, then one evaluation pass's queries over a small known book.

Reads the statements of `aggregator sql --at 2026-06-30T18:00:00Z` (database uptake_chdb) on stdin:
the migrations, then the queries of three kinds of pass — live (the state tables), as of a past
day (the history), incremental (changed accounts, one chunk) — which must all return the same
values for this book; then the lookup of a named user's latest identify traits, the book's
daily totals, and the count of the book's accounts still importing (events over an hour old
stored lately: the book's three, not an account whose only event is live).
Exits non-zero, naming the statement, if any fails or returns other than the expected values.

The session runs at UTC+14 (`session_timezone`), with the book's instants given in UTC: the day
boundaries of the rollup and the windows must still be UTC days (account gamma sits on one).
It then reads the `open_alerts` and `account_outcomes` views over a few rows (a resolution in
the same second as its firing must close the episode). Then it proves the partition limit the aggregator's INSERT chunking exists for: an INSERT into
`events` spanning 100 months is accepted, one spanning 150 is refused (error 252).
"""
import json
import re
import sys
import tempfile

import chdb
from chdb import session

statements = [s.strip() for s in sys.stdin.read().split(";\n") if s.strip()]
queries = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
ddl = [s for s in statements if s not in queries]
PASS_KINDS = 3  # live, as of a past day, incremental
# … then the identify traits of the users a pass names (lapsed users, `Store::user_traits`), and
# the book's daily totals and whether it holds older days (`Store::book_days`, for book-wide
# closures and how far back its history reaches), and whether any account of the book is still
# importing (`Store::book_importing`, for an import that settles as a whole).
assert len(queries) == 7 * PASS_KINDS + 4, f"expected {7 * PASS_KINDS + 4} evaluation queries, got {len(queries)}"
queries, user_traits, book_days, book_older, book_importing = queries[:-4], *queries[-4:]

BOOK = """INSERT INTO uptake_chdb.events
  (message_id, account_id, user_id, kind, feature, uses, records, nps, ticket_id, ticket_status,
   timestamp, received_at, traits, kafka_topic, kafka_partition, kafka_offset) VALUES
  ('c1', 'alpha', '',   'account',        '',        0, 0,   NULL, '',   '',       '2026-01-01 12:00:00', '2026-01-01 12:00:00', '{"seats":5}', 'usage-events', 0, 1),
  ('c2', 'alpha', 'u3', 'login',          '',        0, 0,   NULL, '',   '',       '2026-06-20 12:00:00', '2026-06-20 12:00:00', '', 'usage-events', 0, 2),
  ('c3', 'alpha', 'u1', 'data_volume',    '',        0, 70,  NULL, '',   '',       '2026-06-24 12:00:00', '2026-06-24 12:00:00', '', 'usage-events', 0, 3),
  ('c4', 'alpha', 'u1', 'survey',         '',        0, 0,   8,    '',   '',       '2026-06-25 12:00:00', '2026-06-25 12:00:00', '', 'usage-events', 0, 4),
  ('c5', 'alpha', '',   'support_ticket', '',        0, 0,   NULL, 'T1', 'opened', '2026-06-26 12:00:00', '2026-06-26 12:00:00', '', 'usage-events', 0, 5),
  ('c6', 'alpha', 'u2', 'feature_used',   'reports', 2, 0,   NULL, '',   '',       '2026-06-29 12:00:00', '2026-06-29 12:00:00', '', 'usage-events', 0, 6),
  ('c7', 'alpha', 'u1', 'login',          '',        0, 0,   NULL, '',   '',       '2026-06-30 12:00:00', '2026-06-30 12:00:00', '', 'usage-events', 0, 7),
  ('c8', 'beta',  'b1', 'login',          '',        0, 0,   NULL, '',   '',       '2026-06-28 12:00:00', '2026-06-28 12:00:00', '', 'usage-events', 1, 1),
  ('c9', 'gamma', 'g1', 'login',          '',        0, 0,   NULL, '',   '',       '2026-06-23 23:30:00', '2026-06-23 23:30:00', '', 'usage-events', 1, 2),
  ('c10','gamma', 'g2', 'login',          '',        0, 0,   NULL, '',   '',       '2026-06-30 12:00:00', '2026-06-30 12:00:00', '', 'usage-events', 1, 3),
  ('c11','alpha', 'u1', 'user',           '',        0, 0,   NULL, '',   '',       '2026-01-02 12:00:00', '2026-01-02 12:00:00', '{"email":"old@x.example"}', 'usage-events', 0, 8),
  ('c12','alpha', 'u1', 'user',           '',        0, 0,   NULL, '',   '',       '2026-01-03 12:00:00', '2026-01-03 12:00:00', '{"name":"Ana Lee","email":"ana@x.example"}', 'usage-events', 0, 9)"""
# The instants are UTC, whatever the session's timezone.
BOOK = re.sub(r"'(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)'", r"toDateTime('\1', 'UTC')", BOOK)
# A session far from UTC: a day there starts 14 hours before the UTC day.
SESSION_TIMEZONE = "Pacific/Kiritimati"

# What each query of a pass must return for BOOK (a subset of columns, by account), in the order
# of `InputQueries::sql`: lifetime, members, sums, traits, CSAT, tickets, catalogue.
EXPECT = [
    # first day 2026-01-01 (day 20454); the NPS is stored + 1 (0 = never answered).
    {"alpha": {"first_day": 20454, "latest_nps": 9}, "beta": {"latest_nps": 0}},
    {"alpha": {"active_users_7d": 2, "active_users_prev_7d": 1, "active_users_30d": 3, "features_used_30d": 1,
               "dau_sum_30d": 4},
     "beta": {"active_users_7d": 1, "active_users_prev_7d": 0},
     # g1 late on 23 June UTC (the previous week), g2 at noon on 30 June UTC (today).
     "gamma": {"active_users_1d": 1, "active_users_7d": 1, "active_users_prev_7d": 1}},
    {"alpha": {"logins_7d": 1, "events_7d": 5, "records_30d": 70}, "beta": {"logins_7d": 1}},
    {"alpha": {"traits": '{"seats":5}'}},
    {},  # no CSAT answers in the book
    {"alpha": {"open_tickets": 1}},
    None,  # the catalogue query: one row, one value
] * PASS_KINDS


def run(sess, sql, fmt="JSONEachRow"):
    try:
        return str(sess.query(sql, fmt))
    except Exception as e:  # noqa: BLE001 - report which statement failed, whatever the error
        sys.exit(f"chDB {chdb.__version__} rejected:\n{sql}\n-> {e}")


with tempfile.TemporaryDirectory() as path:
    sess = session.Session(path)
    run(sess, f"SET session_timezone = '{SESSION_TIMEZONE}'", "CSV")
    for s in ddl:
        run(sess, s, "CSV")
    print(f"    {len(ddl)} migration statements ran on ClickHouse {chdb.__version__} (chDB)")
    run(sess, BOOK, "CSV")
    for sql, expect in zip(queries, EXPECT):
        rows = [json.loads(line) for line in run(sess, sql).splitlines() if line.strip()]
        if expect is None:
            got = list(rows[0].values())[0]
            if int(got) != 1:
                sys.exit(f"catalogue query returned {got}, expected 1:\n{sql}")
            continue
        by_account = {r["account_id"]: r for r in rows}
        for account, columns in expect.items():
            for column, want in columns.items():
                got = by_account.get(account, {}).get(column)
                if got is None or (str(got) != str(want)):
                    sys.exit(f"{column} of {account}: got {got!r}, expected {want!r}, from:\n{sql}")
    traits_rows = [json.loads(line) for line in run(sess, user_traits).splitlines() if line.strip()]
    want_traits = [{"user_id": "u1", "traits": '{"name":"Ana Lee","email":"ana@x.example"}'}]
    if traits_rows != want_traits:
        sys.exit(f"user traits: got {traits_rows}, expected {want_traits} (the latest), from:\n{user_traits}")
    # Active users per UTC day summed over accounts: gamma's 23:30 UTC login counts on 23 June
    # (already the 24th in the session's timezone); surveys, tickets and traits are no activity,
    # but they are history (`seen`: alpha's survey on 25 June, its ticket on the 26th).
    book_rows = [json.loads(line) for line in run(sess, book_days).splitlines() if line.strip()]
    want_book = [{"day": d, "users": u, "accounts": a, "seen": n} for d, u, a, n in
                 [(20624, 1, 1, 1), (20627, 1, 1, 1), (20628, 1, 1, 1), (20629, 0, 0, 1), (20630, 0, 0, 1),
                  (20632, 1, 1, 1), (20633, 1, 1, 1), (20634, 2, 2, 2)]]
    if [{k: int(v) for k, v in r.items()} for r in book_rows] != want_book:
        sys.exit(f"book days: got {book_rows}, expected {want_book}, from:\n{book_days}")
    # alpha's traits of 1–3 January lie before the 64 days.
    older = run(sess, book_older, "CSV").strip()
    if older != "1":
        sys.exit(f"book older: got {older!r}, expected 1 (alpha's January traits), from:\n{book_older}")
    # The book's three accounts were stored just now with events months old: all backfilled
    # (`account_backfills`). An event of this second for a fourth account is live traffic.
    run(sess, """INSERT INTO uptake_chdb.events (message_id, account_id, user_id, kind, timestamp, received_at,
                   kafka_topic, kafka_partition, kafka_offset)
                 VALUES ('c13', 'delta', 'd1', 'login', now(), now(), 'usage-events', 1, 4)""", "CSV")
    importing = run(sess, book_importing, "CSV").strip()
    if importing != "3":
        sys.exit(f"book importing: got {importing!r}, expected 3 (alpha, beta, gamma; not delta), from:\n{book_importing}")
    print(f"    {len(queries) + 4} evaluation queries returned the expected values (session at {SESSION_TIMEZONE})")

    # The views of migrations 008 and 009, as analysts and `Store::outcomes` read them: a2's
    # resolved row, recorded in the same second as its firing row, closes it; a1 stays open.
    run(sess, """INSERT INTO uptake_chdb.alerts (alert_id, account_id, rule_id, severity, status, fired_at,
                   resolved_at, recorded_at, lifecycle_stage, health_score, metrics, csm_owner, reason) VALUES
                 ('a1', 'alpha', 'r', 'critical', 'firing', toDateTime('2026-06-01 00:00:00', 'UTC'), NULL,
                  toDateTime('2026-06-01 00:00:00', 'UTC'), 'growth', 40, '{}', 'dana', 'quiet'),
                 ('a2', 'beta', 'r', 'warning', 'firing', toDateTime('2026-06-02 00:00:00', 'UTC'), NULL,
                  toDateTime('2026-06-02 00:00:00', 'UTC'), 'growth', 50, '{}', '', 'drop'),
                 ('a2', 'beta', 'r', 'warning', 'resolved', toDateTime('2026-06-02 00:00:00', 'UTC'),
                  toDateTime('2026-06-02 00:00:00', 'UTC'), toDateTime('2026-06-02 00:00:00', 'UTC'), 'growth', 50,
                  '{}', '', 'drop')""", "CSV")
    open_rows = [json.loads(line) for line in run(sess, "SELECT alert_id, account_id, severity, csm_owner, reason "
                                                         "FROM uptake_chdb.open_alerts").splitlines() if line.strip()]
    want_open = [{"alert_id": "a1", "account_id": "alpha", "severity": "critical", "csm_owner": "dana", "reason": "quiet"}]
    if open_rows != want_open:
        sys.exit(f"open_alerts: got {open_rows}, expected {want_open}")
    run(sess, """INSERT INTO uptake_chdb.events (message_id, account_id, kind, outcome, timestamp, received_at, source)
                 VALUES ('o1', 'beta', 'outcome', 'churned', toDateTime('2026-06-29 23:30:00', 'UTC'),
                         toDateTime('2026-06-29 23:30:00', 'UTC'), 'crm')""", "CSV")
    outcome_rows = [json.loads(line) for line in run(
        sess, "SELECT account_id, outcome, toUInt32(occurred_at) AS occurred_at FROM uptake_chdb.account_outcomes"
    ).splitlines() if line.strip()]
    if outcome_rows != [{"account_id": "beta", "outcome": "churned", "occurred_at": 1782775800}]:
        sys.exit(f"account_outcomes: got {outcome_rows}")
    run(sess, "SELECT account_id, argMax(traits, updated_at) AS traits FROM uptake_chdb.accounts GROUP BY account_id")
    print("    open_alerts (a same-second resolution closes its episode) and account_outcomes answer as expected")

    # The partition limit of current ClickHouse (max_partitions_per_insert_block = 100).
    def months(n):
        return (f"INSERT INTO uptake_chdb.events (message_id, timestamp) SELECT toString(number), "
                f"toDateTime('2000-01-15 12:00:00', 'UTC') + toIntervalMonth(number) FROM numbers({n})")
    run(sess, months(100), "CSV")
    try:
        sess.query(months(150), "CSV")
        sys.exit("an INSERT spanning 150 monthly partitions was accepted; the chunking test assumes it is refused")
    except Exception as e:  # noqa: BLE001 - the refusal is the expected outcome
        if "252" not in str(e) and "TOO_MANY_PARTS" not in str(e):
            sys.exit(f"150 months refused for another reason: {e}")
    print("    an INSERT of 100 months is accepted, of 150 refused (error 252): INSERTs are chunked by month")
