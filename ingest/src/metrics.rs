//! Every Prometheus metric ingest exports. Labels are bounded sets (routes, status codes, kinds,
//! reasons) — never an account, user or write key.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route and status code.
    pub requests: IntCounterVec,
    /// Events written to Kafka, by kind.
    pub events_accepted: IntCounterVec,
    /// Events rejected one by one (invalid, oversize) and dead-lettered, by reason.
    pub events_rejected: IntCounterVec,
    /// Whole requests refused, by reason (unauthorized, body_too_large, rate_limited, unavailable…).
    pub requests_refused: IntCounterVec,
    /// Time from handing a request's events to the producer to the last acknowledgement.
    pub produce_latency: HistogramVec,
    /// Messages waiting in the producer's queue (sampled on each scrape).
    pub producer_queue: IntGauge,
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
        for c in [&requests, &events_accepted, &events_rejected, &requests_refused] {
            registry.register(Box::new(c.clone())).unwrap();
        }
        registry.register(Box::new(produce_latency.clone())).unwrap();
        registry.register(Box::new(producer_queue.clone())).unwrap();
        Self { registry, requests, events_accepted, events_rejected, requests_refused, produce_latency, producer_queue }
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
