#!/usr/bin/env bash
# Checks what a replicated and sharded ClickHouse 18.16 cluster (cluster.sh: 2 shards x 2
# replicas, ZooKeeper) does with the DDL, inserts and faults the warehouse relies on. Prints
# PASS/FAIL per fact and INFO for measurements; exits non-zero when any check fails.
# Usage: deploy/local/cluster_facts.sh   (BASE_PORT=31000 by default; run data in a temp dir,
# kept when a check fails or KEEP_RUN=1; CH_LOG_LEVEL=information for fuller server logs)
set -euo pipefail
# shellcheck source=deploy/local/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"

BASE_PORT=${BASE_PORT:-31000}
RUN=$(mktemp -d "${TMPDIR:-/tmp}/uptake-cluster-facts.XXXXXX")
PIDS=$RUN/pids
FAILS=0
cleanup() {
  local rc=$?
  [ "$rc" -eq 0 ] || echo "FAIL aborted (exit $rc): a query or command above failed"
  local t0; t0=$(now_ms)
  stop_ch_cluster
  note "cluster stop took $(($(now_ms) - t0)) ms"
  if [ "$rc" -eq 0 ] && [ "$FAILS" -eq 0 ] && [ -z "${KEEP_RUN:-}" ]; then rm -rf "$RUN"
  else echo "run dir kept for its logs: $RUN"; fi
}
trap cleanup EXIT

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
note() { echo "INFO $*"; }
check() { # LABEL EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (expected '$2', got '$3')"; fi
}
now_ms() { date +%s%3N; }

# http NODE [URL_SETTINGS] < BODY: POSTs a query (and its data) to node NODE (1..4: s1r1 s1r2
# s2r1 s2r2); prints the result, or the server's error on stderr and fails.
http() {
  local out rc=0
  out=$(curl -s --fail-with-body "${CH_NODES[$1 - 1]}/?${2:-}" --data-binary @-) || rc=$?
  if [ "$rc" -eq 0 ]; then [ -z "$out" ] || printf '%s\n' "$out"; return 0; fi
  printf 'node %s (curl exit %s): %s\n' "$1" "$rc" "$out" >&2
  return 1
}
q() { http "$1" "${3:-}" <<<"$2"; } # q NODE SQL [URL_SETTINGS]
# ins NODE TABLE FIRST_EVENT ROWS [URL_SETTINGS]: INSERT ... FORMAT TSV of a generated block. The
# same arguments give byte-identical data, which is what a client's retry sends.
ins() {
  { echo "INSERT INTO $2 (account_id, event_id, ts, n) FORMAT TSV"; gen_rows "$3" "$4"; } | http "$1" "${5:-}"
}
# gen_rows FIRST ROWS: rows of 50 accounts (acct-0..acct-49), one month, so one part per shard.
gen_rows() {
  awk -v s="$1" -v n="$2" 'BEGIN { for (i = s; i < s + n; i++)
    printf "acct-%d\t%d\t2026-11-%02d 12:00:00\t%d\n", i % 50, i, 1 + i % 28, i % 7 }'
}
# sync_all TABLE: every replica has fetched everything in its replication log.
sync_all() { local n; for n in 1 2 3 4; do q "$n" "SYSTEM SYNC REPLICA $1" >/dev/null; done; }
counts() { # TABLE [WHERE]: the local row count on each node, space-separated
  local n out=()
  for n in 1 2 3 4; do out+=("$(q "$n" "SELECT count() FROM $1 ${2:+WHERE $2}")"); done
  echo "${out[*]}"
}
# Both replicas of each shard agree and the shards add up to TOTAL, each holding some rows.
check_shards() { # LABEL TOTAL COUNTS
  local a b c d; read -r a b c d <<<"$3"
  if [ "$a" = "$b" ] && [ "$c" = "$d" ] && [ $((a + c)) = "$2" ] && [ "$a" -gt 0 ] && [ "$c" -gt 0 ]; then
    pass "$1 (s1r1 s1r2 s2r1 s2r2 = $3)"
  else fail "$1 (expected replicas equal, shards summing to $2; got $3)"; fi
}

step "f. Starting the cluster"
t0=$(now_ms)
start_ch_cluster "$RUN" "$BASE_PORT"
start_ms=$(($(now_ms) - t0))

step "Facts"
note "f. cluster start (ZooKeeper + 4 servers, until all answer with a ZooKeeper session):" \
  "$start_ms ms"
note "server version $(q 1 'SELECT version()')"

# a. DDL ON CLUSTER ------------------------------------------------------------------------------
on_cluster="ON CLUSTER $CH_CLUSTER"
q 1 "CREATE DATABASE x $on_cluster" >/dev/null
q 1 "CREATE TABLE x.t $on_cluster (account_id String, event_id UInt64, ts DateTime, n UInt32)
  ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/x/t', '{replica}')
  PARTITION BY toYYYYMM(ts) ORDER BY (account_id, event_id)" >/dev/null
