//! Single-event latency, ours beside the broker's: open-loop one-event requests to ingest at
//! fixed rates, and at each listed rate first the raw producer on the same schedule (one event
//! per send, ingest's producer settings), so the table shows what ingest adds to the broker's
//! own acknowledgement time. `bench --latency` runs only this (no aggregator), for tuning.

use std::time::Duration;

use rdkafka::ClientConfig;

use super::load::Ingest;
use super::{data, raw, Names, Options, Report};
use crate::ToolsError;

/// What the single-event phase needs from the run.
pub struct Singles<'a> {
    pub ingest: &'a Ingest,
    pub producer_cfg: &'a ClientConfig,
    /// Where the raw producer writes: in the full run the topic ingest writes to, so the
    /// aggregator consumes (and the broker serves) the raw events too, as it does ingest's —
    /// both sides of the comparison meet the same broker load. Their rows are counted.
    pub raw_topic: &'a str,
    pub run_id: &'a str,
}

/// The listed rates (raw producer, then ingest), then — with `find_max_rate` — the higher rates
/// until one is not sustained. Results go to `r.raw_latency` and `r.latency`.
pub async fn measure(
    s: &Singles<'_>,
    opts: &Options,
    r: &mut Report,
    progress: &impl Fn(&str),
) -> Result<(), ToolsError> {
    let mut rates = opts.rates.clone();
    if opts.find_max_rate {
        rates.extend([2_000, 3_000, 7_500, 10_000, 15_000, 20_000].iter().filter(|r| !opts.rates.contains(r)));
        rates.sort();
    }
    let duration = Duration::from_secs_f64(opts.rate_secs);
    for rate in rates {
        let listed = opts.rates.contains(&rate);
        if !listed && r.latency.iter().any(|l| l.target < rate && !l.sustained()) {
            continue; // past the highest sustainable rate: only the listed rates still run
        }
        // Fresh events (message ids) per run: a repeated id would be deduplicated downstream.
        let count = (rate as f64 * opts.rate_secs) as usize;
        let native = data::native_events(&format!("{}s{rate}", s.run_id), count, opts.accounts);
        if listed {
            progress(&format!("  raw producer, one event per send, {rate}/s for {} s", opts.rate_secs));
            // Message ids of their own: ingest's events must not be deduplicated against them.
            let canonical =
                data::canonical(&data::native_events(&format!("{}r{rate}", s.run_id), count, opts.accounts))?;
            r.raw_latency.push(raw::fixed_rate(s.producer_cfg, s.raw_topic, &canonical, rate, duration).await?);
        }
        progress(&format!("  ingest, one event per request, {rate} req/s for {} s", opts.rate_secs));
        let singles: Vec<bytes::Bytes> = native.iter().map(|e| bytes::Bytes::from(e.to_string())).collect();
        r.latency.push(s.ingest.fixed_rate(&singles, rate, duration).await?);
    }
    Ok(())
}

/// `bench --latency`: only ingest (no aggregator) and the raw producer, at the listed rates.
pub async fn run(opts: &Options, progress: impl Fn(&str)) -> Result<Report, ToolsError> {
    let n = Names::new("bench");
    let mut r = Report { smoke: opts.smoke, ..Report::default() };
    let work = std::env::temp_dir().join(format!("uptake-{}", n.id));
    std::fs::create_dir_all(&work)?;
    super::create_topics(&opts.brokers, &[&n.raw_topic, &n.events_topic, &n.dlq_topic]).await?;
    let (mut ingest, client, cfg) = super::start_ingest(opts, &n, &work).await?;
    let singles =
        Singles { ingest: &client, producer_cfg: &cfg.kafka.to_rdkafka(), raw_topic: &n.raw_topic, run_id: &n.id };
    let measured = measure(&singles, opts, &mut r, &progress).await;
    r.ingest_usage = ingest.usage();
    ingest.stop();
    measured?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(r)
}
