//! One row type per table that uptake writes, each naming its table once ([`Table`]). The
//! services build their rows here and read them back with the same types, so a column is spelled in
//! one struct and the DDL of `warehouse/sql`.
//!
//! Validation is off in the client (`with_validation(false)`: the crate's schema probes use
//! formats ClickHouse 18.16 lacks), so these structs must match the DDL by hand; the end-to-end
//! tests read every written column back from the real server to hold them to it. The account
//! metrics row is the aggregator's (its columns are generated from the metric catalogue) and
//! takes its table name through the same trait.

use chrono::{DateTime, NaiveDate, Utc};
use clickhouse::Row;
use schemas::alert::Alert;
use schemas::event::Event;
use serde::{Deserialize, Serialize};

use crate::columns::{date_number, to_datetime};
use crate::WarehouseError;

/// A row type and the table it is stored in: the one place each table's name is written for
/// inserts ([`Warehouse::insert_rows`](crate::Warehouse::insert_rows) takes it from the row type), so no call site spells it.
pub trait Table: clickhouse::RowOwned + clickhouse::RowWrite {
    /// The table, in the configured database.
    const TABLE: &'static str;
}

/// `Table` for each row type: its table name, once.
macro_rules! tables {
    ($($row:ty => $name:literal),* $(,)?) => {
        $(impl Table for $row {
            const TABLE: &'static str = $name;
        })*
    };
}

tables! {
    EventRow => "events",
    NotificationRow => "notifications",
    AlertRow => "alerts",
    PendingRow => "alert_pending",
    ActionRow => "alert_actions",
    HealthDayRow => "account_health_daily",
    BacktestScoreRow => "backtest_scores",
    RegulationRow => "regulations",
    AuditRow => "regulation_audit",
}

/// One row of `events`.
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct EventRow {
    pub message_id: String,
    pub account_id: String,
    pub user_id: String,
    pub kind: String,
    pub event: String,
    pub feature: String,
    pub module: String,
    pub uses: u64,
    pub records: u64,
    pub bytes: u64,
    pub object: String,
    pub nps: Option<u8>,
    pub csat: Option<u8>,
    pub ticket_id: String,
    pub ticket_status: String,
    pub priority: String,
    /// `churned`, `renewed` or `contracted` on `outcome` events; '' otherwise (migration 008).
    pub outcome: String,
    pub timestamp: u32,
    pub received_at: u32,
    pub source: String,
    pub traits: String,
    pub properties: String,
    pub kafka_topic: String,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
}

fn json_or_empty(map: &serde_json::Map<String, serde_json::Value>) -> String {
    if map.is_empty() {
        String::new()
    } else {
        serde_json::Value::Object(map.clone()).to_string()
    }
}

impl EventRow {
    pub fn new(e: Event, topic: &str, partition: i32, offset: i64) -> Self {
        Self {
            kind: e.kind.as_str().to_owned(),
            uses: e.count.unwrap_or(0),
            records: e.records.unwrap_or(0),
            bytes: e.bytes.unwrap_or(0),
            ticket_status: e.ticket_status.map(|s| format!("{s:?}").to_lowercase()).unwrap_or_default(),
            timestamp: to_datetime(e.timestamp),
            received_at: to_datetime(e.received_at),
            traits: json_or_empty(&e.traits),
            properties: json_or_empty(&e.properties),
            feature: e.feature.unwrap_or_default(),
            module: e.module.unwrap_or_default(),
            object: e.object.unwrap_or_default(),
            ticket_id: e.ticket_id.unwrap_or_default(),
            priority: e.priority.unwrap_or_default(),
            outcome: e.outcome.map(|o| o.as_str().to_owned()).unwrap_or_default(),
            nps: e.nps,
            csat: e.csat,
            message_id: e.message_id,
            account_id: e.account_id,
            user_id: e.user_id,
            event: e.event,
            source: e.source,
            kafka_topic: topic.to_owned(),
            kafka_partition: partition,
            kafka_offset: offset,
        }
    }
}

