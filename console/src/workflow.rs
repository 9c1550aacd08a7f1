//! The alert workflow: a CSM acknowledges, snoozes, assigns or closes an episode. Each action is
//! stored in `alert_actions` (what the console and the aggregator read back) and then published
//! on the alerts topic as a lifecycle record (what webhooks and other consumers see).
//!
//! Stored first: the stored row is the truth the inbox, the notifier and the evaluator act on,
//! so a failed publish never leaves a snooze announced but not in force. A form carries its
//! action id, so re-posting it after a failure stores nothing twice and publishes the same
//! record again (receivers deduplicate on `Alert::record_id`).
//!
//! Time-driven transitions are not the console's: the aggregator's evaluator, which owns each
//! pair, announces a snooze that ran out (`snooze_ended`) and holds re-fires while one runs.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::alert::{Alert, AlertAction, AlertStatus, CloseReason, Severity};
use warehouse::rows::ActionRow;

use crate::store::{FiringRow, Store};
use crate::ConsoleError;
use schemas::runtime::Clock;

/// The longest snooze: a longer silence is a closure.
pub const MAX_SNOOZE_DAYS: i64 = 90;
/// The longest note kept.
pub const MAX_NOTE: usize = 1_000;

/// What a CSM does to an episode.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Acknowledge,
    /// Silenced until the start (00:00 UTC) of `until`.
    Snooze {
        until: NaiveDate,
        note: String,
    },
    Assign {
        assignee: String,
    },
    Close {
        reason: CloseReason,
        note: String,
    },
}

impl Action {
    pub fn status(&self) -> AlertStatus {
        match self {
            Self::Acknowledge => AlertStatus::Acknowledged,
            Self::Snooze { .. } => AlertStatus::Snoozed,
            Self::Assign { .. } => AlertStatus::Assigned,
            Self::Close { .. } => AlertStatus::Closed,
        }
    }
}

#[derive(Clone)]
pub struct Workflow {
    store: Store,
    producer: FutureProducer,
    topic: String,
    clock: Clock,
    /// Who an alert can be assigned to: the console's users.
    users: Vec<String>,
}

pub(crate) fn refused(field: &str, reason: impl Into<String>) -> ConsoleError {
    ConsoleError::Refused { field: field.into(), reason: reason.into() }
}

impl Workflow {
    pub fn new(store: Store, producer: FutureProducer, topic: String, clock: Clock, users: Vec<String>) -> Self {
        Self { store, producer, topic, clock, users }
    }

