//! Privacy requests (docs/privacy.md): the subjects a regulation names, the request types, their
//! status, and the suppression record every ingest instance and aggregator follows.
//!
//! The model is Segment's regulations: suppress, suppress-and-delete, delete and unsuppress,
//! each for a list of subjects, asynchronous with an id and a status. A subject is a person (a
//! user id; Segment's `anonymousId` is stored as the user id when no `userId` is sent, so the
//! same kind covers it) or a whole account.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most subjects one request may name: a request is one batch of mutations, and a bound keeps
/// its `IN (…)` lists, its audit record and its suppression burst small.
pub const MAX_SUBJECTS: usize = 1000;

/// What a subject id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A person: matched against `user_id` (which also holds an anonymous id sent without a
    /// user id) and, as text, wherever a sentence of ours names them.
    User,
    /// A whole customer account: every row whose `account_id` is this id.
    Account,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::User => "user",
            SubjectKind::Account => "account",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" | "user_id" | "userId" | "anonymous_id" | "anonymousId" => Some(SubjectKind::User),
            "account" | "account_id" | "accountId" | "group" | "groupId" => Some(SubjectKind::Account),
            _ => None,
        }
    }
}

/// One person or account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subject {
    pub kind: SubjectKind,
    pub id: String,
}

impl Subject {
    pub fn user(id: impl Into<String>) -> Self {
        Self { kind: SubjectKind::User, id: id.into() }
    }

    pub fn account(id: impl Into<String>) -> Self {
        Self { kind: SubjectKind::Account, id: id.into() }
    }

    /// The record key on the suppression topic: one key per subject, so a compacted topic keeps
    /// exactly the subject's latest state.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.id)
    }
}

/// What a regulation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegulationKind {
    /// Stop collecting: new events naming the subject are answered as accepted and never stored.
    Suppress,
    /// Suppress, then delete everything already stored.
    SuppressWithDelete,
    /// Delete everything stored now; later events are collected again.
    Delete,
    /// Lift a suppression.
    Unsuppress,
}

impl RegulationKind {
    pub const ALL: [RegulationKind; 4] = [
        RegulationKind::Suppress,
        RegulationKind::SuppressWithDelete,
        RegulationKind::Delete,
        RegulationKind::Unsuppress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RegulationKind::Suppress => "suppress",
            RegulationKind::SuppressWithDelete => "suppress_with_delete",
            RegulationKind::Delete => "delete",
            RegulationKind::Unsuppress => "unsuppress",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the request changes the suppression list (and with what value).
    pub fn suppression(self) -> Option<bool> {
        match self {
            RegulationKind::Suppress | RegulationKind::SuppressWithDelete => Some(true),
            RegulationKind::Unsuppress => Some(false),
            RegulationKind::Delete => None,
        }
    }

    /// Whether the deletion worker has work to do for it.
    pub fn deletes(self) -> bool {
        matches!(self, RegulationKind::SuppressWithDelete | RegulationKind::Delete)
    }
}

/// Where a regulation is. `received` and `running` are picked up again after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegulationStatus {
    Received,
    Running,
    Finished,
    Failed,
}

impl RegulationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RegulationStatus::Received => "received",
            RegulationStatus::Running => "running",
            RegulationStatus::Finished => "finished",
            RegulationStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Received, Self::Running, Self::Finished, Self::Failed].into_iter().find(|k| k.as_str() == s)
    }
}

/// The value of a record on the suppression topic (key: [`Subject::key`]). The latest record of
/// a key is the subject's state; a record with `suppressed: false`, or an empty value (a
/// tombstone), lifts it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuppressionRecord {
    pub subject: Subject,
    pub suppressed: bool,
    /// The regulation that set this state.
    pub regulation_id: String,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_statuses_round_trip_through_their_names() {
        for k in RegulationKind::ALL {
            assert_eq!(RegulationKind::parse(k.as_str()), Some(k));
        }
        for s in ["received", "running", "finished", "failed"] {
            assert_eq!(RegulationStatus::parse(s).map(RegulationStatus::as_str), Some(s));
        }
        assert_eq!(RegulationKind::parse("erase"), None);
        assert_eq!(SubjectKind::parse("anonymousId"), Some(SubjectKind::User));
        assert_eq!(SubjectKind::parse("groupId"), Some(SubjectKind::Account));
        assert_eq!(SubjectKind::parse("email"), None);
    }

    #[test]
    fn a_record_names_its_subject_by_a_key_of_kind_and_id() {
        assert_eq!(Subject::user("u:1").key(), "user:u:1");
        assert_eq!(Subject::account("acme").key(), "account:acme");
        let rec = SuppressionRecord {
            subject: Subject::user("ann"),
            suppressed: true,
            regulation_id: "r1".into(),
            at: DateTime::from_timestamp(0, 0).unwrap(),
        };
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(
            json,
            r#"{"subject":{"kind":"user","id":"ann"},"suppressed":true,"regulation_id":"r1","at":"1970-01-01T00:00:00Z"}"#
        );
        assert_eq!(serde_json::from_str::<SuppressionRecord>(&json).unwrap(), rec);
    }
}