q 1 "CREATE TABLE x.t_dist $on_cluster AS x.t
  ENGINE = Distributed($CH_CLUSTER, x, t, cityHash64(account_id))" >/dev/null
engines=$(for n in 1 2 3 4; do
  q "$n" "SELECT groupArray(engine) FROM (SELECT engine FROM system.tables WHERE database = 'x' ORDER BY name)"
done | sort -u)
check "a. CREATE DATABASE / ReplicatedMergeTree / Distributed ON CLUSTER exist on all 4 nodes" \
  "['ReplicatedMergeTree','Distributed']" "$engines"
paths=$(for n in 1 2 3 4; do
  q "$n" "SELECT concat(replaceAll(zookeeper_path, '/clickhouse/tables/', ''), ' ', replica_name)
    FROM system.replicas WHERE table = 't'"
done | tr '\n' ' ')
check "a. {shard}/{replica} macros expand per node (path under /clickhouse/tables/, replica)" \
  "01/x/t r1 01/x/t r2 02/x/t r1 02/x/t r2 " "$paths"

# b. sharded insert through Distributed ----------------------------------------------------------
SYNC=insert_distributed_sync=1
check "b. 18.16 knows the setting insert_distributed_sync" 1 \
  "$(q 1 "SELECT count() FROM system.settings WHERE name = 'insert_distributed_sync'")"
ins 1 x.t_dist 0 1000 "$SYNC"
sync_all x.t
base=$(counts x.t)
check_shards "b. 1000 rows via Distributed (sync): on one shard each, on both its replicas" 1000 "$base"
acc1=$(q 1 "SELECT DISTINCT account_id FROM x.t ORDER BY account_id")
acc2=$(q 3 "SELECT DISTINCT account_id FROM x.t ORDER BY account_id")
check "b. the 50 accounts split between the shards, none on both" "50 0" \
  "$(($(wc -l <<<"$acc1") + $(wc -l <<<"$acc2"))) $(comm -12 <(echo "$acc1") <(echo "$acc2") | wc -l)"
read -r h1 h2 h3 h4 <<<"$(for n in 1 2 3 4; do
  q "$n" "SELECT sum(cityHash64(account_id, event_id, ts, n)) FROM x.t"; done | tr '\n' ' ')"
check "b. replicas hold identical rows (row-hash sums equal per shard)" "$h1 $h3" "$h2 $h4"
stray1=$(q 1 "SELECT countIf(cityHash64(account_id) % 2 != 0) FROM x.t")
stray2=$(q 3 "SELECT countIf(cityHash64(account_id) % 2 != 1) FROM x.t")
check "b. shard k holds exactly cityHash64(account_id) % 2 = k-1 (weights 1:1)" "0 0" "$stray1 $stray2"

# c. deduplication of a repeated block ------------------------------------------------------------
ins 1 x.t_dist 0 1000 "$SYNC"
ins 3 x.t_dist 0 1000 "$SYNC"
sync_all x.t
check "c. same block again via Distributed (sync) on node 1 and on node 3: deduplicated" "$base" "$(counts x.t)"
# A block for the local table of shard 1 only: the rows of one of its accounts.
acct=$(head -1 <<<"$acc1")
local_block() {
  { echo "INSERT INTO x.t FORMAT TSV"; gen_rows 5000 1000 | awk -v a="$acct" '$1 == a'; } | http "$1"
}
before=$(counts x.t "account_id = '$acct'")
local_block 1
local_block 1
local_block 2
sync_all x.t
read -r a _ <<<"$before"
check "c. same block 3x into the local table (s1r1, s1r1, then s1r2): stored once, 20 rows" \
  "$((a + 20)) $((a + 20))" "$(counts x.t "account_id = '$acct'" | cut -d' ' -f1,2)"
ins 1 x.t_dist 2000 1000
ins 1 x.t_dist 2000 1000
# The remote shard's part waits as a .bin file under the Distributed table's directory until a
# background monitor (100 ms period) sends it; 18.16 has no SYSTEM FLUSH DISTRIBUTED.
for _ in $(seq 1 100); do
  [ -z "$(find "$RUN/ch_s1r1/data/data/x/t_dist" -name '*.bin' 2>/dev/null)" ] && break
  sleep 0.1
done
sync_all x.t
check_shards "c. same block twice via Distributed, async (insert_distributed_sync=0): stored once" \
  1000 "$(counts x.t "event_id >= 2000 AND event_id < 3000")"
check "c. insert_deduplication_token does not exist on 18.16" 0 \
  "$(q 1 "SELECT count() FROM system.settings WHERE name = 'insert_deduplication_token'")"
note "c. using it: $(q 1 'SELECT 1' insert_deduplication_token=abc 2>&1 | grep -o 'Code: [0-9]*.*Unknown setting [a-z_]*')"

