//! Privacy requests as an admin files them (docs/privacy.md): checks the request, records it in
//! `regulations` with an audit row naming who asked, and carries out what is immediate — a
//! suppression or its lifting is published on the suppression topic, which every ingest instance
//! and aggregator follows. Deletions are left `received` for the aggregator's deletion worker.
//! Also the access export: everything held about a person or account as one JSON document.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::privacy::{RegulationKind, RegulationStatus, Subject, SubjectKind, SuppressionRecord, MAX_SUBJECTS};
use schemas::runtime::Clock;
use serde::{Deserialize, Serialize};
use warehouse::columns::to_datetime;
use warehouse::rows::{regulation_version, AuditRow, RegulationRow};
use warehouse::Warehouse;

use crate::workflow::refused;
use crate::ConsoleError;

/// Rows per table an export carries at most: a person's events over years fit; a runaway
/// account is cut, and the document says so.
pub const EXPORT_ROWS_PER_TABLE: u64 = 100_000;

/// A request as the API and the form take it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct NewRequest {
    /// suppress, suppress_with_delete, delete, unsuppress.
    #[serde(rename = "type")]
    pub kind: String,
    /// user (a user id or an anonymous id) or account.
    pub subject_type: String,
    pub ids: Vec<String>,
}

/// A request with its state and audit trail, as the API answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub subject_type: String,
    pub ids: Vec<String>,
    pub requested_by: String,
    pub requested_at: String,
    pub status: String,
    pub detail: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<AuditView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditView {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

pub struct Privacy {
    warehouse: Warehouse,
    producer: FutureProducer,
    topic: String,
    clock: Clock,
}

fn rfc3339(secs: u32) -> String {
    chrono::DateTime::from_timestamp(i64::from(secs), 0).unwrap_or_default().to_rfc3339()
}

impl Privacy {
    pub fn new(warehouse: Warehouse, producer: FutureProducer, topic: String, clock: Clock) -> Self {
        Self { warehouse, producer, topic, clock }
    }

    /// Checks a request: a known type and subject type, 1 to [`MAX_SUBJECTS`] distinct ids that
    /// each pass the id rule every event id does. The error names the field.
    pub fn check(req: &NewRequest) -> Result<(RegulationKind, SubjectKind, Vec<String>), ConsoleError> {
        let kind = RegulationKind::parse(req.kind.trim())
            .ok_or_else(|| refused("type", "must be suppress, suppress_with_delete, delete or unsuppress"))?;
        let subject = SubjectKind::parse(req.subject_type.trim())
            .ok_or_else(|| refused("subject_type", "must be user (user or anonymous id) or account"))?;
        let mut ids: Vec<String> = req.ids.iter().map(|i| i.trim().to_owned()).filter(|i| !i.is_empty()).collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Err(refused("ids", "name at least one id"));
        }
        if ids.len() > MAX_SUBJECTS {
            return Err(refused("ids", format!("at most {MAX_SUBJECTS} ids per request")));
        }
        for (i, id) in ids.iter().enumerate() {
            schemas::limits::check_id(id).map_err(|reason| refused(&format!("ids[{i}]"), reason))?;
        }
        Ok((kind, subject, ids))
    }

    /// Files a request by `actor`. A suppression (or its lifting) is in force on every instance
    /// once this returns: the records are acknowledged by the broker first, and the request is
    /// `finished`. A failed publish leaves it `failed`, said in the error (the caller answers 503).
    pub async fn file(&self, actor: &str, req: &NewRequest) -> Result<RequestView, ConsoleError> {
        let (kind, subject_kind, ids) = Self::check(req)?;
        let now = self.clock.now();
        let mut row = RegulationRow {
            regulation_id: uuid::Uuid::now_v7().to_string(),
            kind: kind.as_str().to_owned(),
            subject_kind: subject_kind.as_str().to_owned(),
            subject_ids: ids.clone(),
            requested_by: actor.to_owned(),
            requested_at: to_datetime(now),
            status: RegulationStatus::Received.as_str().to_owned(),
            detail: String::new(),
            updated_at: to_datetime(now),
            version: regulation_version(now, 0),
        };
        self.warehouse.insert_rows(std::slice::from_ref(&row)).await?;
        let filed = format!("{} of {} {}(s)", kind.as_str(), ids.len(), subject_kind.as_str());
        self.audit(&row.regulation_id, actor, "filed", &filed).await?;
        if let Some(suppressed) = kind.suppression() {
            let subjects: Vec<Subject> = ids.iter().map(|id| Subject { kind: subject_kind, id: id.clone() }).collect();
            let action = if suppressed { "suppressed" } else { "unsuppressed" };
            match self.publish(&row.regulation_id, &subjects, suppressed).await {
                Ok(()) => {
                    let detail = format!("{} subject(s) {action} on {}", subjects.len(), self.topic);
                    self.audit(&row.regulation_id, actor, action, &detail).await?;
                    if !kind.deletes() {
                        row = self.next(row, RegulationStatus::Finished, &detail).await?;
                    }
                }
                Err(e) => {
                    let detail = format!("publishing the suppression failed: {e}");
                    self.audit(&row.regulation_id, actor, "failed", &detail).await?;
                    self.next(row, RegulationStatus::Failed, &detail).await?;
                    return Err(e);
                }
            }
        }
        tracing::info!(regulation = %row.regulation_id, kind = kind.as_str(), subjects = ids.len(), actor, "privacy request filed");
        Ok(view(row, Vec::new()))
    }

    /// One request with its audit trail.
    pub async fn get(&self, id: &str) -> Result<RequestView, ConsoleError> {
        let row =
            self.warehouse.regulation(id).await?.ok_or_else(|| ConsoleError::NotFound(format!("no request {id}")))?;
        let audit = self.warehouse.audit_trail(id).await?;
        Ok(view(row, audit))
    }

    /// The latest requests, newest first.
    pub async fn list(&self, limit: u64) -> Result<Vec<RequestView>, ConsoleError> {
        Ok(self.warehouse.regulations(limit).await?.into_iter().map(|r| view(r, Vec::new())).collect())
    }

    /// Everything held about one subject, as one JSON document (an access request), recorded in
    /// the audit trail under a request of its own.
    pub async fn export(&self, actor: &str, subject: &Subject) -> Result<serde_json::Value, ConsoleError> {
        schemas::limits::check_id(&subject.id).map_err(|reason| refused("id", reason))?;
        let subjects = self.warehouse.subjects(std::slice::from_ref(subject)).await?;
        let tables = self.warehouse.privacy_tables().await?;
        let data = self.warehouse.export(&tables, &subjects, EXPORT_ROWS_PER_TABLE).await?;
        let now = self.clock.now();
        let counts: serde_json::Map<String, serde_json::Value> =
            data.iter().map(|(t, rows)| (t.clone(), rows.len().into())).collect();
        let id = uuid::Uuid::now_v7().to_string();
        let detail = serde_json::to_string(&counts)?;
        self.audit(&id, actor, "exported", &format!("{}:{} {detail}", subject.kind.as_str(), subject.id)).await?;
        Ok(serde_json::json!({
            "subject": subject,
            "generated_at": now.to_rfc3339(),
            "export_id": id,
            "rows_per_table_limit": EXPORT_ROWS_PER_TABLE,
            "note": "Rows of every table that name this subject by id. Aggregate rollups hold no id and are not included (docs/privacy.md).",
            "tables": data,
        }))
    }

    async fn publish(&self, regulation_id: &str, subjects: &[Subject], suppressed: bool) -> Result<(), ConsoleError> {
        let at = self.clock.now();
        let sends = subjects.iter().map(|subject| {
            let record =
                SuppressionRecord { subject: subject.clone(), suppressed, regulation_id: regulation_id.to_owned(), at };
            let (key, payload) = (subject.key(), serde_json::to_vec(&record).unwrap_or_default());
            let producer = self.producer.clone();
            let topic = self.topic.clone();
            async move {
                let record = FutureRecord::to(&topic).key(&key).payload(&payload);
                producer
                    .send(record, Duration::from_secs(10))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| ConsoleError::Kafka(e))
            }
        });
        for sent in futures::future::join_all(sends).await {
            sent?;
        }
        Ok(())
    }

    async fn next(
        &self,
        row: RegulationRow,
        status: RegulationStatus,
        detail: &str,
    ) -> Result<RegulationRow, ConsoleError> {
        let next = row.with_status(status.as_str(), detail, self.clock.now());
        self.warehouse.insert_rows(std::slice::from_ref(&next)).await?;
        Ok(next)
    }

    async fn audit(&self, id: &str, actor: &str, action: &str, detail: &str) -> Result<(), ConsoleError> {
        let row = AuditRow::new(id, actor, action, detail, self.clock.now());
        Ok(self.warehouse.insert_rows(&[row]).await?)
    }
}

