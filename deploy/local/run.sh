#!/usr/bin/env bash
# Runs the whole uptake stack on this machine, no Docker: a Kafka-compatible broker (Tansu on
# SQLite), ClickHouse, ingest and aggregator as plain processes.
#
#   deploy/local/run.sh          install what is missing, build, start, send demo traffic and
#                                show the resulting metrics and alerts; leaves the stack running
#   deploy/local/run.sh up       the same without demo traffic
#   deploy/local/run.sh status   what runs where
#   deploy/local/run.sh stop     stop what run.sh started (process ids in .uptake/pids/)
#
# Ports: Kafka 127.0.0.1:9092 · ClickHouse HTTP 8123 (native 9000) · ingest 8080 (admin/metrics
# 8082) · aggregator admin/metrics 8081. State under .uptake/ (delete it to start from scratch).

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$ROOT/.uptake
# shellcheck disable=SC2034 # read by lib.sh's start/stop/pid_of
PIDS=$STATE/pids
KAFKA_PORT=9092 CH_HTTP=8123 CH_TCP=9000 INGEST_PORT=8080 ADMIN_PORT=8081 INGEST_ADMIN_PORT=8082 CONSOLE_PORT=8090
WRITE_KEY=uptake-dev-key
TOPICS=(usage-events usage-alerts usage-events-dlq usage-alerts-dlq)
BIN=$ROOT/target/release

ch() { curl -sS --fail-with-body "http://127.0.0.1:$CH_HTTP/" --data-binary "$1"; }

wait_http() { # NAME URL SECONDS
  local deadline=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    curl -fs --max-time 3 -o /dev/null "$2" && return 0
    is_running "$1" || die "$1 exited during start-up; see $STATE/logs/$1.log"
    sleep 0.2
  done
  die "$1 not ready at $2 within $3 s; see $STATE/logs/$1.log"
}

up() {
  step "Checking prerequisites"
  command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
  command -v curl >/dev/null || { as_root apt-get update -qq; as_root apt-get install -y -qq curl; }
  ensure_clickhouse
  ensure_tansu

  step "Building ingest, aggregator and console (release)"
  (cd "$ROOT" && cargo build --release --locked --bins 2>&1 |
    grep -E --line-buffered '^ *(Compiling|Finished|error|warning)') || die "build failed"

  step "Starting the broker (Tansu, SQLite storage) on 127.0.0.1:$KAFKA_PORT"
  start_broker "$KAFKA_PORT" "$STATE/kafka"
  create_topics "$KAFKA_PORT" 4 "${TOPICS[@]}"
  create_suppressions_topic "$KAFKA_PORT"

  step "Starting ClickHouse on 127.0.0.1:$CH_HTTP (native $CH_TCP)"
  start_clickhouse "$CH_HTTP" "$CH_TCP" "$STATE/clickhouse"

  step "Applying the ClickHouse schema"
  "$BIN/aggregator" --config "$ROOT/deploy/local/aggregator.toml" migrate 2>>"$STATE/logs/migrate.log" | sed 's/^/    /'

  step "Starting aggregator (admin on 127.0.0.1:$ADMIN_PORT) and ingest (API on 127.0.0.1:$INGEST_PORT, admin on $INGEST_ADMIN_PORT)"
  start aggregator "$STATE/logs/aggregator.log" "$STATE" \
    env UPTAKE_LOG_FORMAT=json "$BIN/aggregator" --config "$ROOT/deploy/local/aggregator.toml" run
  wait_http aggregator "http://127.0.0.1:$ADMIN_PORT/readyz" 30
  start ingest "$STATE/logs/ingest.log" "$STATE" \
    env UPTAKE_LOG_FORMAT=json "$BIN/ingest" --config "$ROOT/deploy/local/ingest.toml"
  wait_http ingest "http://127.0.0.1:$INGEST_ADMIN_PORT/readyz" 30
  step "Starting the CSM console on http://127.0.0.1:$CONSOLE_PORT"
  start console "$STATE/logs/console.log" "$STATE" \
    env UPTAKE_LOG_FORMAT=json "$BIN/console" --config "$ROOT/deploy/local/console.toml" serve
  wait_http console "http://127.0.0.1:$CONSOLE_PORT/readyz" 30

  step "uptake is running"
  info "send events:  curl -u $WRITE_KEY: http://127.0.0.1:$INGEST_PORT/v1/events -H 'Content-Type: application/json' \\"
  info "                -d '{\"kind\":\"login\",\"account_id\":\"acme\",\"user_id\":\"u1\"}'"
  info "write key:    $WRITE_KEY   (local use only)"
  info "query:        clickhouse-client --port $CH_TCP -q 'SELECT * FROM uptake.account_metrics FINAL'"
  info "console:      http://127.0.0.1:$CONSOLE_PORT   sign in as dana@vendor.example / uptake-demo (local use only)"
  info "status/stop:  deploy/local/run.sh status | stop"
}

