# shellcheck shell=bash
# A local replicated and sharded ClickHouse 18.16 cluster: one Debian ZooKeeper 3.8 and four
# clickhouse-server processes, 2 shards x 2 replicas, in a cluster named uptake_cluster.
# Sourced, not run. Every process goes through lib.sh's `start`, so it is recorded in
# "$PIDS/NAME.pid" and stopped (or SIGKILLed for fault tests) by that pid only.
#
# Ports derive from BASE_PORT so that two clusters (or a cluster next to run.sh's single
# ClickHouse) never collide:
#   ZooKeeper client port   BASE+1
#   node N (1..4)           HTTP BASE+10N, TCP BASE+10N+1, interserver HTTP BASE+10N+2
# Nodes in order: 1 = s1r1, 2 = s1r2, 3 = s2r1, 4 = s2r2 (shard 01/02, replica r1/r2).

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ZK_HOME=/usr/share/zookeeper
CH_CLUSTER=uptake_cluster
CH_CLUSTER_DIR=
CH_BASE_PORT=
# HTTP URLs of the four nodes, s1r1 s1r2 s2r1 s2r2; read by the scripts that source this file.
# shellcheck disable=SC2034
CH_NODES=()

ensure_zookeeper() {
  if [ -x "$ZK_HOME/bin/zkServer.sh" ]; then
    info "ZooKeeper already installed"
    return
  fi
  # Debian's package pulls in its Java runtime; its service is not started (no init here).
  step "Installing zookeeper (Debian package, for the replicated ClickHouse cluster)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper
}

# Node N's layout: shard = ceil(N/2), replica = 1 for odd N, 2 for even N.
ch_shard() { echo $((($1 + 1) / 2)); }
ch_replica() { echo $((($1 - 1) % 2 + 1)); }
ch_node_name() { echo "ch_s$(ch_shard "$1")r$(ch_replica "$1")"; }
ch_http_port() { echo $((CH_BASE_PORT + 10 * $1)); }
ch_tcp_port() { echo $((CH_BASE_PORT + 10 * $1 + 1)); }
ch_zk_port() { echo $((CH_BASE_PORT + 1)); }

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ch_all_ports() { # every port the cluster listens on
  local n
  ch_zk_port
  for n in 1 2 3 4; do echo "$(ch_http_port "$n") $(ch_tcp_port "$n") $(($(ch_tcp_port "$n") + 1))"; done
}

# The <remote_servers> block shared by all nodes. internal_replication=true: a Distributed
# insert writes each shard's rows to one replica and ReplicatedMergeTree copies them to the
# other (with false, Distributed would write every replica itself and they would diverge).
ch_remote_servers_xml() {
  local s r
  echo "  <remote_servers><$CH_CLUSTER>"
  for s in 1 2; do
    echo "    <shard><internal_replication>true</internal_replication>"
    for r in 1 2; do
      echo "      <replica><host>127.0.0.1</host><port>$(ch_tcp_port $(((s - 1) * 2 + r)))</port></replica>"
    done
    echo "    </shard>"
  done
  echo "  </$CH_CLUSTER></remote_servers>"
}

# ch_write_node_config N: lib.sh's start_clickhouse config plus what replication needs.
ch_write_node_config() {
  local n=$1 dir http tcp
  dir="$CH_CLUSTER_DIR/$(ch_node_name "$n")"
  http=$(ch_http_port "$n")
  tcp=$(ch_tcp_port "$n")
  mkdir -p "$dir/data/" "$dir/tmp/" "$dir/log"
  cat >"$dir/config.xml" <<XML
<yandex>
  <logger><level>${CH_LOG_LEVEL:-warning}</level><log>$dir/log/server.log</log><errorlog>$dir/log/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <interserver_http_port>$((tcp + 1))</interserver_http_port>
  <!-- Replicas fetch parts from each other at this host; the default (hostname -f) may not resolve. -->
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <users_config>$CH_CLUSTER_DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <!-- 18.16 refuses to start without it; small, since four servers share the machine. -->
  <mark_cache_size>67108864</mark_cache_size>
  <!-- A SIGKILLed replica's is_active node lives until its ZooKeeper session expires, and the
       restarted server retries every 10 s until it is gone: with 6 s (not 30 s) it catches up
       in about 10 s. ZooKeeper accepts 4-40 s at tickTime 2000. -->
  <zookeeper><node><host>127.0.0.1</host><port>$(ch_zk_port)</port></node>
    <session_timeout_ms>6000</session_timeout_ms></zookeeper>
  <!-- Without this block 18.16 runs no DDL worker and ON CLUSTER queries hang. -->
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <macros><shard>0$(ch_shard "$n")</shard><replica>r$(ch_replica "$n")</replica></macros>
$(ch_remote_servers_xml)
</yandex>
XML
}

# ch_start_node N: starts node N from its written config and waits for its HTTP port.
ch_start_node() {
  local n=$1 name dir
  name=$(ch_node_name "$n")
  dir="$CH_CLUSTER_DIR/$name"
  # Never under libfaketime: see start_clickhouse in lib.sh.
  start "$name" "$dir/log/stdout.log" "$dir" env -u LD_PRELOAD -u FAKETIME \
    /usr/sbin/clickhouse-server --config-file="$dir/config.xml"
}

