//! Which partitions of the events topic this instance owns, kept current by the consumer
//! group's rebalances ([`OwnershipContext`]) and read by the evaluator and the backtest: an
//! account's metrics and rules are computed only by the instance that owns its partition.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;

use super::lag;
use crate::telemetry::Telemetry;

/// The partitions of the events topic this instance owns, as the consumer group assigned them,
/// and a counter of rebalances. Shared with the evaluator: an account's metrics and rules are
/// computed only by the instance that owns the account's partition.
#[derive(Default)]
pub struct Ownership {
    generation: AtomicU64,
    partitions: Mutex<HashSet<i32>>,
}

impl Ownership {
    /// Ownership of fixed partitions, outside any consumer group: for evaluating stored history
    /// (tests, backtests) without consuming.
    pub fn fixed(partitions: impl IntoIterator<Item = i32>) -> Self {
        Self { generation: AtomicU64::new(0), partitions: Mutex::new(partitions.into_iter().collect()) }
    }

    /// Increases on every rebalance.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The owned partitions, sorted.
    pub fn partitions(&self) -> Vec<i32> {
        let mut p: Vec<i32> = self.partitions.lock().expect("ownership lock poisoned").iter().copied().collect();
        p.sort_unstable();
        p
    }

    /// Replaces the owned partitions, as a rebalance does (tests, and fixed ownership changed
    /// by hand).
    pub fn assign(&self, partitions: impl IntoIterator<Item = i32>) {
        *self.partitions.lock().expect("ownership lock poisoned") = partitions.into_iter().collect();
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// The consumer's context: keeps [`Ownership`] current, and the consumer-lag gauges from
/// librdkafka's statistics.
pub struct OwnershipContext {
    pub(super) topic: String,
    pub(super) ownership: Arc<Ownership>,
    pub(super) metrics: Arc<Telemetry>,
}

impl rdkafka::ClientContext for OwnershipContext {
    fn stats(&self, statistics: Statistics) {
        lag::record(&self.metrics, &statistics, &self.topic);
    }
}

impl ConsumerContext for OwnershipContext {
    fn post_rebalance(&self, _consumer: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut owned = self.ownership.partitions.lock().expect("ownership lock poisoned");
        // The next statistics report fills in the partitions owned now.
        self.metrics.consumer_lag.reset();
        match rebalance {
            // The eager protocol assigns the whole new set and revokes everything before.
            Rebalance::Assign(tpl) => {
                *owned = tpl.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
            }
            Rebalance::Revoke(_) => owned.clear(),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
        self.metrics.partitions_owned.set(owned.len() as i64);
        tracing::info!(partitions = ?owned, "partitions assigned");
        self.ownership.generation.fetch_add(1, Ordering::SeqCst);
    }
}
