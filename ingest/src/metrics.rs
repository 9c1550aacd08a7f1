//! Every Prometheus metric ingest exports. Labels are bounded sets (routes, status codes, kinds,
//! reasons) — never an account, user or write key.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route and status code.
    pub requests: IntCounterVec,
    /// Events written to Kafka, by kind.
    pub events_accepted: IntCounterVec,
    /// Valid events of a suppressed user or account (docs/privacy.md#suppression): answered as
    /// accepted, never written. Unlabelled: ingest's counters carry no per-source label, and a
    /// subject can never be one.
    pub suppressed_events: IntCounter,
    /// Events rejected one by one (invalid, oversize) and dead-lettered, by reason.
    pub events_rejected: IntCounterVec,
    /// Whole requests refused, by reason (unauthorized, body_too_large, rate_limited, unavailable…).
    pub requests_refused: IntCounterVec,
    /// Time from handing a request's events to the producer to the last acknowledgement.
    pub produce_latency: HistogramVec,
    /// Messages waiting in the producer's queue (sampled on each scrape).
    pub producer_queue: IntGauge,
    /// Bytes of request bodies after decompression, by where the key was (`header`, or `body`:
    /// decoded before the sender is known, so bounded by `limits.max_keyless_body_bytes`).
    pub decoded_bytes: IntCounterVec,
    /// Open HTTP connections on the API listener (at most `limits.max_connections`).
    pub open_connections: IntGauge,
    /// Connections closed because their headers did not arrive within `limits.header_timeout_ms`.
    pub header_timeouts: IntCounter,
    /// 1 while ingest is ready (the broker answered the last check and the suppression list is
    /// loaded), else 0: what `/readyz` answers, at most [`crate::admin::READINESS_INTERVAL`] late.
    pub ready: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("uptake_ingest_http_requests_total", "HTTP requests by route and status"),
            &["route", "status"],
        )
        .unwrap();
        let events_accepted = IntCounterVec::new(
            Opts::new("uptake_ingest_events_accepted_total", "Events acknowledged by Kafka, by kind"),
            &["kind"],
        )
        .unwrap();
        let suppressed_events = IntCounter::new(
            "uptake_ingest_suppressed_events_total",
            "Valid events of a suppressed user or account, answered as accepted and not stored",
        )
        .unwrap();
        let events_rejected = IntCounterVec::new(
            Opts::new("uptake_ingest_events_rejected_total", "Events refused, by reason"),
            &["reason"],
        )
        .unwrap();
        let requests_refused = IntCounterVec::new(
            Opts::new("uptake_ingest_requests_refused_total", "Requests refused as a whole, by reason"),
            &["reason"],
        )
        .unwrap();
        let produce_latency = HistogramVec::new(
            HistogramOpts::new("uptake_ingest_produce_seconds", "Time until Kafka acknowledged a request's events")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            &["outcome"],
        )
        .unwrap();
        let producer_queue =
            IntGauge::new("uptake_ingest_producer_queue_messages", "Messages in the Kafka producer queue").unwrap();
        let decoded_bytes = IntCounterVec::new(
            Opts::new("uptake_ingest_decoded_bytes_total", "Request body bytes after decompression, by key location"),
            &["key"],
        )
        .unwrap();
        let open_connections =
            IntGauge::new("uptake_ingest_open_connections", "Open HTTP connections on the API listener").unwrap();
        let header_timeouts = IntCounter::new(
            "uptake_ingest_header_timeouts_total",
            "Connections closed because their request headers did not arrive in time",
        )
        .unwrap();
        let ready = IntGauge::new(
            "uptake_ingest_ready",
            "1 while ingest is ready: the broker answered the last check and the suppression list is loaded",
        )
        .unwrap();
        for c in [&requests, &events_accepted, &events_rejected, &requests_refused, &decoded_bytes] {
            registry.register(Box::new(c.clone())).unwrap();
        }
        registry.register(Box::new(produce_latency.clone())).unwrap();
        for g in [&producer_queue, &open_connections, &ready] {
            registry.register(Box::new(g.clone())).unwrap();
        }
        for c in [&header_timeouts, &suppressed_events] {
            registry.register(Box::new(c.clone())).unwrap();
        }
        // The series alerting rules and dashboards read exist from the start, at 0: a rate
        // over a series that appears only with the first failure misses that failure, and a
        // rule naming it cannot be checked against a healthy service (deploy/prometheus/).
        for reason in ["overloaded", "overloaded_keyless", "unavailable", "not_ready", "rate_limited", "unauthorized"] {
            requests_refused.with_label_values(&[reason]);
        }
        for outcome in ["ok", "error"] {
            produce_latency.with_label_values(&[outcome]);
        }
        events_rejected.with_label_values(&["invalid"]);
        Self {
            registry,
            requests,
            events_accepted,
            suppressed_events,
            events_rejected,
            requests_refused,
            produce_latency,
            producer_queue,
            decoded_bytes,
            open_connections,
            header_timeouts,
            ready,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        schemas::runtime::render_metrics(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