# d. a replica crashes while its shard takes inserts ----------------------------------------------
kill9_ch_node 2
ins 1 x.t_dist 10000 1000 "$SYNC"
# From a shard-2 node, the Distributed insert must pick the live replica of shard 1 itself.
ins 4 x.t_dist 11000 1000 "$SYNC"
q 3 "SYSTEM SYNC REPLICA x.t" >/dev/null
d_rows="event_id >= 10000 AND event_id < 12000"
check "d. with s1r2 down, Distributed inserts via s1r1 and via s2r2 all land" 2000 \
  "$(($(q 1 "SELECT count() FROM x.t WHERE $d_rows") + $(q 3 "SELECT count() FROM x.t WHERE $d_rows")))"
restart_ch_node 2
t0=$(now_ms)
for _ in $(seq 1 900); do
  read -r a b _ <<<"$(counts x.t)"
  [ "$a" = "$b" ] && break
  sleep 0.1
done
check "d. SIGKILLed s1r2, restarted, has what s1r1 took meanwhile" "$a" "$b"
# It cannot replicate until the killed process's ZooKeeper session (6 s, see cluster.sh) has
# expired and its is_active node is gone; the restarting thread retries every 10 s.
note "d. s1r2 caught up $(($(now_ms) - t0)) ms after it answered again"

# e. mutations, ALTER ON CLUSTER, materialized view ------------------------------------------------
sync_all x.t
q 1 "ALTER TABLE x.t $on_cluster DELETE WHERE account_id = 'acct-7'" >/dev/null
for _ in $(seq 1 300); do
  [ "$(counts x.t "account_id = 'acct-7'")" = "0 0 0 0" ] && break
  sleep 0.1
done
check "e. ALTER ... ON CLUSTER DELETE WHERE: rows gone on all 4 nodes" "0 0 0 0" "$(counts x.t "account_id = 'acct-7'")"
check "e. one finished mutation per replica (system.mutations)" "1 1 1 1" \
  "$(counts system.mutations "table = 't' AND is_done")"
q 1 "ALTER TABLE x.t $on_cluster ADD COLUMN source String DEFAULT 'none'" >/dev/null
check "e. ALTER ... ON CLUSTER ADD COLUMN on the local replicated table, all nodes" "1 1 1 1" \
  "$(counts system.columns "database = 'x' AND table = 't' AND name = 'source'")"
# 18.16's DDL worker refuses ON CLUSTER ALTERs of non-replicated tables (Distributed included)
# when the cluster's shards have internal_replication: every node must be altered by itself.
err=$(q 1 "ALTER TABLE x.t_dist $on_cluster ADD COLUMN source String DEFAULT 'none'" 2>&1) || true
check "e. ALTER ... ON CLUSTER ADD COLUMN on the Distributed table is REFUSED by 18.16 (code 371)" \
  "Code: 371" "$(grep -o 'Code: 371' <<<"$err" | head -1)"
note "e. its error: $(grep -o "Table t_dist isn't replicated[^,]*" <<<"$err" | head -1)"
for n in 1 2 3 4; do q "$n" "ALTER TABLE x.t_dist ADD COLUMN source String DEFAULT 'none'"; done
check "e. workaround: plain ALTER ... ADD COLUMN on each node's Distributed table" "1 1 1 1" \
  "$(counts system.columns "database = 'x' AND table = 't_dist' AND name = 'source'")"
q 1 "INSERT INTO x.t_dist (account_id, event_id, ts, n, source)
  VALUES ('acct-1', 30000, '2026-11-01 00:00:00', 1, 'new')" "$SYNC"
sync_all x.t
check "e. the new column is written and read through Distributed" "new" \
  "$(q 4 "SELECT source FROM x.t_dist WHERE event_id = 30000")"

q 1 "CREATE TABLE x.per_account $on_cluster (account_id String, rows UInt64)
  ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/x/per_account', '{replica}')
  ORDER BY account_id" >/dev/null
q 1 "CREATE MATERIALIZED VIEW x.per_account_mv $on_cluster TO x.per_account
  AS SELECT account_id, count() AS rows FROM x.t GROUP BY account_id" >/dev/null
ins 3 x.t_dist 40000 1000 "$SYNC"
sync_all x.t
sync_all x.per_account
mv=$(for n in 1 2 3 4; do q "$n" "SELECT sum(rows) FROM x.per_account"; done | tr '\n' ' ' | sed 's/ $//')
check_shards "e. MV ON CLUSTER (TO a replicated table) fed on each shard by a Distributed insert" 1000 "$mv"
check "e. each node's MV rows match its own shard's share of the insert" "$(counts x.t "event_id >= 40000")" "$mv"
ins 3 x.t_dist 40000 1000 "$SYNC"
sync_all x.per_account
mv2=$(for n in 1 2 3 4; do q "$n" "SELECT sum(rows) FROM x.per_account"; done | tr '\n' ' ' | sed 's/ $//')
check "e. the same block again via Distributed: source and MV target unchanged" "$mv $mv" \
  "$(counts x.t "event_id >= 40000") $mv2"

step "Summary"
if [ "$FAILS" -eq 0 ]; then echo "all checks passed"; else echo "$FAILS check(s) failed"; exit 1; fi
