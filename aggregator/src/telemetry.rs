//! Every Prometheus metric the aggregator exports. No account id is ever a label.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct Telemetry {
    registry: Registry,
    /// Events stored in ClickHouse.
    pub events_stored: IntCounter,
    /// Records skipped because their message id was already stored (replays, client retries).
    pub duplicates: IntCounter,
    /// Message ids in the dedup window.
    pub dedup_ids: IntGauge,
    /// Records sent to the dead-letter topic.
    pub dead_letters: IntCounter,
    /// Failed ClickHouse inserts (retried, or split to isolate rows refused for good).
    pub insert_failures: IntCounter,
    /// Kafka receive errors (each retried with backoff).
    pub consume_errors: IntCounter,
    /// Duration of successful event-batch inserts.
    pub insert_seconds: Histogram,
    /// Duration of one metrics + rules evaluation pass.
    pub evaluation_seconds: Histogram,
    /// Accounts whose metrics the last pass computed.
    pub accounts_evaluated: IntGauge,
    /// Partitions of the events topic this instance owns (0 between a revoke and an assign).
    pub partitions_owned: IntGauge,
    /// Alert records published, by status (firing, resolved).
    pub alerts: IntCounterVec,
    /// Open alert episodes.
    pub open_episodes: IntGauge,
    /// Notifier: alert records per webhook and outcome (delivered, dead_lettered,
    /// already_delivered = skipped by the ledger, malformed).
    pub notifications: IntCounterVec,
    /// Notifier: failed webhook attempts that were retried, per webhook.
    pub notify_retries: IntCounterVec,
    /// Notifier: alert records parked on the alerts dead-letter topic, per webhook.
    pub notify_dead_letters: IntCounterVec,
    /// Notifier: duration of one webhook request.
    pub notify_seconds: Histogram,
    /// Notifier: failed receives from the alerts topic (each retried with backoff).
    pub notify_receive_errors: IntCounter,
    /// Evaluation passes that failed (each retried at the next interval).
    pub evaluation_failures: IntCounter,
    /// Events of each owned partition not stored yet (high watermark − committed offset), from
    /// librdkafka's statistics (`consume::lag`).
    pub consumer_lag: IntGaugeVec,
    /// Events of a suppressed person or account dropped before they were stored.
    pub suppressed: IntCounter,
    /// Privacy deletion requests carried out, by outcome (finished, failed).
    pub privacy_requests: IntCounterVec,
    /// Deletion batches that failed (retried at the next interval).
    pub privacy_failures: IntCounter,
    /// Partitions dropped by the retention pass.
    pub retention_dropped: IntCounter,
}

impl Telemetry {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).unwrap();
            registry.register(Box::new(c.clone())).unwrap();
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).unwrap();
            registry.register(Box::new(g.clone())).unwrap();
            g
        };
        let histogram = |name: &str, help: &str| {
            let buckets = vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).unwrap();
            registry.register(Box::new(h.clone())).unwrap();
            h
        };
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "uptake_aggregator_consumer_lag_messages",
                "Events of an owned partition not stored yet (high watermark minus committed offset)",
            ),
            &["partition"],
        )
        .unwrap();
        registry.register(Box::new(consumer_lag.clone())).unwrap();
        let alerts = IntCounterVec::new(
            Opts::new("uptake_aggregator_alerts_total", "Alert records published, by status"),
            &["status"],
        )
        .unwrap();
        registry.register(Box::new(alerts.clone())).unwrap();
        // At 0 from the start, so dashboards and rules over them read a series, not nothing.
        for status in ["firing", "resolved"] {
            alerts.with_label_values(&[status]);
        }
        let per_webhook = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap();
            registry.register(Box::new(c.clone())).unwrap();
            c
        };
        let privacy_requests = IntCounterVec::new(
            Opts::new("uptake_aggregator_privacy_requests_total", "Privacy deletion requests carried out, by outcome"),
            &["outcome"],
        )
        .unwrap();
        registry.register(Box::new(privacy_requests.clone())).unwrap();
        for outcome in ["finished", "failed"] {
            privacy_requests.with_label_values(&[outcome]);
        }
        Self {
            suppressed: counter(
                "uptake_aggregator_suppressed_events_total",
                "Events of a suppressed person or account dropped before they were stored",
            ),
            privacy_failures: counter(
                "uptake_aggregator_privacy_batch_failures_total",
                "Privacy deletion batches that failed (retried next interval)",
            ),
            retention_dropped: counter(
                "uptake_aggregator_retention_dropped_partitions_total",
                "Partitions dropped by the retention pass",
            ),
            privacy_requests,
            notifications: per_webhook(
                "uptake_notifier_notifications_total",
                "Alert records handled per webhook, by outcome",
                &["webhook", "outcome"],
            ),
            notify_retries: per_webhook(
                "uptake_notifier_retries_total",
                "Failed webhook attempts that were retried",
                &["webhook"],
            ),
            notify_dead_letters: per_webhook(
                "uptake_notifier_dead_letters_total",
                "Alert records parked on the alerts dead-letter topic",
                &["webhook"],
            ),
            notify_seconds: histogram("uptake_notifier_request_seconds", "Duration of one webhook request"),
            notify_receive_errors: counter(
                "uptake_notifier_receive_errors_total",
                "Failed receives from the alerts topic (retried with backoff)",
            ),
            evaluation_failures: counter(
                "uptake_aggregator_evaluation_failures_total",
                "Evaluation passes that failed (retried next interval)",
            ),
            events_stored: counter("uptake_aggregator_events_stored_total", "Events stored in ClickHouse"),
            duplicates: counter(
                "uptake_aggregator_duplicates_total",
                "Records skipped as already stored (same message id)",
            ),
            dedup_ids: gauge("uptake_aggregator_dedup_window_ids", "Message ids remembered for deduplication"),
            dead_letters: counter("uptake_aggregator_dead_letters_total", "Records sent to the dead-letter topic"),
            insert_failures: counter("uptake_aggregator_insert_failures_total", "Failed ClickHouse inserts (retried)"),
            consume_errors: counter("uptake_aggregator_consume_errors_total", "Kafka receive errors (retried)"),
            insert_seconds: histogram("uptake_aggregator_insert_seconds", "Duration of event batch inserts"),
            evaluation_seconds: histogram("uptake_aggregator_evaluation_seconds", "Duration of an evaluation pass"),
            accounts_evaluated: gauge("uptake_aggregator_accounts_evaluated", "Accounts in the last evaluation pass"),
            partitions_owned: gauge(
                "uptake_aggregator_partitions_owned",
                "Partitions of the events topic this instance owns (what a rebalance assigned)",
            ),
            open_episodes: gauge("uptake_aggregator_open_alert_episodes", "Alert episodes currently firing"),
            alerts,
            consumer_lag,
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        schemas::runtime::render_metrics(&self.registry)
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}
