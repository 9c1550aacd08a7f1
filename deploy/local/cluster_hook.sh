#!/usr/bin/env bash
# The cluster drill's fault injection (tools `drill --hook`), run while cluster_test.sh's
# cluster is up: `cluster_hook.sh kill-clickhouse|restart-clickhouse|kill-broker|restart-broker [N]`
# (N: the broker, 1 or 2, the one ingest produces to).
# It signals only the processes cluster_test.sh started, by the pids recorded in $PIDS; the
# node and broker are restarted with the same config and data. cluster_test.sh exports where
# everything is: PIDS, and DRILL_CLUSTER as "CH_DIR CH_BASE_PORT BROKERS_DIR PG_PORT BROKER_PORT..."
# (the libraries below reset their own variables when sourced).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"
# shellcheck source-path=SCRIPTDIR source=brokers.sh
source "$(dirname "${BASH_SOURCE[0]}")/brokers.sh"

: "${PIDS:?}" "${DRILL_CLUSTER:?}"
read -r CH_CLUSTER_DIR CH_BASE_PORT BROKERS_DIR BROKERS_PG_PORT B1 B2 <<<"$DRILL_CLUSTER"
BROKER_PORTS=("$B1" "$B2")
# The replica the first aggregator prefers (node 1, s1r1), so its failover is exercised too.
NODE=${DRILL_CH_NODE:-1}
BROKER=${2:-1}

case ${1:-} in
  kill-clickhouse) kill9_ch_node "$NODE" ;;
  restart-clickhouse) restart_ch_node "$NODE" ;;
  kill-broker) kill9_broker "$BROKER" ;;
  restart-broker) start_one_broker "$BROKER" ;;
  *) die "usage: $0 kill-clickhouse|restart-clickhouse|kill-broker|restart-broker" ;;
esac
