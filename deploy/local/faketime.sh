#!/usr/bin/env bash
# Runs a command — by default the whole test suite, deploy/local/test.sh — with every process's
# clock moved to HH:MM UTC of today (libfaketime, Debian package `faketime`), so a test whose
# result depends on the hour it runs at fails here instead of in CI at that hour.
#
#   deploy/local/faketime.sh 23:30                 # every test, as if started at 23:30 UTC
#   deploy/local/faketime.sh 00:30 cargo test --workspace --lib      # every unit test at 00:30
#
# Limit, found 2026-12-03: librdkafka clients hang under libfaketime 0.9.10 on these machines (a
# produce or a consumer poll never returns, with or without FAKETIME_FORCE_MONOTONIC_FIX or a
# faked monotonic clock), so the tests that talk to the broker cannot run at a moved clock here;
# the unit tests (203) pass at 00:30 and 23:30. Those suites get their clock injected instead
# (schemas::runtime::Clock, data placed relative to a fixed evaluation time).
#
# The clock is moved by a fixed offset (not frozen) for every program cargo runs — the test
# binaries, through cargo's runner (deploy/local/faketime-runner.sh) — for every process they
# start (services, browsers), and for the brokers test.sh starts (lib.sh's BROKER_CLOCK), so
# those agree on "now" and time still passes. The compiler, cargo and ClickHouse keep the real
# clock: rustc hangs under libfaketime (`rustc -vV` never returns), and ClickHouse cannot start
# under it (lib.sh). Monotonic clocks are left
# alone (timeouts and sleeps stay real).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ $# -lt 1 ] || ! [[ $1 =~ ^([01][0-9]|2[0-3]):[0-5][0-9]$ ]]; then die "usage: $0 HH:MM [command...]"; fi
at=$1
shift
[ $# -gt 0 ] || set -- bash "$ROOT/deploy/local/test.sh"

lib=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
if [ ! -f "$lib" ]; then
  step "Installing libfaketime (Debian package faketime)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime
fi

now=$(date -u +%s)
target=$(date -u -d "$(date -u +%F) $at:00" +%s)
offset=$((target - now))
info "clock moved by ${offset} s: now reads $(date -u -d "@$target" '+%F %T') UTC"
# Not UPTAKE_*: the services read every UPTAKE_ variable as configuration.
CLOCK_SHIFT_SECS="$(printf '%+d' "$offset")"
export CLOCK_SHIFT_SECS
export CLOCK_SHIFT_LIB="$lib"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$ROOT/deploy/local/faketime-runner.sh"
exec "$@"
