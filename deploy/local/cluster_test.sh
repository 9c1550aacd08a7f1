#!/usr/bin/env bash
# uptake on a cluster, with nodes killed under load (issue 23, docs/scaling.md): ZooKeeper and
# ClickHouse 18.16 in 2 shards x 2 replicas (cluster.sh), two Tansu brokers on one PostgreSQL
# (brokers.sh), then
#   1. the warehouse's cluster tests (warehouse/tests/cluster.rs): the same rows through one
#      replica, then through another, must be stored once; a person deleted ON CLUSTER and a
#      month past its retention are gone from every replica;
#   2. `drill`: ingest, two aggregators and the notifier take loadgen's book while a ClickHouse
#      replica, a broker and an aggregator are killed with SIGKILL and brought back; then every
#      node's rows are counted (tools/src/drill).
# Everything it starts it stops on exit, by pid. Run by test.sh; alone: deploy/local/cluster_test.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"
# shellcheck source-path=SCRIPTDIR source=brokers.sh
source "$(dirname "${BASH_SOURCE[0]}")/brokers.sh"

RUN=${UPTAKE_CLUSTER_RUN:-$ROOT/.uptake/cluster}
BASE_PORT=${UPTAKE_CLUSTER_BASE_PORT:-31000}
PG_PORT=$((BASE_PORT + 100))
B1=$((BASE_PORT + 101)) B2=$((BASE_PORT + 102))
BIN=${UPTAKE_CLUSTER_BIN:-$ROOT/target/debug}
export PIDS=$RUN/pids

cleanup() {
  local rc=$?
  stop_brokers
  stop_postgres
  stop_ch_cluster
  [ "$rc" -eq 0 ] || printf '\033[31mcluster test failed (exit %s); logs under %s\033[0m\n' "$rc" "$RUN"
}

rm -rf "$RUN"
# PostgreSQL runs as an unprivileged user, which must reach its directory.
mkdir -p "$RUN" && chmod 711 "$RUN"
ensure_tansu
ensure_postgres
trap cleanup EXIT INT TERM
started=$(date +%s)
start_ch_cluster "$RUN/clickhouse" "$BASE_PORT"
start_postgres "$RUN/postgres" "$PG_PORT"
TANSU_BIN=$(command -v tansu)
start_brokers "$RUN/brokers" "$PG_PORT" "$B1" "$B2"
info "cluster up in $(($(date +%s) - started)) s"
NODES=$(IFS=,; echo "${CH_NODES[*]}")

step "A retried INSERT stored once; a deletion and a retention pass on every replica (warehouse/tests/cluster.rs)"
# One test at a time: both queue ON CLUSTER statements, which each node runs one by one.
UPTAKE_TEST_CH_CLUSTER="$NODES" UPTAKE_TEST_CH_CLUSTER_NAME="$CH_CLUSTER" \
  cargo test --locked -q -p warehouse --test cluster -- --include-ignored --test-threads=1

step "Drill: nodes killed under load, then every node counted (tools drill)"
cargo build --locked -q -p ingest -p aggregator -p tools --bins
DRILL_CLUSTER="$CH_CLUSTER_DIR $CH_BASE_PORT $BROKERS_DIR $BROKERS_PG_PORT ${BROKER_PORTS[*]}"
export DRILL_CLUSTER TANSU_BIN
"$BIN/drill" --brokers "$(bootstrap_servers)" --clickhouse "$NODES" --cluster "$CH_CLUSTER" \
  --bin-dir "$BIN" --hook "$ROOT/deploy/local/cluster_hook.sh" | tee "$RUN/drill.txt"
info "cluster test done in $(($(date +%s) - started)) s"
