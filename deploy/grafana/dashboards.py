#!/usr/bin/env python3
"""uptake's Grafana dashboards, built with grafana-foundation-sdk (PyPI): an overview and one per
service. This file is their source; the JSON under dashboards/ is what Grafana provisions (the
Helm chart's ConfigMap and deploy/compose/) and what the tests read.

    python3 deploy/grafana/dashboards.py            # rewrite dashboards/*.json
    python3 deploy/grafana/dashboards.py --check    # fail if they differ from this source

Every expression here is evaluated against a live Prometheus scraping the real services by
aggregator/tests/monitoring.rs, and every metric it names must have a series there. Ranges are
written out ([5m]), not Grafana's $__rate_interval, so that Prometheus can evaluate them as they
are. Job names are those deploy/prometheus/uptake-alerts.yml expects.
"""
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard, DataSourceRef

OUT = Path(__file__).resolve().parent / "dashboards"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
AGG = 'job="uptake-aggregator"'


def ts(title, unit, *targets, description=""):
    """A time series panel of (expression, legend) targets."""
    p = timeseries.Panel().title(title).unit(unit).datasource(DS).height(8).span(12).description(description)
    for i, (expr, legend) in enumerate(targets):
        p = p.with_target(prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i)))
    return p


def single(title, unit, expr, description=""):
    """A stat panel of one expression."""
    q = prometheus.Dataquery().expr(expr).ref_id("A").instant()
    return stat.Panel().title(title).unit(unit).datasource(DS).height(4).span(6).description(description).with_target(q)


