//! The churn-risk alert: the JSON record on `usage-alerts` and a row of the `alerts` table.
//! Its JSON Schema is `schemas/json/alert.schema.json`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One state change of one alert episode. A firing record and its later resolved record share
/// `alert_id`, so a receiver can match them and deduplicate redeliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable per episode: derived from account, rule and the previous episode of that account
    /// and rule ([`Alert::episode_id`]), so every repeat of the episode's records carries it.
    pub alert_id: String,
    pub account_id: String,
    pub rule_id: String,
    pub severity: Severity,
    pub status: AlertStatus,
    pub fired_at: DateTime<Utc>,
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
    /// onboarding | growth | renewal, when the account's contract dates are known.
    #[serde(default)]
    pub lifecycle_stage: Option<String>,
    #[serde(default)]
    pub health_score: Option<f64>,
    /// The metric values the rule looked at, by metric name.
    pub metrics: BTreeMap<String, f64>,
    /// The account's CSM owner, when its traits name one.
    #[serde(default)]
    pub csm_owner: Option<String>,
    /// One sentence a CSM understands without a dashboard.
    pub reason: String,
}

impl Alert {
    /// The id of an episode of `rule_id` for `account_id`: a pure function of the pair and the
    /// id of the pair's previous episode (`None` for its first). Nothing about the moment the
    /// episode is fired goes in, so a re-fire after any failure before the `alerts` row was
    /// stored — a failed INSERT after the publish, a crash between them, a restart, the account
    /// moving to another instance — gets the same id, and the notifier's ledger and the
    /// receivers' `Idempotency-Key` (`<alert_id>:<status>`) recognise the repeat. Episodes of a
    /// pair follow one another, so each previous id is unique and so is each new one.
    pub fn episode_id(account_id: &str, rule_id: &str, previous: Option<&str>) -> String {
        // Unambiguous read from the right: rule ids and previous ids (UUIDs) have no U+001F.
        let name = format!("{account_id}\u{1f}{rule_id}\u{1f}after\u{1f}{}", previous.unwrap_or(""));
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::Alert;

    #[test]
    fn episode_ids_chain_per_account_and_rule() {
        let first = Alert::episode_id("acme", "quiet", None);
        assert_eq!(first, Alert::episode_id("acme", "quiet", None), "a re-fire gets the same id");
        let second = Alert::episode_id("acme", "quiet", Some(&first));
        assert_ne!(first, second);
        assert_ne!(second, Alert::episode_id("acme", "quiet", Some(&second)));
        assert_ne!(first, Alert::episode_id("acme", "loud", None));
        assert_ne!(first, Alert::episode_id("acme2", "quiet", None));
    }
}
