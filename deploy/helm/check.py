#!/usr/bin/env python3
"""Offline checks of the Helm chart (issue 22), run by deploy/local/check_deploy.sh:

- `helm lint --strict` (the Helm SDK through PyPI `helm-python-sdk`) finds no warning or error;
- for each value set in tests/ (values-NAME.yaml): the values pass values.schema.json, the chart
  renders, the render equals the golden file tests/golden/NAME.yaml (UPDATE_GOLDEN=1 rewrites
  them after a deliberate change), and every manifest validates against the Kubernetes schemas
  (PyPI `kubernetes-validate`, strict: no unknown field); the prometheus-operator kinds have no
  schema there and are checked for their required fields only;
- the uptake configuration files the chart renders load in the binaries just built (the
  aggregator's and notifier's `aggregator.toml`, the console's `console.toml`);
- values with an unknown key are refused by the schema; files/uptake-alerts.yml is
  deploy/prometheus/uptake-alerts.yml and files/dashboards/ deploy/grafana/dashboards/.

    python3 deploy/helm/check.py ROOT
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(sys.argv[1]).resolve()
HERE = ROOT / "deploy" / "helm"
CHART = HERE / "uptake"
KUBERNETES = "1.33.0"
OPERATOR_KINDS = {"ServiceMonitor": ["endpoints", "selector"], "PrometheusRule": ["groups"]}


def fail(message):
    sys.exit(f"helm chart: {message}")


report = helm.lint(str(CHART), yaml.safe_load((HERE / "tests" / "values-default.yaml").read_text()), strict=True)
problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
if problems:
    fail(f"helm lint --strict: {problems}")
print("    helm lint --strict: no warning (info only: " + ", ".join(m["error"] for m in report["messages"]) + ")")

chart = helm.Chart.load(str(CHART))
try:
    chart.validate_schema({"secrets": {"writeKeys": "x"}, "ingest": {"replica": 3}})
    fail("values.schema.json accepted an unknown key (ingest.replica)")
except helm.HelmValuesError:
    pass

value_sets = sorted((HERE / "tests").glob("values-*.yaml"))
if len(value_sets) < 2:
    fail("expected at least two value sets in deploy/helm/tests")
for path in value_sets:
    name = path.stem.removeprefix("values-")
    values = yaml.safe_load(path.read_text())
    chart.validate_schema(values)
    rendered = chart.render(values, name="uptake", namespace="uptake")
    text = "".join(f"# Source: {t}\n{body.strip()}\n---\n" for t, body in sorted(rendered.items()) if body.strip())
    golden = HERE / "tests" / "golden" / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    elif not golden.exists() or golden.read_text() != text:
        fail(f"the render of {path.name} differs from {golden.relative_to(ROOT)} (UPDATE_GOLDEN=1 after a deliberate change)")
    docs = [d for d in yaml.safe_load_all(text) if d]
    kinds = []
    for doc in docs:
        kind = doc["kind"]
        kinds.append(kind)
        if kind in OPERATOR_KINDS:
            missing = [k for k in OPERATOR_KINDS[kind] if k not in doc.get("spec", {})]
            if missing:
                fail(f"{name}: {kind} {doc['metadata']['name']} lacks spec.{missing}")
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as e:
            fail(f"{name}: {kind} {doc['metadata']['name']}: {e.message} at {list(e.path)}")
    # The configuration files uptake reads, as rendered, loaded by the binaries just built.
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config"))["data"]
    with tempfile.TemporaryDirectory() as tmp:
        for file, body in config.items():
            Path(tmp, file).write_text(body)
        env = {"PATH": os.environ.get("PATH", "")}
        for file in ["aggregator.toml", "notifier.toml"]:
            r = subprocess.run([ROOT / "target/debug/aggregator", "--config", Path(tmp, file), "sql"],
                               env=env, capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"{name}: the rendered {file} does not load: {r.stderr.strip()[:400]}")
        r = subprocess.run([ROOT / "target/debug/console", "sql"], env={**env, "UPTAKE_CONSOLE_CONFIG": str(Path(tmp, "console.toml"))},
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"{name}: the rendered console.toml does not load: {r.stderr.strip()[:400]}")
    print(f"    {name}: schema, golden render ({len(docs)} objects: {', '.join(sorted(set(kinds)))}), "
          f"Kubernetes {KUBERNETES} schemas, rendered configs load")

if (CHART / "files" / "uptake-alerts.yml").read_text() != (ROOT / "deploy/prometheus/uptake-alerts.yml").read_text():
    fail("files/uptake-alerts.yml differs from deploy/prometheus/uptake-alerts.yml: copy it")
for dashboard in sorted((ROOT / "deploy/grafana/dashboards").glob("*.json")):
    if (CHART / "files/dashboards" / dashboard.name).read_bytes() != dashboard.read_bytes():
        fail(f"files/dashboards/{dashboard.name} differs from deploy/grafana/dashboards/: copy it")
print("    the chart's PrometheusRule and dashboards carry deploy/prometheus/ and deploy/grafana/")
