# shellcheck shell=bash
# A multi-broker Kafka-compatible cluster as plain processes: one PostgreSQL 15 and two Tansu
# brokers that share one database as their storage. Sourced, not run (see brokers_facts.sh).
#
# Why PostgreSQL: Tansu brokers keep records, offsets and group state in their storage engine;
# with the postgres:// engine every broker serves every partition from the shared tables, so clients fail over to the other broker
# through metadata. (SQLite storage is one file per broker and cannot be shared.)
#
# Like lib.sh (whose start/stop/pid files this reuses), every process is recorded in
# "$PIDS/NAME.pid" and signalled by that pid only: never by name or pattern. Callers set PIDS.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The broker needs a build with the postgres feature (cargo install tansu --version 0.6.0 --locked
# --features libsql,postgres); e.g. TANSU_BIN=/tmp/tansu-pg/bin/tansu.
TANSU_BIN=${TANSU_BIN:-tansu}
TANSU_CLUSTER_ID=${TANSU_CLUSTER_ID:-tansu_cluster}  # the same id for both: one cluster
TANSU_PG_DB=${TANSU_PG_DB:-tansu}
# PostgreSQL refuses to run as root, so as root we run it as this unprivileged user (Debian's
# postgresql package creates "postgres"; we create it if it is missing). Set before sourcing.
PG_RUN_USER=${PG_RUN_USER:-postgres}
PG_SCHEMA="$ROOT/deploy/local/tansu/postgres-schema.sql"  # vendored: the crate does not ship it

# Set by start_brokers so that restart_broker can start a broker again with the same arguments.
BROKERS_DIR='' BROKERS_PG_PORT='' BROKER_PORTS=()

# The newest /usr/lib/postgresql/VERSION/bin (Debian keeps the server off PATH).
pg_bin() {
  local d
  d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/postgres" ] || return 1
  echo "$d"
}