/// One row of `notifications`: an alert record delivered to (or parked for) one webhook.
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct NotificationRow {
    pub delivery_id: String,
    pub alert_id: String,
    pub status: String,
    pub webhook: String,
    pub account_id: String,
    pub rule_id: String,
    pub severity: String,
    /// `delivered`, `dead_lettered`, or `snoozed` (held back: its episode was snoozed).
    pub outcome: String,
    pub attempts: u32,
    pub error: String,
    pub recorded_at: u32,
}

/// One row of `alerts`.
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct AlertRow {
    pub alert_id: String,
    pub account_id: String,
    pub rule_id: String,
    pub severity: String,
    pub status: String,
    pub fired_at: u32,
    pub resolved_at: Option<u32>,
    pub recorded_at: u32,
    pub lifecycle_stage: String,
    pub health_score: Option<f64>,
    pub metrics: String,
    pub csm_owner: String,
    pub reason: String,
}

impl AlertRow {
    /// The row of `alert`, recorded at `now`.
    pub fn new(alert: &Alert, now: DateTime<Utc>) -> Result<Self, WarehouseError> {
        Ok(Self {
            alert_id: alert.alert_id.clone(),
            account_id: alert.account_id.clone(),
            rule_id: alert.rule_id.clone(),
            severity: alert.severity.as_str().to_owned(),
            status: alert.status.as_str().to_owned(),
            fired_at: to_datetime(alert.fired_at),
            resolved_at: alert.resolved_at.map(to_datetime),
            recorded_at: to_datetime(now),
            lifecycle_stage: alert.lifecycle_stage.clone().unwrap_or_default(),
            health_score: alert.health_score,
            metrics: serde_json::to_string(&alert.metrics).map_err(schemas::SchemaError::from)?,
            csm_owner: alert.csm_owner.clone().unwrap_or_default(),
            reason: alert.reason.clone(),
        })
    }
}

/// One row of `alert_pending`: a change of one pair's pending state, recorded at a pass's time.
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct PendingRow {
    pub account_id: String,
    pub rule_id: String,
    pub since: u32,
    pub cleared: u8,
    pub recorded_at: u32,
    /// For a clear: since when the condition has been clear (which may be an earlier day's
    /// end, found in the history); else `recorded_at`.
    pub cleared_at: u32,
}

/// One row of `alert_actions`: what a lifecycle record announces.
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct ActionRow {
    pub action_id: String,
    pub alert_id: String,
    pub account_id: String,
    pub rule_id: String,
    pub action: String,
    pub actor: String,
    pub at: u32,
    /// Milliseconds since the epoch: orders actions within a second.
    pub at_ms: u64,
    pub note: String,
    /// 0 unless `action` is `snoozed`.
    pub snoozed_until: u32,
    pub assignee: String,
    pub close_reason: String,
    pub recorded_at: u32,
}

impl ActionRow {
    /// The row of a lifecycle record, recorded at `now`; `None` for a firing or resolved record.
    pub fn of(alert: &Alert, now: DateTime<Utc>) -> Option<Self> {
        let action = alert.action.as_ref().filter(|_| alert.status.is_lifecycle())?;
        Some(Self {
            action_id: action.action_id.clone(),
            alert_id: alert.alert_id.clone(),
            account_id: alert.account_id.clone(),
            rule_id: alert.rule_id.clone(),
            action: alert.status.as_str().to_owned(),
            actor: action.by.clone(),
            at: to_datetime(action.at),
            at_ms: action.at.timestamp_millis().max(0) as u64,
            note: action.note.clone().unwrap_or_default(),
            snoozed_until: action.snoozed_until.map_or(0, to_datetime),
            assignee: action.assignee.clone().unwrap_or_default(),
            close_reason: action.close_reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
            recorded_at: to_datetime(now),
        })
    }
}