fn view(r: RegulationRow, audit: Vec<AuditRow>) -> RequestView {
    RequestView {
        id: r.regulation_id,
        kind: r.kind,
        subject_type: r.subject_kind,
        ids: r.subject_ids,
        requested_by: r.requested_by,
        requested_at: rfc3339(r.requested_at),
        // A `running` row's detail is the worker's working state (the terms it redacts), not
        // for display.
        detail: if r.status == "running" { String::new() } else { r.detail },
        status: r.status,
        updated_at: rfc3339(r.updated_at),
        audit: audit
            .into_iter()
            .map(|a| AuditView { at: rfc3339(a.at), actor: a.actor, action: a.action, detail: a.detail })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(kind: &str, subject: &str, ids: &[&str]) -> NewRequest {
        NewRequest { kind: kind.into(), subject_type: subject.into(), ids: ids.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn a_request_is_checked_field_by_field() {
        let (k, s, ids) = Privacy::check(&req("delete", "user", &[" ann ", "bob", "ann", ""])).unwrap();
        assert_eq!((k, s, ids), (RegulationKind::Delete, SubjectKind::User, vec!["ann".to_owned(), "bob".to_owned()]));
        let field = |r: NewRequest| match Privacy::check(&r) {
            Err(ConsoleError::Refused { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(req("erase", "user", &["a"])), "type");
        assert_eq!(field(req("delete", "email", &["a"])), "subject_type");
        assert_eq!(field(req("delete", "user", &[])), "ids");
        let long = "x".repeat(schemas::limits::MAX_ID_BYTES + 1);
        assert_eq!(field(req("suppress", "account", &["ok", &long])), "ids[1]");
        let many: Vec<String> = (0..=MAX_SUBJECTS).map(|i| format!("u{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(field(req("delete", "user", &many)), "ids");
    }
}