ensure_postgres() {
  if pg_bin >/dev/null; then
    info "PostgreSQL already installed ($(pg_bin))"
    return
  fi
  step "Installing PostgreSQL (Debian packages, for the multi-broker Tansu storage)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  pg_bin >/dev/null || die "postgresql installed but no /usr/lib/postgresql/*/bin/postgres"
}

# AS_PG prefixes a command to run it as the PostgreSQL user (empty unless we are root). setpriv
# execs in place (no fork, unlike runuser or su), so the pid that `start` records is postgres
# itself and `stop` signals it directly.
AS_PG=()
[ "$(id -u)" -ne 0 ] ||
  AS_PG=(setpriv --reuid="$PG_RUN_USER" --regid="$PG_RUN_USER" --init-groups --reset-env --)

ensure_pg_user() {
  [ "$(id -u)" -eq 0 ] || return 0
  id -u "$PG_RUN_USER" >/dev/null 2>&1 && return
  info "creating system user $PG_RUN_USER to run PostgreSQL (it refuses to run as root)"
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$PG_RUN_USER"
}

# A port someone else listens on would make wait_for_port succeed for the wrong process.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ensure_port_free() { ! port_busy "$1" || die "port $1 is already in use by another process"; }

pg_url() { echo "postgres://postgres@127.0.0.1:$1/$TANSU_PG_DB"; } # PORT
psql_at() { # PORT DB ARGS...: psql as the trusted superuser over TCP
  local port=$1 db=$2; shift 2
  "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}

# start_postgres DIR PORT: a private cluster in DIR/data (created if new, trust auth on
# 127.0.0.1 only), its socket in DIR, the database $TANSU_PG_DB with Tansu's schema.
start_postgres() {
  local dir=$1 port=$2 bin
  bin=$(pg_bin) || die "PostgreSQL is not installed (ensure_postgres)"
  [ -f "$PG_SCHEMA" ] || die "missing $PG_SCHEMA"
  is_running postgres || ensure_port_free "$port"
  ensure_pg_user
  mkdir -p "$dir"
  [ "$(id -u)" -ne 0 ] || chown "$PG_RUN_USER:" "$dir"
  "${AS_PG[@]}" test -w "$dir" ||
    die "$dir is not writable by $PG_RUN_USER (are its parent directories searchable?)"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    info "initdb $dir/data"
    "${AS_PG[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
      >>"$dir/initdb.log" 2>&1 || die "initdb failed; see $dir/initdb.log"
  fi
  # In the foreground (not pg_ctl's daemon) so that lib.sh's start records the server's pid.
  start postgres "$dir/postgres.log" "$dir" "${AS_PG[@]}" "$bin/postgres" -D "$dir/data" \
    -p "$port" -k "$dir" -c listen_addresses=127.0.0.1
  # pg_isready rather than wait_for_port: the port opens before the server accepts queries.
  local i
  for i in $(seq 1 300); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    is_running postgres || die "postgres exited during start-up; see $dir/postgres.log"
    [ "$i" -lt 300 ] || die "postgres not ready on port $port within 30 s"
    sleep 0.1
  done
  if [ "$(psql_at "$port" postgres -tAc \
    "select 1 from pg_database where datname = '$TANSU_PG_DB'")" != 1 ]; then
    psql_at "$port" postgres -c "create database \"$TANSU_PG_DB\""
    # Tansu 0.6 neither creates nor ships its tables (the broker panics: relation "cluster"
    # does not exist). The schema is idempotent, but we load it only into a new database.
    psql_at "$port" "$TANSU_PG_DB" -f "$PG_SCHEMA" >/dev/null
    info "database $TANSU_PG_DB created with Tansu's schema"
  fi
  info "postgres ready on 127.0.0.1:$port"
}

# stop_postgres: SIGINT (PostgreSQL's "fast" shutdown: aborts open sessions), then lib.sh's stop,
# which waits and escalates. SIGTERM alone ("smart") would wait for every client to leave.
stop_postgres() {
  local p
  if p=$(pid_of postgres); then kill -INT "$p" 2>/dev/null || true; fi
  stop postgres
}

# start_one_broker N: broker N (1 or 2) on BROKER_PORTS[N-1], logging to BROKERS_DIR/brokerN.log.
start_one_broker() {
  local n=$1 port=${BROKER_PORTS[$1 - 1]}
  is_running "broker$n" || ensure_port_free "$port"
  start "broker$n" "$BROKERS_DIR/broker$n.log" "$BROKERS_DIR" \
    "$TANSU_BIN" broker --cluster-id "$TANSU_CLUSTER_ID" \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "$(pg_url "$BROKERS_PG_PORT")"
  check_broker_storage "$n" # first: a build without postgres exits at once
  wait_for_port "broker$n" "$port" 60
}

# start_brokers DIR PG_PORT PORT1 PORT2: two brokers on one database; both use the same
# --cluster-id (Tansu 0.6 has no node-id flag: every broker is node 111 and advertises only
# itself, so a client knows the other broker only from its bootstrap list).
start_brokers() {
  BROKERS_DIR=$1 BROKERS_PG_PORT=$2 BROKER_PORTS=("$3" "$4")
  mkdir -p "$BROKERS_DIR"
  start_one_broker 1
  start_one_broker 2
}

# check_broker_storage N: the start-up line lists the storage engines compiled in. A 0.6.0 build
# without "postgres" exits (FeatureNotEnabled), but URLs it does not know at all fall back to the
# Null engine, which acks and stores nothing: so say plainly what is wrong.
check_broker_storage() {
  local log="$BROKERS_DIR/broker$1.log" i
  for i in $(seq 1 50); do
    grep -qE '^storage: .*\[.*"postgres"' "$log" 2>/dev/null && return 0
    [ "$i" -lt 50 ] && sleep 0.1
  done
  die "$TANSU_BIN has no postgres storage (see $log); build it with --features libsql,postgres"
}

bootstrap_servers() { echo "127.0.0.1:${BROKER_PORTS[0]},127.0.0.1:${BROKER_PORTS[1]}"; }

# kill9_broker N: SIGKILL broker N's recorded pid (a crash: no clean shutdown), wait for it to go.
kill9_broker() {
  local n=$1 p
  p=$(pid_of "broker$n") || die "broker$n is not running"
  kill -KILL "$p"
  wait "$p" 2>/dev/null || true # reap it when it is our child (else it stays a zombie)
  local i
  for i in $(seq 1 50); do is_running "broker$n" || break; sleep 0.1; done
  is_running "broker$n" && die "broker$n (pid $p) still alive after SIGKILL"
  rm -f "$PIDS/broker$n.pid"
  info "broker$n killed with SIGKILL (pid $p)"
}

# restart_broker N: starts broker N again with the arguments of start_brokers.
restart_broker() {
  [ -n "$BROKERS_DIR" ] || die "restart_broker: start_brokers was not called in this shell"
  is_running "broker$1" && stop "broker$1"
  start_one_broker "$1"
}

stop_brokers() {
  stop broker1
  stop broker2
}
