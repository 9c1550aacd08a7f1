//! HTTP load on ingest: batches as fast as it takes them, single events at fixed rates, and
//! probes that time an event from ingest's 200 to its account's row in `account_metrics`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use serde_json::json;

use super::Rate;
use crate::ingest_client::{IngestClient, RetryPolicy};
use crate::ToolsError;

/// A client for ingest with the write key.
#[derive(Clone)]
pub struct Ingest {
    client: IngestClient,
}

/// Refusals are waited out (their Retry-After, else 200 ms) for up to 12 s; ingest is the
/// bench's own, so a connection error ends the run.
const RETRY: RetryPolicy = RetryPolicy {
    fallback_wait: Duration::from_millis(200),
    give_up_after: Duration::from_secs(12),
    retry_unreachable: false,
};

impl Ingest {
    pub fn new(url: &str, key: &str) -> Self {
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("http client");
        Self { client: IngestClient::new(http, url, "/v1/events", key) }
    }

    /// POSTs one body; Ok only on 200. A 503 (broker busy) is retried after its Retry-After, so
    /// every event is counted exactly once; the refusals are reported.
    async fn post(&self, body: Bytes, refusals: &Mutex<u64>) -> Result<(), ToolsError> {
        let refused = || *refusals.lock().unwrap() += 1;
        self.client.post_until_accepted(&body, &RETRY, refused).await
    }

    /// Sends every body with `concurrency` requests in flight; `events` in total.
    pub async fn batches(
        &self,
        bodies: &[Bytes],
        events: usize,
        concurrency: usize,
    ) -> Result<(Rate, u64), ToolsError> {
        let refusals = Mutex::new(0);
        let started = Instant::now();
        let results: Vec<Result<(), ToolsError>> = stream::iter(bodies.iter().cloned())
            .map(|b| self.post(b, &refusals))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        let refused = *refusals.lock().unwrap();
        Ok((Rate::new(events, started.elapsed()), refused))
    }

