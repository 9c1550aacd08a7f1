//! The `[privacy]` and `[retention]` sections: how deletion requests are carried out, and how
//! long each class of data is kept (docs/privacy.md; the worker is `crate::privacy`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warehouse::retention::Limits;

use crate::AggregatorError;

/// The deletion worker. One aggregator instance runs it at a time: the one that owns partition 0
/// of the events topic (a rebalance hands it over with the partition).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// How often the worker looks for deletion requests.
    pub interval_ms: u64,
    /// How long after a request was filed its deletion starts. Events acknowledged before the
    /// request may still be on their way through Kafka; waiting out the consumer's usual delay
    /// deletes them in the same batch, and requests filed meanwhile join it (one batch of
    /// mutations for all). Whatever arrives later is found by the verification and deleted
    /// in another round.
    pub grace_ms: u64,
    /// Most requests carried out by one batch of mutations.
    pub batch_requests: u64,
    /// Deletion rounds (mutations, then verification) before a request is marked failed.
    pub rounds: u32,
    /// How long one round may wait for ClickHouse to finish its mutations.
    pub mutation_timeout_ms: u64,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self { interval_ms: 10_000, grace_ms: 60_000, batch_requests: 100, rounds: 3, mutation_timeout_ms: 900_000 }
    }
}

impl PrivacyConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms)
    }

    pub fn mutation_timeout(&self) -> Duration {
        Duration::from_millis(self.mutation_timeout_ms)
    }

    pub(crate) fn validate(&self) -> Result<(), AggregatorError> {
        if self.interval_ms < 100 {
            return bad("privacy.interval_ms", "must be at least 100");
        }
        if self.batch_requests == 0 || self.rounds == 0 {
            return bad("privacy", "batch_requests and rounds must be at least 1");
        }
        if self.mutation_timeout_ms < 1_000 {
            return bad("privacy.mutation_timeout_ms", "must be at least 1000");
        }
        Ok(())
    }
}

/// How old data is removed: whole partitions on ClickHouse 18.16, a `TTL` on current servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetentionMode {
    /// `ttl` when the server has it (version 20 or later), else `partitions`.
    Auto,
    /// Drop each partition once all of it is past the limit (up to a month longer than the limit).
    Partitions,
    /// `ALTER TABLE … MODIFY TTL` at start-up: rows expire on the day.
    Ttl,
    /// Keep everything.
    Off,
}

/// How long each class of data is kept, in days. The minimums are what the metrics need: the
/// baselines read 8 weeks before the current one and the windows two 64-day blocks of member
/// activity, so health history cannot go below 120 days.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    pub mode: RetentionMode,
    /// Raw events (`events`). At least 35: the consumer finds where each partition's stored
    /// data ends from the newest events.
    pub raw_events_days: u32,
    /// The daily rollups the metrics and the console's history read (`account_daily`,
    /// `account_members`, `account_csat_daily`, `account_health_daily`). At least 120.
    pub health_history_days: u32,
    /// Alerts and their workflow (`alerts`, `alert_actions`). At least 90: an episode's
    /// records and the cooldown after it are read back.
    pub alerts_days: u32,
    /// How often partitions are checked (`partitions` mode).
    pub interval_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            mode: RetentionMode::Auto,
            raw_events_days: 395,
            health_history_days: 760,
            alerts_days: 760,
            interval_ms: 3_600_000,
        }
    }
}

impl RetentionConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            raw_events_days: self.raw_events_days,
            health_history_days: self.health_history_days,
            alerts_days: self.alerts_days,
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    pub(crate) fn validate(&self) -> Result<(), AggregatorError> {
        for (key, value, min) in [
            ("retention.raw_events_days", self.raw_events_days, 35),
            ("retention.health_history_days", self.health_history_days, 120),
            ("retention.alerts_days", self.alerts_days, 90),
        ] {
            if value < min {
                return bad(key, &format!("must be at least {min} (docs/privacy.md#retention)"));
            }
        }
        if self.interval_ms < 1_000 {
            return bad("retention.interval_ms", "must be at least 1000");
        }
        Ok(())
    }
}

fn bad(key: &str, reason: &str) -> Result<(), AggregatorError> {
    Err(AggregatorError::Config { key: key.into(), reason: reason.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_below_what_the_metrics_need_are_refused_by_key() {
        assert!(RetentionConfig::default().validate().is_ok());
        assert!(PrivacyConfig::default().validate().is_ok());
        let short = RetentionConfig { health_history_days: 90, ..Default::default() };
        let err = short.validate().unwrap_err().to_string();
        assert!(err.contains("retention.health_history_days") && err.contains("120"), "{err}");
        let raw = RetentionConfig { raw_events_days: 7, ..Default::default() };
        assert!(raw.validate().unwrap_err().to_string().contains("raw_events_days"));
        let none = PrivacyConfig { rounds: 0, ..Default::default() };
        assert!(none.validate().is_err());
    }
}
