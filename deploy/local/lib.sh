# shellcheck shell=bash
# Shared by run.sh and test.sh: install what is missing, start and stop the local broker,
# ClickHouse and our services as plain processes. Sourced, not run.
#
# Every process we start is recorded in "$PIDS/NAME.pid" and stopped by that id only: these
# scripts never kill by name or pattern, so they cannot touch anything they did not start.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TANSU_VERSION=0.6.0
# Tansu's default build has no storage engine and silently stores nothing; libsql gives SQLite
# (the local broker), postgres the shared storage of the multi-broker cluster (cluster_test.sh).
TANSU_FEATURES=libsql,postgres
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
export PATH="$CARGO_BIN:$PATH"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_clickhouse() {
  if [ -x /usr/sbin/clickhouse-server ] && command -v clickhouse-client >/dev/null; then
    info "ClickHouse already installed"
    return
  fi
  step "Installing ClickHouse server and client (Debian packages, ~1 minute)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client
}

# ensure_debian COMMAND WHY PACKAGE...: installs the Debian packages unless COMMAND is on PATH.
ensure_debian() {
  local cmd=$1 why=$2; shift 2
  if command -v "$cmd" >/dev/null; then
    info "$cmd already installed"
    return
  fi
  step "Installing $* (Debian packages, $why)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# The console's browser tests drive a real headless Chromium through chromedriver (WebDriver).
ensure_chromium() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    info "Chromium and chromedriver already installed"
    return
  fi
  step "Installing Chromium and chromedriver (Debian packages, for the console's browser tests)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
}

# True when cargo recorded an install of tansu $TANSU_VERSION with every storage feature we need.
tansu_is_right() {
  [ -x "$CARGO_BIN/tansu" ] || return 1
  python3 - "$TANSU_VERSION" "$TANSU_FEATURES" <<'PY'
import json, os, sys
version, features = sys.argv[1], sys.argv[2].split(",")
path = os.path.join(os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")), ".crates2.json")
try:
    installs = json.load(open(path))["installs"]
except Exception:
    sys.exit(1)
ok = any(k.startswith(f"tansu {version} ") and set(features) <= set(v.get("features", [])) for k, v in installs.items())
sys.exit(0 if ok else 1)
PY
}

ensure_tansu() {
  if tansu_is_right; then
    info "Tansu $TANSU_VERSION (features: $TANSU_FEATURES) already installed"
    return
  fi
  step "Building the Tansu broker $TANSU_VERSION from crates.io (one time, ~13 minutes on 2 cores)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES" 2>&1 |
    grep --line-buffered -E '^ *(Compiling|Installing|Installed|Finished|error)' |
    awk '/Compiling/ { n++; if (n % 50 == 0) { printf "    ... %d crates compiled\n", n; fflush() } next } { print "    " $0; fflush() }'
  tansu_is_right || die "tansu install failed"
}

# pid file helpers -----------------------------------------------------------------------------
# A pid file holds "PID STARTTIME" (the kernel's start time of that process, /proc/PID/stat field
# 22). A pid is only treated as ours while both match, so a stale pid file can never make us
# signal an unrelated process that happens to have been given the same pid later.

proc_start() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

# pid_of NAME: prints the pid of our running NAME, or fails.
pid_of() {
  local f="$PIDS/$1.pid" pid started
  [ -f "$f" ] || return 1
  read -r pid started <"$f" || return 1
  [ -n "$pid" ] && [ "$(proc_start "$pid")" = "$started" ] || return 1
  echo "$pid"
}

is_running() { pid_of "$1" >/dev/null; }

# start NAME LOGFILE WORKDIR CMD...: starts CMD in the background and records its pid.
start() {
  local name=$1 log=$2 dir=$3; shift 3
  if is_running "$name"; then info "$name already running (pid $(pid_of "$name"))"; return; fi
  mkdir -p "$PIDS" "$(dirname "$log")" "$dir"
  (cd "$dir" && exec "$@" >>"$log" 2>&1) &
  local pid=$!
  echo "$pid $(proc_start "$pid")" >"$PIDS/$name.pid"
  info "$name started (pid $pid, log $log)"
}

# stop NAME: SIGTERM our recorded pid, wait up to 20 s, then SIGKILL it. Only that pid.
stop() {
  local name=$1 p
  if p=$(pid_of "$name"); then
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 200); do is_running "$name" || break; sleep 0.1; done
    if is_running "$name"; then
      info "$name (pid $p) did not stop in 20 s; sending SIGKILL"
      kill -KILL "$p" 2>/dev/null || true
    fi
    info "$name stopped (pid $p)"
  fi
  rm -f "$PIDS/$name.pid"
}

