//! Evaluation time: one metrics + rules pass over a book of N accounts, as the aggregator's
//! evaluator runs it (the rolling-metrics queries, health, every shipped rule, the
//! `account_metrics` insert and the alerts it publishes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::AggregatorConfig;
use aggregator::{Evaluator, Ownership, PassTimings, Telemetry};
use chrono::Utc;
use rdkafka::producer::FutureProducer;
use schemas::event::{Event, EventKind};
use warehouse::rows::EventRow;
use warehouse::Warehouse;

use crate::ToolsError;

/// Events per account: a month of logins and feature use by a few users, and one account
/// traits event (seats, contract dates), so every metric and rule has input.
const EVENTS_PER_ACCOUNT: usize = 12;

/// Fills `store` (migrated) with accounts `from..to` of the synthetic book, spread over 4
/// partitions of `topic`.
pub async fn fill(store: &Warehouse, topic: &str, from: usize, to: usize) -> Result<(), ToolsError> {
    let now = Utc::now();
    let mut rows = Vec::with_capacity(50_000);
    for a in from..to {
        let account = format!("eval-{a:06}");
        let partition = (a % 4) as i32;
        for i in 0..EVENTS_PER_ACCOUNT {
            let day = chrono::Duration::days(((i * 3 + a) % 30) as i64);
            let (kind, user) = match i {
                0 => (EventKind::Account, String::new()),
                i if i % 3 == 0 => (EventKind::Login, format!("u{}", i % 4)),
                _ => (EventKind::FeatureUsed, format!("u{}", i % 4)),
            };
            let mut e =
                Event::new(kind, format!("eval-{a}-{i}"), account.clone(), user, now - day, now, "bench".into());
            match kind {
                EventKind::Account => {
                    let start = (now - chrono::Duration::days((a % 700) as i64)).date_naive().to_string();
                    let renewal = (now + chrono::Duration::days(365 - (a % 365) as i64)).date_naive().to_string();
                    e.traits.insert("seats".into(), (5 + a % 50).into());
                    e.traits.insert("contract_start".into(), start.into());
                    e.traits.insert("renewal_date".into(), renewal.into());
                }
                EventKind::FeatureUsed => {
                    e.feature = Some(["reports", "exports", "api", "sso"][i % 4].into());
                    e.count = Some(1);
                }
                _ => {}
            }
            rows.push(EventRow::new(e, topic, partition, (a * EVENTS_PER_ACCOUNT + i) as i64));
            if rows.len() == 50_000 {
                store.insert_rows(&rows).await?;
                rows.clear();
            }
        }
    }
    if !rows.is_empty() {
        store.insert_rows(&rows).await?;
    }
    Ok(())
}

/// One pass's duration, the accounts it evaluated and where the time went.
pub type Timed = (Duration, usize, PassTimings);

/// An evaluator owning `partitions` of `cfg`'s database, as an aggregator instance runs it.
pub fn evaluator(
    cfg: &AggregatorConfig,
    store: &Warehouse,
    producer: &FutureProducer,
    partitions: &[i32],
) -> Result<Evaluator, ToolsError> {
    let ownership = Arc::new(Ownership::fixed(partitions.iter().copied()));
    let rules = aggregator::RuleSet::load(cfg.rules_file.as_deref())?;
    Ok(Evaluator::live(cfg, rules, store.clone(), producer.clone(), Arc::new(Telemetry::new()), ownership))
}

/// The evaluator's next pass, timed; `full` says whether it must cover every account.
pub async fn timed(evaluator: &mut Evaluator, full: bool) -> Result<Timed, ToolsError> {
    let started = Instant::now();
    let report = evaluator.evaluate(Utc::now()).await?;
    if report.full != full {
        return Err(ToolsError::Setup(format!("expected a {} pass", if full { "full" } else { "incremental" })));
    }
    Ok((started.elapsed(), report.accounts, report.timings))
}

/// The first (full) pass of a fresh evaluator over the accounts of `partitions`.
pub async fn pass(
    cfg: &AggregatorConfig,
    store: &Warehouse,
    producer: &FutureProducer,
    partitions: &[i32],
) -> Result<Timed, ToolsError> {
    timed(&mut evaluator(cfg, store, producer, partitions)?, true).await
}

/// A login now for each of `accounts` (with its partition; stored as the aggregator stores
/// events): what makes them the changed accounts of the next incremental pass.
pub async fn touch(store: &Warehouse, topic: &str, accounts: &[(String, i32)]) -> Result<(), ToolsError> {
    let now = Utc::now();
    let rows: Vec<EventRow> = accounts
        .iter()
        .enumerate()
        .map(|(i, (a, partition))| {
            let e =
                Event::new(EventKind::Login, format!("touch-{i}"), a.clone(), "u0".into(), now, now, "bench".into());
            EventRow::new(e, topic, *partition, i as i64)
        })
        .collect();
    Ok(store.insert_rows(&rows).await?)
}