    /// Checks `action` against the episode and the form, stores it and publishes it. `action_id`
    /// comes from the form (a re-post reuses it); `by` is the signed-in user.
    pub async fn apply(
        &self,
        alert_id: &str,
        action_id: &str,
        by: &str,
        action: Action,
    ) -> Result<ActionRow, ConsoleError> {
        let now = self.clock.now();
        let Some(episode) = self.store.firing(alert_id).await? else {
            return Err(ConsoleError::NotFound(format!("no alert {alert_id:?}")));
        };
        if self.store.closed(alert_id).await? {
            return Err(refused("alert", "it was closed already"));
        }
        let mut action_fields = AlertAction {
            action_id: action_id.to_owned(),
            by: by.to_owned(),
            at: now,
            note: None,
            snoozed_until: None,
            assignee: None,
            close_reason: None,
        };
        match &action {
            Action::Acknowledge => {}
            Action::Snooze { until, note } => {
                if episode.open == 0 {
                    return Err(refused("alert", "it already resolved: there is nothing to snooze"));
                }
                let today = now.date_naive();
                if *until <= today {
                    return Err(refused("until", "must be a day after today"));
                }
                if (*until - today).num_days() > MAX_SNOOZE_DAYS {
                    return Err(refused("until", format!("at most {MAX_SNOOZE_DAYS} days ahead; close it instead")));
                }
                action_fields.snoozed_until = Some(until.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
                action_fields.note = clip(note);
            }
            Action::Assign { assignee } => {
                let Some(user) = self.users.iter().find(|u| u.eq_ignore_ascii_case(assignee)) else {
                    return Err(refused("assignee", "is not a console user"));
                };
                action_fields.assignee = Some(user.clone());
            }
            Action::Close { reason, note } => {
                action_fields.close_reason = Some(*reason);
                action_fields.note = clip(note);
            }
        }
        let record = lifecycle_record(&episode, action.status(), action_fields);
        let row = ActionRow::of(&record, Utc::now()).expect("a lifecycle record has its action");
        self.record_and_publish(&record, &row).await?;
        Ok(row)
    }

    /// Stores `row` unless a re-post already did, then publishes its lifecycle record.
    async fn record_and_publish(&self, record: &Alert, row: &ActionRow) -> Result<(), ConsoleError> {
        if !self.store.action_stored(&row.alert_id, &row.action_id).await? {
            self.store.record_action(row).await?;
        }
        let payload = serde_json::to_vec(record)?;
        let send = FutureRecord::to(&self.topic).key(record.account_id.as_bytes()).payload(&payload);
        self.producer.send(send, Duration::from_secs(10)).await.map_err(|(e, _)| ConsoleError::Kafka(e))?;
        Ok(())
    }
}

/// The note as kept: trimmed, at most [`MAX_NOTE`] characters, `None` when empty.
fn clip(note: &str) -> Option<String> {
    Some(note.trim().chars().take(MAX_NOTE).collect::<String>()).filter(|n| !n.is_empty())
}

/// The lifecycle record announcing `action` on `episode`: the episode's firing record with the
/// action.
pub fn lifecycle_record(episode: &FiringRow, status: AlertStatus, action: AlertAction) -> Alert {
    let some = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
    Alert {
        alert_id: episode.alert_id.clone(),
        account_id: episode.account_id.clone(),
        rule_id: episode.rule_id.clone(),
        severity: Severity::parse(&episode.severity).unwrap_or(Severity::Info),
        status,
        fired_at: DateTime::<Utc>::from_timestamp(i64::from(episode.fired_at), 0).unwrap_or_default(),
        resolved_at: None,
        lifecycle_stage: some(&episode.lifecycle_stage),
        health_score: episode.health_score,
        metrics: serde_json::from_str::<BTreeMap<String, f64>>(&episode.metrics).unwrap_or_default(),
        csm_owner: some(&episode.csm_owner),
        reason: episode.reason.clone(),
        action: Some(action),
        console_url: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn episode() -> FiringRow {
        FiringRow {
            alert_id: "al1".into(),
            account_id: "acme <b>".into(),
            rule_id: "usage_drop".into(),
            severity: "critical".into(),
            fired_at: 1_700_000_000,
            lifecycle_stage: "growth".into(),
            health_score: Some(31.0),
            metrics: r#"{"active_users_7d":3}"#.into(),
            csm_owner: "dana@vendor.example".into(),
            reason: "Weekly active users fell 70 %".into(),
            open: 1,
        }
    }

    #[test]
    fn a_snooze_record_carries_the_action_and_the_episode() {
        let action = AlertAction {
            action_id: "x1".into(),
            by: "dana@vendor.example".into(),
            at: DateTime::from_timestamp_millis(1_700_100_000_250).unwrap(),
            note: Some("QBR on Monday".into()),
            snoozed_until: DateTime::from_timestamp(1_700_200_000, 0),
            assignee: None,
            close_reason: None,
        };
        let alert = lifecycle_record(&episode(), AlertStatus::Snoozed, action);
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.metrics["active_users_7d"], 3.0);
        assert_eq!(alert.record_id(), "al1:snoozed:x1");
        let row = ActionRow::of(&alert, Utc::now()).unwrap();
        assert_eq!((row.action.as_str(), row.note.as_str()), ("snoozed", "QBR on Monday"));
        assert_eq!((row.snoozed_until, row.at_ms), (1_700_200_000, 1_700_100_000_250));
        assert_eq!(row.account_id, "acme <b>");
    }

    #[test]
    fn notes_are_trimmed_and_clipped() {
        assert_eq!(clip("  hi  ").as_deref(), Some("hi"));
        assert_eq!(clip("   "), None);
        assert_eq!(clip(&"é".repeat(5_000)).unwrap().chars().count(), MAX_NOTE);
    }
}