wait_for_port() { # NAME PORT SECONDS
  local name=$1 port=$2 secs=$3
  for _ in $(seq 1 $((secs * 10))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    is_running "$name" || die "$name exited during start-up; see its log"
    sleep 0.1
  done
  die "$name did not open port $port within $secs s"
}

# services -------------------------------------------------------------------------------------

# Under deploy/local/faketime.sh the broker runs on the tests' moved clock (through the same
# runner), so record timestamps and the broker's own time agree; otherwise this is empty.
BROKER_CLOCK=()
[ -n "${CLOCK_SHIFT_SECS:-}" ] && BROKER_CLOCK=("$ROOT/deploy/local/faketime-runner.sh")

start_broker() { # PORT DIR
  local port=$1 dir=$2
  start broker "$dir/broker.log" "$dir" "${BROKER_CLOCK[@]}" tansu broker \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "sqlite://tansu.db"
  wait_for_port broker "$port" 60
}

create_topics() { # PORT PARTITIONS TOPIC...
  local port=$1 partitions=$2; shift 2
  local t
  for t in "$@"; do
    # An existing topic is fine (a restart of the stack reuses its data).
    if out=$(tansu topic create "$t" --partitions "$partitions" --broker "tcp://127.0.0.1:$port" 2>&1); then
      info "topic $t created ($partitions partitions)"
    else
      info "topic $t: ${out##*$'\n'}"
    fi
  done
}

# The suppression list every ingest follows (docs/privacy.md#suppression): one partition (it is
# read whole at start), compacted so the latest record of each subject is kept, never expired.
# Tansu 0.6 stores these topic configs and compacts by them; retention.ms only matters under a
# `delete` policy (there Tansu reads -1 literally and would drop every record), not here.
create_suppressions_topic() { # PORT [TOPIC]
  local port=$1 topic=${2:-usage-suppressions} out
  if out=$(tansu topic create "$topic" --partitions 1 --config cleanup.policy=compact --config retention.ms=-1 \
    --broker "tcp://127.0.0.1:$port" 2>&1); then
    info "topic $topic created (1 partition, compacted)"
  else
    info "topic $topic: ${out##*$'\n'}"
  fi
}

start_clickhouse() { # HTTP_PORT TCP_PORT DIR
  local http=$1 tcp=$2 dir=$3
  mkdir -p "$dir/data/" "$dir/tmp/" "$dir/log"
  cat >"$dir/users.xml" <<XML
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
XML
  cat >"$dir/config.xml" <<XML
<yandex>
  <logger><level>warning</level><log>$dir/log/server.log</log><errorlog>$dir/log/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
XML
  # Never under libfaketime (deploy/local/faketime.sh): ClickHouse's allocator recurses into
  # clock_gettime and the server does not start. It keeps the real clock; the SQL compares its
  # now() only with times it stamped itself (last_stored) or with a 130-day cut-off.
  start clickhouse "$dir/log/stdout.log" "$dir" env -u LD_PRELOAD -u FAKETIME \
    /usr/sbin/clickhouse-server --config-file="$dir/config.xml"
  wait_for_port clickhouse "$http" 60
}