/// One row of `account_health_daily`: the score, band, components and key metrics of a day.
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct HealthDayRow {
    pub account_id: String,
    pub day: u16,
    pub computed_at: u32,
    pub lifecycle_stage: String,
    pub health_score: Option<f64>,
    pub health_band: String,
    pub health_deployment: Option<f64>,
    pub health_adoption: Option<f64>,
    pub health_trend: Option<f64>,
    pub health_value: Option<f64>,
    pub health_experience: Option<f64>,
    pub health_weakest: String,
    pub health_cap: String,
    pub active_users_7d: u64,
    pub active_users_30d: u64,
    pub active_user_days_7d: u64,
    pub active_user_days_vs_baseline: Option<f64>,
    pub logins_7d: u64,
    pub features_used_30d: u64,
    pub records_30d: u64,
    pub seat_utilisation: Option<f64>,
    pub days_since_last_activity: Option<u32>,
    pub latest_nps: Option<u8>,
    pub open_tickets: u64,
}

/// One row of `backtest_scores`.
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct BacktestScoreRow {
    pub scored_at: u32,
    pub from_day: u16,
    pub to_day: u16,
    pub horizon_days: u32,
    /// Hex SHA-256 of the rule file's text: which rule set was scored.
    pub rules_digest: String,
    /// The score as `backtest --score --json` prints it.
    pub score: String,
}

impl BacktestScoreRow {
    pub fn new(
        scored_at: DateTime<Utc>,
        (from, to): (NaiveDate, NaiveDate),
        horizon_days: u32,
        rules_digest: String,
        score: String,
    ) -> Self {
        Self {
            scored_at: to_datetime(scored_at),
            from_day: date_number(from),
            to_day: date_number(to),
            horizon_days,
            rules_digest,
            score,
        }
    }
}

/// One status of a privacy request (`regulations`, read with FINAL: the highest `version` wins).
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct RegulationRow {
    pub regulation_id: String,
    pub kind: String,
    pub subject_kind: String,
    pub subject_ids: Vec<String>,
    pub requested_by: String,
    pub requested_at: u32,
    pub status: String,
    /// What happened, in a sentence or JSON (rows removed per table, the error).
    pub detail: String,
    pub updated_at: u32,
    pub version: u64,
}

impl RegulationRow {
    /// The same request in `status` at `now`: a new row that outranks this one under FINAL.
    pub fn with_status(&self, status: &str, detail: &str, now: DateTime<Utc>) -> Self {
        Self {
            status: status.to_owned(),
            detail: detail.to_owned(),
            updated_at: to_datetime(now),
            version: regulation_version(now, self.version),
            ..self.clone()
        }
    }
}

/// A status row's version: microseconds of `now`, and always above the row it replaces (two
/// steps can fall within one clock tick).
pub fn regulation_version(now: DateTime<Utc>, previous: u64) -> u64 {
    (now.timestamp_micros().max(0) as u64).max(previous + 1)
}

/// One step of a privacy request (`regulation_audit`).
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct AuditRow {
    pub regulation_id: String,
    pub at: u32,
    /// Who: the admin who filed it, or the service that carried it out.
    pub actor: String,
    pub action: String,
    pub detail: String,
}

impl AuditRow {
    pub fn new(regulation_id: &str, actor: &str, action: &str, detail: &str, now: DateTime<Utc>) -> Self {
        Self {
            regulation_id: regulation_id.to_owned(),
            at: to_datetime(now),
            actor: actor.to_owned(),
            action: action.to_owned(),
            detail: detail.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_status_always_outranks_the_one_it_replaces() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(regulation_version(now, 0), 1_700_000_000_000_000);
        assert_eq!(regulation_version(now, 1_700_000_000_000_000), 1_700_000_000_000_001);
        let later = now + chrono::Duration::seconds(1);
        assert_eq!(regulation_version(later, 1_700_000_000_000_005), 1_700_000_001_000_000);
    }
}
