#!/usr/bin/env python3
"""Proves the cluster layout's DDL parses on current ClickHouse (chDB, in-process).

Reads `aggregator sql` run with `clickhouse.cluster` set (UPTAKE_CLICKHOUSE__CLUSTER) on stdin
and parses every schema statement with current ClickHouse's own parser (`formatQuery`): the
`ON CLUSTER` clauses, the Replicated engines with their ZooKeeper paths and macros, and the
`Distributed` tables. chDB has no ZooKeeper and no cluster, so the statements cannot be run here;
they run for real on the 18.16 cluster of the cluster test. Also checks the layout's shape: every
table's data is Replicated in the local database, and a Distributed table by account is over it.
Exits non-zero, naming the statement, if one does not parse or the shape is wrong.
"""
import re
import sys

import chdb

statements = [s.strip() for s in sys.stdin.read().split(";\n") if s.strip()]
ddl = [s for s in statements if not s.lstrip().upper().startswith(("SELECT", "WITH", "INSERT"))]
assert len(ddl) > 40, f"only {len(ddl)} schema statements: was the cluster set?"

failed = 0
for s in ddl:
    quoted = s.replace("\\", "\\\\").replace("'", "\\'")
    try:
        chdb.query(f"SELECT formatQuery('{quoted}')", "CSV")
    except Exception as e:  # noqa: BLE001 - chDB raises its own error types
        failed += 1
        print(f"FAIL: {s[:160]}…\n  {str(e)[:300]}", file=sys.stderr)
    if " ON CLUSTER " not in s:
        failed += 1
        print(f"FAIL: not run on the cluster: {s[:160]}", file=sys.stderr)

tables = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)_local\.(\w+) ON CLUSTER", "\n".join(ddl)))
distributed = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)\.(\w+) ON CLUSTER \S+ AS \w+_local\.\w+ ENGINE = Distributed", "\n".join(ddl)))
if not tables or tables != distributed:
    failed += 1
    print(f"FAIL: local tables {sorted(tables)} vs Distributed {sorted(distributed)}", file=sys.stderr)

if failed:
    sys.exit(f"{failed} cluster statement(s) failed on current ClickHouse ({chdb.__version__})")
print(f"cluster layout: {len(ddl)} statements parse on current ClickHouse (chDB {chdb.__version__}); "
      f"{len(tables)} tables, each Replicated data under a Distributed table")