    /// Single-event requests at `rate` per second for `duration`, open loop: each request is
    /// started on its schedule whatever the earlier ones do, and its latency counts from its
    /// scheduled start (so a stalled server or client cannot hide queueing).
    pub async fn fixed_rate(&self, bodies: &[Bytes], rate: u32, duration: Duration) -> Result<Latency, ToolsError> {
        let total = ((rate as f64 * duration.as_secs_f64()) as usize).min(bodies.len());
        let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
        let errors = Arc::new(Mutex::new(0u64));
        let started = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(total);
        for (i, body) in bodies.iter().take(total).enumerate() {
            let at = started + Duration::from_secs_f64(i as f64 / rate as f64);
            tokio::time::sleep_until(at).await;
            let (me, body, latencies, errors) = (self.clone(), body.clone(), latencies.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                let ok = me.client.request(body).send().await.is_ok_and(|r| r.status() == 200);
                if ok {
                    latencies.lock().unwrap().push(at.elapsed());
                } else {
                    *errors.lock().unwrap() += 1;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let elapsed = started.elapsed();
        let mut l = latencies.lock().unwrap().clone();
        let errors = *errors.lock().unwrap();
        Ok(Latency::from(rate, elapsed, &mut l, errors))
    }
}

/// Latency of one fixed-rate run.
#[derive(Debug, Clone)]
pub struct Latency {
    pub target: u32,
    /// Requests answered 200 (each with a fresh event).
    pub ok: usize,
    /// Requests answered 200 per second of the run.
    pub achieved: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub errors: u64,
}

impl Latency {
    pub(super) fn from(target: u32, elapsed: Duration, l: &mut [Duration], errors: u64) -> Self {
        l.sort();
        Self {
            target,
            ok: l.len(),
            achieved: l.len() as f64 / elapsed.as_secs_f64(),
            p50: quantile(l, 0.50),
            p99: quantile(l, 0.99),
            errors,
        }
    }

    /// Kept up with the schedule (≥ 95 % answered 200 in time) without errors, and latency
    /// did not run away (p99 under a second: the server is not just queueing).
    pub fn sustained(&self) -> bool {
        self.errors == 0 && self.achieved >= 0.95 * self.target as f64 && self.p99 < Duration::from_secs(1)
    }
}

pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Each end-to-end probe's time from ingest's 200 to its row appearing (Duration::MAX: never),
/// sorted: in `events` (the aggregator consumed and stored it) and in `account_metrics` (an
/// evaluation pass counted it) — the difference is the evaluation's share.
#[derive(Debug, Default)]
pub struct EndToEnd {
    pub stored: Vec<Duration>,
    pub evaluated: Vec<Duration>,
}

/// End to end: while `bodies` (batches of `per_batch` events) go to ingest at `rate` events/s,
/// a probe event for a fresh account is sent every 200 ms; a poller watches `events` and
/// `account_metrics` for the probe accounts.
pub async fn end_to_end(
    ingest: &Ingest,
    clickhouse: &str,
    database: &str,
    run: &str,
    bodies: &[Bytes],
    per_batch: usize,
    rate: u32,
) -> Result<EndToEnd, ToolsError> {
    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // (table, account) → first seen.
    let seen: Arc<Mutex<HashMap<(String, String), Instant>>> = Arc::default();
    let load_done = Arc::new(tokio::sync::Notify::new());

    let poller = {
        let seen = seen.clone();
        let http = reqwest::Client::new();
        let probes = format!("account_id LIKE 'probe-{run}-%'");
        let sql = format!(
            "SELECT 'events', account_id FROM {database}.events WHERE {probes} UNION ALL \
             SELECT DISTINCT 'account_metrics', account_id FROM {database}.account_metrics WHERE {probes} FORMAT TSV"
        );
        let url = clickhouse.to_owned();
        tokio::spawn(async move {
            // Runs until aborted once the last probe was seen.
            loop {
                if let Ok(r) = http.post(&url).body(sql.clone()).send().await {
                    let text = r.text().await.unwrap_or_default();
                    let now = Instant::now();
                    let mut seen = seen.lock().unwrap();
                    for (table, account) in text.lines().filter_map(|l| l.split_once('\t')) {
                        seen.entry((table.to_owned(), account.to_owned())).or_insert(now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let prober = {
        let (ingest, accepted, load_done) = (ingest.clone(), accepted.clone(), load_done.clone());
        let run = run.to_owned();
        tokio::spawn(async move {
            let refusals = Mutex::new(0);
            for k in 0.. {
                let account = format!("probe-{run}-{k:04}");
                let body = json!({ "kind": "login", "account_id": account, "user_id": "probe", "message_id": account });
                tokio::select! {
                    _ = load_done.notified() => break,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                if ingest.post(Bytes::from(body.to_string()), &refusals).await.is_ok() {
                    accepted.lock().unwrap().insert(account, Instant::now());
                }
            }
        })
    };

    // The background load, paced: one batch every per_batch / rate seconds.
    let interval = Duration::from_secs_f64(per_batch as f64 / rate as f64);
    let started = tokio::time::Instant::now();
    let mut sends = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        tokio::time::sleep_until(started + interval * i as u32).await;
        let (ingest, body) = (ingest.clone(), body.clone());
        sends.push(tokio::spawn(async move { ingest.post(body, &Mutex::new(0)).await }));
    }
    for s in sends {
        s.await.map_err(|e| ToolsError::Setup(e.to_string()))??;
    }
    load_done.notify_one();
    prober.await.map_err(|e| ToolsError::Setup(e.to_string()))?;
    // Wait for the poller to see the last probes (or give up after 60 s: reported as missing).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (n_acc, n_seen) = (accepted.lock().unwrap().len(), seen.lock().unwrap().len());
        if n_seen >= 2 * n_acc || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    poller.abort();
    let accepted = accepted.lock().unwrap();
    let seen = seen.lock().unwrap();
    let after_200 = |table: &str| {
        let mut out: Vec<Duration> = accepted
            .iter()
            .map(|(a, t)| {
                seen.get(&(table.to_owned(), a.clone())).map_or(Duration::MAX, |s| s.saturating_duration_since(*t))
            })
            .collect();
        out.sort();
        out
    };
    Ok(EndToEnd { stored: after_200("events"), evaluated: after_200("account_metrics") })
}

/// The running mean of a Prometheus histogram: (sum, count) of `name` in a `/metrics` text.
pub fn histogram_totals(metrics: &str, name: &str) -> (f64, u64) {
    let value = |suffix: &str| {
        let prefix = format!("{name}_{suffix} ");
        metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(0.0)
    };
    (value("sum"), value("count") as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_totals_read_sum_and_count_of_the_named_histogram_only() {
        let text = "# TYPE uptake_aggregator_insert_seconds histogram\n\
                    uptake_aggregator_insert_seconds_bucket{le=\"0.1\"} 3\n\
                    uptake_aggregator_insert_seconds_sum 0.25\n\
                    uptake_aggregator_insert_seconds_count 4\n\
                    uptake_aggregator_evaluation_seconds_sum 9\n\
                    uptake_aggregator_evaluation_seconds_count 2\n";
        assert_eq!(histogram_totals(text, "uptake_aggregator_insert_seconds"), (0.25, 4));
        assert_eq!(histogram_totals(text, "uptake_aggregator_evaluation_seconds"), (9.0, 2));
        assert_eq!(histogram_totals(text, "uptake_missing_seconds"), (0.0, 0));
    }

    #[test]
    fn latency_counts_answers_and_takes_quantiles_of_the_sorted_times() {
        let mut l: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let lat = Latency::from(100, Duration::from_secs(1), &mut l, 3);
        assert_eq!((lat.ok, lat.errors), (100, 3));
        assert_eq!((lat.p50, lat.p99), (Duration::from_millis(51), Duration::from_millis(99)));
        assert!(!lat.sustained(), "errors: not sustained");
    }
}