start_zookeeper() {
  local dir="$CH_CLUSTER_DIR/zookeeper"
  mkdir -p "$dir/data" "$dir/log"
  cat >"$dir/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPort=$(ch_zk_port)
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr
CFG
  # zkServer.sh execs java, so the recorded pid is the JVM's. Its zkEnv.sh hard-codes the log
  # directory; the later -D in JVMFLAGS wins, and the console logger sends it to our log file.
  start zookeeper "$dir/log/stdout.log" "$dir" env JMXDISABLE=true \
    JVMFLAGS="-Xmx256m -Dzookeeper.log.dir=$dir/log -Dzookeeper.root.logger=WARN,CONSOLE" \
    "$ZK_HOME/bin/zkServer.sh" start-foreground "$dir/zoo.cfg"
  wait_for_port zookeeper "$(ch_zk_port)" 60
  # The port opens before ZooKeeper serves sessions. A clickhouse-server that starts in that gap
  # fails its first handshake, and an ON CLUSTER query sent to it soon after crashed 18.16
  # (SIGSEGV in zkutil::ZooKeeper::createImpl). So wait until `srvr` reports a serving mode.
  local _
  for _ in $(seq 1 300); do
    zk_serving && return 0
    sleep 0.1
  done
  die "ZooKeeper did not start serving within 30 s; see $dir/log/stdout.log"
}

zk_serving() {
  # read -t: a probe without a timeout once got no reply during ZooKeeper's start and hung.
  (
    exec 3<>"/dev/tcp/127.0.0.1/$(ch_zk_port)" && printf srvr >&3 || exit 1
    while IFS= read -r -t 1 line <&3; do [[ $line == "Mode: "* ]] && exit 0; done
    exit 1
  ) 2>/dev/null
}

# ch_wait_zk N: waits until node N answers a query that needs its ZooKeeper session.
ch_wait_zk() {
  local _ url
  url="http://127.0.0.1:$(ch_http_port "$1")/"
  for _ in $(seq 1 300); do
    curl -fs "$url" --data-binary "SELECT count() FROM system.zookeeper WHERE path = '/'" >/dev/null &&
      return 0
    sleep 0.1
  done
  die "$(ch_node_name "$1") has no ZooKeeper session after 30 s; see its log"
}

# start_ch_cluster DIR BASE_PORT: writes configs under DIR, starts ZooKeeper and the four
# servers, waits for them and sets CH_NODES. PIDS defaults to DIR/pids.
start_ch_cluster() {
  local n p
  CH_CLUSTER_DIR=$1
  CH_BASE_PORT=$2
  PIDS=${PIDS:-$CH_CLUSTER_DIR/pids}
  mkdir -p "$CH_CLUSTER_DIR"
  CH_CLUSTER_DIR=$(cd "$CH_CLUSTER_DIR" && pwd)
  ensure_clickhouse
  ensure_zookeeper
  # Another cluster or service on these ports would make the servers fail half-way.
  for p in $(ch_all_ports); do
    port_is_free "$p" || die "port $p is in use; pick another BASE_PORT"
  done
  step "Starting ZooKeeper and 4 ClickHouse servers (2 shards x 2 replicas) under $CH_CLUSTER_DIR"
  # poll_interval: a server being stopped ends an idle TCP connection (the other nodes'
  # Distributed pools keep some open) only when its poll wakes; the default 10 s made each stop
  # take 10 s.
  cat >"$CH_CLUSTER_DIR/users.xml" <<XML
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage>
    <poll_interval>1</poll_interval></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
XML
  start_zookeeper
  # Start all four before waiting for any, so their start-ups overlap.
  for n in 1 2 3 4; do
    ch_write_node_config "$n"
    ch_start_node "$n"
  done
  CH_NODES=()
  for n in 1 2 3 4; do
    wait_for_port "$(ch_node_name "$n")" "$(ch_http_port "$n")" 60
    ch_wait_zk "$n"
    CH_NODES+=("http://127.0.0.1:$(ch_http_port "$n")")
  done
  for n in 1 2 3 4; do info "$(ch_node_name "$n"): ${CH_NODES[n - 1]} (tcp $(ch_tcp_port "$n"))"; done
}

stop_ch_cluster() {
  local n
  for n in 1 2 3 4; do stop "$(ch_node_name "$n")"; done
  stop zookeeper
}

# kill9_ch_node N: SIGKILL node N's recorded pid (a crash: no shutdown, no ZooKeeper goodbye).
kill9_ch_node() {
  local name pid
  name=$(ch_node_name "$1")
  pid=$(pid_of "$name") || die "$name is not running"
  kill -KILL "$pid"
  # Reap it when it is our child, so it does not linger as a zombie that still looks alive.
  wait "$pid" 2>/dev/null || true
  while is_running "$name"; do sleep 0.1; done
  rm -f "$PIDS/$name.pid"
  info "$name killed with SIGKILL (pid $pid)"
}

# restart_ch_node N: starts node N again with the same config and data and waits for it.
restart_ch_node() {
  ch_start_node "$1"
  wait_for_port "$(ch_node_name "$1")" "$(ch_http_port "$1")" 60
  ch_wait_zk "$1"
}