def board(uid, title, panels):
    d = (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags(["uptake"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for p in panels:
        d = d.with_panel(p)
    return d.build()


def quantiles(metric, labels, by=""):
    grouping = f"le{', ' + by if by else ''}"
    return [
        (f"histogram_quantile(0.5, sum by ({grouping}) (rate({metric}_bucket{{{labels}}}[5m])))", f"p50{' {{' + by + '}}' if by else ''}"),
        (f"histogram_quantile(0.99, sum by ({grouping}) (rate({metric}_bucket{{{labels}}}[5m])))", f"p99{' {{' + by + '}}' if by else ''}"),
    ]


DASHBOARDS = {
    "uptake-overview": lambda: board("uptake-overview", "uptake / overview", [
        single("Events accepted /s", "ops", "sum(rate(uptake_ingest_events_accepted_total[5m]))"),
        single("Events stored /s", "ops", f"sum(rate(uptake_aggregator_events_stored_total{{{AGG}}}[5m]))"),
        single("Consumer lag", "short", f"sum(uptake_aggregator_consumer_lag_messages{{{AGG}}})",
               "Events acknowledged by ingest and not stored yet."),
        single("Open alert episodes", "short", f"sum(uptake_aggregator_open_alert_episodes{{{AGG}}})"),
        ts("Throughput", "ops",
           ("sum(rate(uptake_ingest_events_accepted_total[5m]))", "accepted by ingest"),
           (f"sum(rate(uptake_aggregator_events_stored_total{{{AGG}}}[5m]))", "stored in ClickHouse")),
        ts("Errors", "ops",
           ('sum(rate(uptake_ingest_http_requests_total{status=~"5.."}[5m]))', "ingest 5xx (503 included)"),
           ("sum(rate(uptake_ingest_events_rejected_total[5m]))", "events rejected (4xx)"),
           (f"sum(rate(uptake_aggregator_insert_failures_total{{{AGG}}}[5m]))", "insert failures"),
           (f"sum(rate(uptake_aggregator_dead_letters_total{{{AGG}}}[5m]))", "dead letters"),
           (f"sum(rate(uptake_aggregator_evaluation_failures_total{{{AGG}}}[5m]))", "failed passes")),
        ts("Latency", "s",
           ('histogram_quantile(0.99, sum by (le) (rate(uptake_ingest_produce_seconds_bucket{outcome="ok"}[5m])))', "ingest produce p99"),
           (f"histogram_quantile(0.99, sum by (le) (rate(uptake_aggregator_insert_seconds_bucket{{{AGG}}}[5m])))", "insert p99"),
           (f"histogram_quantile(0.99, sum by (le) (rate(uptake_aggregator_evaluation_seconds_bucket{{{AGG}}}[5m])))", "evaluation pass p99")),
        ts("Alerts raised and delivered", "short",
           (f"sum by (status) (increase(uptake_aggregator_alerts_total{{{AGG}}}[1h]))", "raised: {{status}}"),
           ("sum by (outcome) (increase(uptake_notifier_notifications_total[1h]))", "notifications: {{outcome}}")),
        ts("Console sign-ins", "short",
           ('sum by (outcome) (increase(uptake_console_sign_ins_total{job="uptake-console"}[1h]))', "{{outcome}} per hour")),
    ]),
    "uptake-ingest": lambda: board("uptake-ingest", "uptake / ingest", [
        ts("Requests by status", "reqps", ("sum by (status) (rate(uptake_ingest_http_requests_total[5m]))", "{{status}}")),
        ts("Events accepted by kind", "ops", ("sum by (kind) (rate(uptake_ingest_events_accepted_total[5m]))", "{{kind}}")),
        ts("Refused and rejected", "ops",
           ("sum by (reason) (rate(uptake_ingest_requests_refused_total[5m]))", "request refused: {{reason}}"),
           ("sum by (reason) (rate(uptake_ingest_events_rejected_total[5m]))", "event rejected: {{reason}}")),
        ts("Produce latency (until Kafka acknowledged)", "s", *quantiles("uptake_ingest_produce_seconds", 'outcome="ok"')),
        ts("Producer queue and connections", "short",
           ("sum by (instance) (uptake_ingest_producer_queue_messages)", "queue {{instance}}"),
           ("sum by (instance) (uptake_ingest_open_connections)", "connections {{instance}}")),
        ts("Readiness, header timeouts", "short",
           ("min by (instance) (uptake_ingest_ready)", "ready {{instance}}"),
           ("sum by (instance) (rate(uptake_ingest_header_timeouts_total[5m]))", "header timeouts/s {{instance}}")),
        ts("Decoded request bytes", "Bps", ("sum by (key) (rate(uptake_ingest_decoded_bytes_total[5m]))", "key in {{key}}")),
    ]),
    "uptake-aggregator": lambda: board("uptake-aggregator", "uptake / aggregator", [
        ts("Stored, duplicates, dead letters", "ops",
           (f"sum(rate(uptake_aggregator_events_stored_total{{{AGG}}}[5m]))", "stored"),
           (f"sum(rate(uptake_aggregator_duplicates_total{{{AGG}}}[5m]))", "duplicates skipped"),
           (f"sum(rate(uptake_aggregator_dead_letters_total{{{AGG}}}[5m]))", "dead-lettered")),
        ts("Consumer lag by partition", "short", (f"sum by (partition) (uptake_aggregator_consumer_lag_messages{{{AGG}}})", "partition {{partition}}")),
        ts("Insert latency", "s", *quantiles("uptake_aggregator_insert_seconds", AGG)),
        ts("Failures", "ops",
           (f"sum(rate(uptake_aggregator_insert_failures_total{{{AGG}}}[5m]))", "insert failures"),
           (f"sum(rate(uptake_aggregator_consume_errors_total{{{AGG}}}[5m]))", "consume errors"),
           (f"sum(rate(uptake_aggregator_evaluation_failures_total{{{AGG}}}[5m]))", "failed passes")),
        ts("Evaluation pass duration", "s", *quantiles("uptake_aggregator_evaluation_seconds", AGG)),
        ts("Partitions owned by instance", "short",
           (f"sum by (instance) (uptake_aggregator_partitions_owned{{{AGG}}})", "{{instance}}")),
        ts("Accounts evaluated, open episodes, dedup window", "short",
           (f"sum(uptake_aggregator_accounts_evaluated{{{AGG}}})", "accounts in the last pass"),
           (f"sum(uptake_aggregator_open_alert_episodes{{{AGG}}})", "open alert episodes"),
           (f"sum(uptake_aggregator_dedup_window_ids{{{AGG}}})", "ids in the dedup window")),
        ts("Alert records published", "short", (f"sum by (status) (increase(uptake_aggregator_alerts_total{{{AGG}}}[1h]))", "{{status}} per hour")),
    ]),
    "uptake-notifier": lambda: board("uptake-notifier", "uptake / notifier", [
        ts("Notifications by webhook and outcome", "short",
           ("sum by (webhook, outcome) (increase(uptake_notifier_notifications_total[1h]))", "{{webhook}} {{outcome}} per hour")),
        ts("Retries and dead letters", "short",
           ("sum by (webhook) (increase(uptake_notifier_retries_total[1h]))", "retries {{webhook}} per hour"),
           ("sum by (webhook) (increase(uptake_notifier_dead_letters_total[1h]))", "dead letters {{webhook}} per hour")),
        ts("Webhook request duration", "s", *quantiles("uptake_notifier_request_seconds", "")),
        ts("Receive errors", "ops", ("sum(rate(uptake_notifier_receive_errors_total[5m]))", "alerts topic receive errors")),
    ]),
}


def render(name):
    return json.dumps(DASHBOARDS[name](), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    check = "--check" in sys.argv
    stale = []
    for name in DASHBOARDS:
        path = OUT / f"{name}.json"
        text = render(name)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
                continue
            # Structurally a dashboard: the committed JSON loads back into the SDK's model.
            loaded = Dashboard.from_json(json.loads(path.read_text()))
            if not loaded.panels or loaded.uid != name:
                sys.exit(f"{path.name}: no panels or a wrong uid after loading it back")
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        sys.exit(f"dashboards differ from deploy/grafana/dashboards.py: {stale} (run it to rewrite them)")
    print(f"    {len(DASHBOARDS)} dashboards {'equal to their source' if check else 'written'}")
