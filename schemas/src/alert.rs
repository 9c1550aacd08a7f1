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
    /// Stable per episode: derived from account, rule and the time the episode started.
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
    /// The stable episode id: the same account, rule and start time always give the same id, so
    /// a re-sent alert (e.g. after a crash between publishing and recording it) deduplicates.
    pub fn episode_id(account_id: &str, rule_id: &str, fired_at: DateTime<Utc>) -> String {
        let name = format!("{account_id}\u{1f}{rule_id}\u{1f}{}", fired_at.timestamp());
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
    }
}
