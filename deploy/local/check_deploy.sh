#!/usr/bin/env bash
# Offline checks of the deployment artefacts (issue 22), run by test.sh after the build:
#   - the scrape config and the alerting rules parse (`promtool check config`, which checks the
#     rules it loads) and pass their unit tests
#     (`promtool test rules`); every alert has a test that shows it firing and a runbook section
#     in docs/operations.md;
#   - the systemd units pass `systemd-analyze verify` without a single warning (it exits 0 on
#     warnings, so its output is what counts), with ExecStart pointed at the binaries just built.
#   - every shell script under deploy/ is shellcheck clean;
#   - the Grafana dashboards equal their source and load into grafana-foundation-sdk's model;
#   - the Helm chart: lint, schema, golden renders, Kubernetes schemas (deploy/helm/check.py);
#   - the compose file passes Compose's own `config` check, and its Prometheus config promtool's.
# Installs Debian's prometheus (for promtool) and shellcheck when missing. Starts no process.

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_debian promtool "for promtool" prometheus prometheus-alertmanager
ensure_debian shellcheck "to lint the scripts" shellcheck
mapfile -t scripts < <(find "$ROOT/deploy" -name '*.sh' | sort)
shellcheck -x -P SCRIPTDIR "${scripts[@]}" || die "shellcheck finds problems"
info "${#scripts[@]} shell scripts under deploy/ shellcheck clean"
cd "$ROOT/deploy/prometheus" || exit 1
promtool check config prometheus.yml | sed 's/^/    /'
promtool test rules uptake-alerts.test.yml | sed 's/^/    /'
python3 - "$ROOT" <<'PY'
import re, sys, yaml
root = sys.argv[1]
rules = yaml.safe_load(open(f"{root}/deploy/prometheus/uptake-alerts.yml"))
tests = yaml.safe_load(open(f"{root}/deploy/prometheus/uptake-alerts.test.yml"))
ops = open(f"{root}/docs/operations.md").read()
anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", ops, re.M)}
alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
fired = {t["alertname"] for test in tests["tests"] for t in test["alert_rule_test"] if t["exp_alerts"]}
problems = []
for r in alerts:
    name = r["alert"]
    if name not in fired:
        problems.append(f"{name}: no test shows it firing")
    url = r.get("annotations", {}).get("runbook_url", "")
    anchor = url.rsplit("#", 1)[-1]
    if "docs/operations.md#" not in url or anchor not in anchors:
        problems.append(f"{name}: runbook_url {url!r} names no section of docs/operations.md")
if problems:
    sys.exit("\n".join(problems))
print(f"    {len(alerts)} alerts, each tested firing and with its runbook section")
PY

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for unit in "$ROOT"/deploy/systemd/*.service; do
  name=$(basename "$unit")
  sed -E "s#/usr/local/bin/uptake-(ingest|aggregator|console)#$ROOT/target/debug/\\1#" "$unit" > "$tmp/$name"
  out=$(systemd-analyze verify "$tmp/$name" 2>&1) || die "systemd-analyze verify $name failed: $out"
  [ -z "$out" ] || die "systemd-analyze verify $name warns: $out"
done
info "$(find "$ROOT/deploy/systemd" -name '*.service' | wc -l) systemd units verified without a warning"

python3 "$ROOT/deploy/grafana/dashboards.py" --check
python3 "$ROOT/deploy/helm/check.py" "$ROOT"

cd "$ROOT/deploy/compose" || exit 1
UPTAKE_WRITE_KEYS=check UPTAKE_CONSOLE__SESSION__SECRET=check docker-compose -f compose.yaml config -q ||
  die "docker compose config rejects deploy/compose/compose.yaml"
cp prometheus.yml "$tmp/compose-prometheus.yml"
cp "$ROOT/deploy/prometheus/uptake-alerts.yml" "$tmp/"
promtool check config "$tmp/compose-prometheus.yml" >/dev/null || die "promtool rejects deploy/compose/prometheus.yml"
info "compose.yaml valid (docker compose config), its prometheus.yml valid (promtool)"