demo() {
  step "Sending 63 days of simulated usage for a book of 12 accounts (target/release/loadgen)"
  info "stories: steady, growing, onboarding, tiny, seasonal, a holiday dip; slides (acme fades this week), a cliff, a happy fader, dormant; ground truth in $STATE/demo-truth.json"
  local before sent
  before=$(ch "SELECT count() FROM uptake.events")
  sent=$("$BIN/loadgen" --url "http://127.0.0.1:$INGEST_PORT" --write-key "$WRITE_KEY" --accounts 12 --days 63 \
    --seed 42 --truth "$STATE/demo-truth.json" | tail -1) || die "loadgen failed"
  info "$sent events accepted"

  step "Waiting for the aggregator to store them and evaluate the rules"
  # A second demo run re-sends the same events (same seed, same message ids): they are
  # deduplicated, so the count does not grow — only a first run waits for all of them.
  local want=$((before > 0 ? before : sent)) got=0
  for _ in $(seq 1 120); do
    got=$(ch "SELECT count() FROM uptake.events")
    [ "$got" -ge "$want" ] && break
    sleep 0.5
  done
  info "$got events in ClickHouse"
  # The evaluator judges an imported history once it stopped arriving (evaluation.settle_ms,
  # 15 s in deploy/local/aggregator.toml), taking each condition's start from that history: the
  # alerts open then are those a replay of the same days has open. Two passes (5 s each) later
  # every account has been judged.
  info "waiting 27 s for the import to settle and be judged (evaluation.settle_ms = 15 s here)"
  sleep 27

  step "Adoption metrics per account (uptake.account_metrics)"
  ch "SELECT account_id, lifecycle_stage AS stage, health_score AS health, health_band AS band,
             health_weakest AS weakest, health_cap AS cap, active_users_7d AS wau,
             active_user_days_7d AS user_days, active_user_days_baseline AS usual,
             round(active_user_days_vs_baseline) AS vs_usual_pct, round(active_user_days_z, 1) AS z,
             round(seat_utilisation, 2) AS seats_used, latest_nps AS nps, days_since_last_login AS days_no_login
      FROM uptake.account_metrics FINAL ORDER BY account_id FORMAT PrettyCompactMonoBlock"

  step "Churn-risk alerts open now (uptake.open_alerts; also on the usage-alerts topic)"
  ch "SELECT account_id, rule_id, severity, fired_at, reason
      FROM uptake.open_alerts ORDER BY account_id FORMAT PrettyCompactMonoBlock"

  # The live evaluator writes only today's health; the account pages draw 90 days of it, so
  # the demo's past days are replayed once into account_health_daily.
  step "Writing the health history of the demo's 62 past days (aggregator history)"
  "$BIN/aggregator" --config "$ROOT/deploy/local/aggregator.toml" history \
    --from "$(date -u -d '62 days ago' +%F)" --to "$(date -u -d 'yesterday' +%F)" 2>/dev/null | sed 's/^/    /'

  # A replay shows what uptake would have said day by day, and when each alert would have come.
  local from to
  from=$(date -u -d '27 days ago' +%F)
  to=$(date -u +%F)
  step "What the rules would have alerted over the last 28 days (aggregator backtest --score)"
  "$BIN/aggregator" --config "$ROOT/deploy/local/aggregator.toml" backtest --from "$from" --to "$to" 2>/dev/null |
    sed 's/^/    /'
  # --store: the console's Rules page shows the latest stored score.
  "$BIN/aggregator" --config "$ROOT/deploy/local/aggregator.toml" backtest --from "$from" --to "$to" --score --store \
    2>/dev/null | sed 's/^/    /'
  step "The CSM console"
  info "open http://127.0.0.1:$CONSOLE_PORT and sign in as dana@vendor.example / uptake-demo (local use only;"
  info "sam@, lee@ and ana@vendor.example too): the book, the alert inbox, account pages, the rules"
  info "The stack keeps running: deploy/local/run.sh status | stop"
}

status() {
  local name port
  for name in broker clickhouse aggregator ingest console; do
    case $name in
      broker) port=$KAFKA_PORT ;; clickhouse) port=$CH_HTTP ;; aggregator) port=$ADMIN_PORT ;; ingest) port=$INGEST_PORT ;;
      console) port=$CONSOLE_PORT ;;
    esac
    if is_running "$name"; then
      printf '    %-11s running   pid %-7s 127.0.0.1:%s\n' "$name" "$(pid_of "$name")" "$port"
    else
      printf '    %-11s stopped\n' "$name"
    fi
  done
  if is_running ingest; then info "ingest readyz:     $(curl -s "http://127.0.0.1:$INGEST_ADMIN_PORT/readyz") (admin 127.0.0.1:$INGEST_ADMIN_PORT)"; fi
  if is_running aggregator; then info "aggregator readyz: $(curl -s "http://127.0.0.1:$ADMIN_PORT/readyz")"; fi
}

stop_all() {
  step "Stopping uptake (only the processes recorded in $PIDS)"
  # Front to back: no new events, then drain the aggregator, then the stores.
  stop console
  stop ingest
  stop aggregator
  stop clickhouse
  stop broker
}

mkdir -p "$STATE/logs"
case "${1:-demo}" in
  demo) up; demo ;;
  up) up ;;
  status) status ;;
  stop) stop_all ;;
  *) die "usage: $0 [up|status|stop]" ;;
esac
