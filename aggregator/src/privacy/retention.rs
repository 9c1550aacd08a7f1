//! The retention pass (docs/privacy.md#retention): on ClickHouse 18.16, whole partitions past
//! their class's limit are dropped every `retention.interval_ms`; on a current server the limits
//! are set once as each table's `TTL` and the server expires rows itself. Run by the instance
//! that owns partition 0, like the deletion worker.

use std::sync::Arc;

use schemas::runtime::Clock;
use tokio::sync::watch;
use warehouse::retention::Dropped;
use warehouse::Warehouse;

use crate::config::{RetentionConfig, RetentionMode};
use crate::consume::Ownership;
use crate::telemetry::Telemetry;
use crate::AggregatorError;

/// The first server major version with `TTL`.
const TTL_SINCE: u32 = 20;

pub struct Retention {
    warehouse: Warehouse,
    cfg: RetentionConfig,
    ownership: Arc<Ownership>,
    metrics: Arc<Telemetry>,
    clock: Clock,
}

impl Retention {
    pub fn new(
        warehouse: Warehouse,
        cfg: RetentionConfig,
        ownership: Arc<Ownership>,
        metrics: Arc<Telemetry>,
        clock: Clock,
    ) -> Self {
        Self { warehouse, cfg, ownership, metrics, clock }
    }

    /// The mode in force on this server (`auto` resolved).
    pub async fn mode(&self) -> Result<RetentionMode, AggregatorError> {
        Ok(match self.cfg.mode {
            RetentionMode::Auto if self.warehouse.server_major().await? >= TTL_SINCE => RetentionMode::Ttl,
            RetentionMode::Auto => RetentionMode::Partitions,
            m => m,
        })
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), AggregatorError> {
        let mode = loop {
            match self.mode().await {
                Ok(m) => break m,
                Err(e) => tracing::warn!(error = %e, "retention: reading the server version; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        };
        tracing::info!(?mode, limits = ?self.cfg.limits(), "retention");
        if mode == RetentionMode::Ttl {
            // Idempotent, and the same on every instance: no ownership needed.
            for s in self.warehouse.ttl_statements(&self.cfg.limits()) {
                if let Err(e) = self.warehouse.client().query(&s).execute().await {
                    tracing::warn!(statement = s, error = %e, "retention: setting a TTL failed");
                }
            }
        }
        if mode != RetentionMode::Partitions {
            let _ = shutdown.changed().await;
            return Ok(());
        }
        let mut tick = tokio::time::interval(self.cfg.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return Ok(()),
            }
            if !self.ownership.partitions().contains(&0) {
                continue;
            }
            match self.pass().await {
                Ok(dropped) if !dropped.is_empty() => tracing::info!(?dropped, "retention: partitions dropped"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention pass failed; retried at the next interval"),
            }
        }
    }

    /// One pass of the `partitions` mode at the clock's today.
    pub async fn pass(&self) -> Result<Vec<Dropped>, AggregatorError> {
        let today = self.clock.now().date_naive();
        let dropped = self.warehouse.drop_expired_partitions(&self.cfg.limits(), today).await?;
        self.metrics.retention_dropped.inc_by(dropped.len() as u64);
        Ok(dropped)
    }
}
