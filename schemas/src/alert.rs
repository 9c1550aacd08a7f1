//! The churn-risk alert: the JSON record on `usage-alerts` and a row of the `alerts` table.
//! Its JSON Schema is `schemas/json/alert.schema.json`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Self::Info, Self::Warning, Self::Critical];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// What a record says happened to its episode. `firing` and `resolved` come from the rules;
/// the others are lifecycle records of the CSM workflow (the console), each with an [`AlertAction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
    /// A CSM saw it and is on it.
    Acknowledged,
    /// Silenced until `action.snoozed_until`: no notification and no re-fire of the pair before.
    Snoozed,
    /// A snooze ran out while the episode was still open (published by uptake, `action.by` = "uptake").
    SnoozeEnded,
    /// Handed to another CSM (`action.assignee`).
    Assigned,
    /// Worked and closed with a reason (`action.close_reason`); the episode is over.
    Closed,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 7] = [
        Self::Firing,
        Self::Resolved,
        Self::Acknowledged,
        Self::Snoozed,
        Self::SnoozeEnded,
        Self::Assigned,
        Self::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
            Self::Acknowledged => "acknowledged",
            Self::Snoozed => "snoozed",
            Self::SnoozeEnded => "snooze_ended",
            Self::Assigned => "assigned",
            Self::Closed => "closed",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether records of this status come from the CSM workflow rather than the rules.
    pub fn is_lifecycle(self) -> bool {
        !matches!(self, Self::Firing | Self::Resolved)
    }
}

/// Why a CSM closed an alert. `churned` and `saved` are also recorded as the account's outcome
/// for the scored backtest (the `account_outcomes` view).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Reached the customer; nothing more to do on this episode.
    Contacted,
    /// The signal was wrong: the account is fine.
    FalseAlarm,
    /// The account was at risk and the CSM turned it around.
    Saved,
    /// The customer left.
    Churned,
}

impl CloseReason {
    pub const ALL: [CloseReason; 4] = [Self::Contacted, Self::FalseAlarm, Self::Saved, Self::Churned];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contacted => "contacted",
            Self::FalseAlarm => "false_alarm",
            Self::Saved => "saved",
            Self::Churned => "churned",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Contacted => "contacted",
            Self::FalseAlarm => "false alarm",
            Self::Saved => "saved",
            Self::Churned => "churned",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// What a CSM (or uptake, for `snooze_ended`) did to an episode: carried by lifecycle records and
/// stored as a row of the `alert_actions` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertAction {
    /// Unique per action (UUID v7, or derived from the snooze for `snooze_ended`): deduplicate
    /// lifecycle records on it.
    pub action_id: String,
    /// The console user who acted, or "uptake".
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snoozed_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<CloseReason>,
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
    /// Lifecycle records only: the CSM action this record announces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<AlertAction>,
    /// The account's page in the console, when a console base URL is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
}

impl Alert {
    /// Identifies one record for deduplication: `alert_id:status`, plus the action id for
    /// lifecycle records (an episode can be assigned or snoozed more than once).
    pub fn record_id(&self) -> String {
        match &self.action {
            Some(a) => format!("{}:{}:{}", self.alert_id, self.status.as_str(), a.action_id),
            None => format!("{}:{}", self.alert_id, self.status.as_str()),
        }
    }

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
