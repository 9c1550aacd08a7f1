//! The canonical usage event: the one shape on the `usage-events` topic, whatever API it came in by.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::outcome::Outcome;

/// What happened. The kinds are the customer-success signals of docs/architecture.md#the-customer-success-model: deployment (logins,
/// users), adoption (feature use), value (data accumulated) and experience (surveys, tickets),
/// plus the account and user traits the metrics are measured against (seats, contract dates, CSM),
/// and the recorded outcomes (churned, renewed, contracted) the rules are scored against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Login,
    FeatureUsed,
    DataVolume,
    Survey,
    SupportTicket,
    Account,
    User,
    Outcome,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        Self::Login,
        Self::FeatureUsed,
        Self::DataVolume,
        Self::Survey,
        Self::SupportTicket,
        Self::Account,
        Self::User,
        Self::Outcome,
    ];

    /// The wire name, as used in the native API, on the topic and in ClickHouse.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::FeatureUsed => "feature_used",
            Self::DataVolume => "data_volume",
            Self::Survey => "survey",
            Self::SupportTicket => "support_ticket",
            Self::Account => "account",
            Self::User => "user",
            Self::Outcome => "outcome",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// Status of a support ticket event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    Opened,
    Closed,
}

/// A validated event, normalised from the native API or the Segment spec.
///
/// Optional measures are `None` when the kind does not carry them, so a consumer never confuses
/// "not reported" with zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Client-supplied idempotency key (UUIDv7 assigned at ingest when missing). Retries reuse it.
    pub message_id: String,
    /// The customer account (Segment "group") the event is attributed to; empty when unattributed.
    pub account_id: String,
    /// The end user; empty for account-level events.
    pub user_id: String,
    pub kind: EventKind,
    /// The event name as sent (Segment track name); equals the kind name for native events.
    pub event: String,
    /// Event time, corrected and clamped by ingest.
    pub timestamp: DateTime<Utc>,
    /// When ingest received it.
    pub received_at: DateTime<Utc>,
    /// The `source` named by the write key that sent it.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// How many uses a `feature_used` event stands for (≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// What kind of data a `data_volume` event counts (e.g. "contacts").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nps: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_status: Option<TicketStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// What an `outcome` event records; its date is the event's `timestamp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Account or user traits (`account` / `user` kinds): plan, seats, contract dates, CSM owner…
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub traits: Map<String, Value>,
    /// Free-form properties, kept verbatim for analysts.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
}

impl Event {
    /// An event of `kind` with no kind-specific measures, traits or properties yet.
    pub fn new(
        kind: EventKind,
        message_id: String,
        account_id: String,
        user_id: String,
        timestamp: DateTime<Utc>,
        received_at: DateTime<Utc>,
        source: String,
    ) -> Self {
        Self {
            message_id,
            account_id,
            user_id,
            kind,
            event: kind.as_str().to_owned(),
            timestamp,
            received_at,
            source,
            feature: None,
            module: None,
            count: None,
            records: None,
            bytes: None,
            object: None,
            nps: None,
            csat: None,
            ticket_id: None,
            ticket_status: None,
            priority: None,
            outcome: None,
            traits: Map::new(),
            properties: Map::new(),
        }
    }

    /// The Kafka key: the account id, so one account's events stay in order on one partition;
    /// the user id when unattributed, so they are at least ordered per user.
    pub fn partition_key(&self) -> &str {
        if self.account_id.is_empty() {
            &self.user_id
        } else {
            &self.account_id
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kind as usize` indexes per-kind tallies (ingest's accepted-events counter).
    #[test]
    fn all_lists_the_kinds_in_declaration_order() {
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i);
        }
    }
}
