//! The deletion worker and the retention pass (docs/privacy.md).
//!
//! Requests are filed by the console's admin API into `regulations`; this worker carries out the
//! deletions. A new request is taken at once: marked `running`, with the terms that name its
//! people (so a restart still redacts emails whose traits are already gone). One batch then takes
//! every request whose grace period is over (up to `privacy.batch_requests`), issues at most two mutations
//! per table for all of them (`warehouse::privacy`), waits for ClickHouse to finish, and then
//! verifies: no row of any table may still name a subject. What arrived meanwhile is deleted in
//! another round; after `privacy.rounds` the request fails with the tables that still hold
//! rows. A restart anywhere in between picks `running` requests up again: the mutations are
//! idempotent.
//!
//! Only the instance that owns partition 0 of the events topic works (so one batch runs at a
//! time across the group); a rebalance hands the work over with the partition.

pub mod retention;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use schemas::privacy::{RegulationStatus, Subject, SubjectKind};
use schemas::runtime::Clock;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use warehouse::privacy::Subjects;
use warehouse::rows::{AuditRow, RegulationRow};
use warehouse::Warehouse;

use crate::config::PrivacyConfig;
use crate::consume::Ownership;
use crate::telemetry::Telemetry;
use crate::AggregatorError;

/// Who the audit trail names for the worker's steps.
const ACTOR: &str = "aggregator";

/// What a `running` status row carries: the terms found before anything was deleted.
#[derive(Serialize, Deserialize, Default)]
struct Running {
    terms: Vec<String>,
}

pub struct DeletionWorker {
    warehouse: Warehouse,
    cfg: PrivacyConfig,
    ownership: Arc<Ownership>,
    metrics: Arc<Telemetry>,
    clock: Clock,
}

impl DeletionWorker {
    pub fn new(
        warehouse: Warehouse,
        cfg: PrivacyConfig,
        ownership: Arc<Ownership>,
        metrics: Arc<Telemetry>,
        clock: Clock,
    ) -> Self {
        Self { warehouse, cfg, ownership, metrics, clock }
    }

    /// Runs a batch every `privacy.interval_ms` until shutdown. A failed batch is logged and tried
    /// again at the next interval (its requests are still `received` or `running`).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), AggregatorError> {
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
            if let Err(e) = self.batch().await {
                self.metrics.privacy_failures.inc();
                tracing::warn!(error = %e, "deletion batch failed; retried at the next interval");
            }
        }
    }

    /// Carries out one batch; the number of requests it finished or failed. New requests are
    /// taken at once (`running`, with the terms that name their people while the traits are
    /// still there); their deletion starts when their grace period is over.
    pub async fn batch(&self) -> Result<usize, AggregatorError> {
        let mut pending = self.warehouse.pending_deletions(self.cfg.batch_requests).await?;
        let fresh: Vec<usize> =
            (0..pending.len()).filter(|i| pending[*i].status == RegulationStatus::Received.as_str()).collect();
        if !fresh.is_empty() {
            let subjects: Vec<Subject> = fresh.iter().flat_map(|i| subjects_of(&pending[*i])).collect();
            let terms = self.warehouse.subjects(&subjects).await?.terms;
            let running = serde_json::to_string(&Running { terms }).unwrap_or_default();
            for i in fresh {
                pending[i] = self.status(&pending[i], RegulationStatus::Running, &running).await?;
                self.audit(&pending[i].regulation_id, "running", "taken by the deletion worker").await?;
            }
        }
        let now = self.clock.now().timestamp();
        let grace = i64::try_from(self.cfg.grace().as_secs()).unwrap_or(i64::MAX);
        let due: Vec<RegulationRow> =
            pending.into_iter().filter(|r| i64::from(r.requested_at).saturating_add(grace) <= now).collect();
        if due.is_empty() {
            return Ok(0);
        }
        let subjects: Vec<Subject> = due.iter().flat_map(subjects_of).collect();
        let mut s = self.warehouse.subjects(&subjects).await?;
        // The terms remembered when each request was taken (its traits may be deleted by now).
        for r in &due {
            let taken: Running = serde_json::from_str(&r.detail).unwrap_or_default();
            s.terms.extend(taken.terms);
        }
        s.terms.sort();
        s.terms.dedup();
        let tables = self.warehouse.privacy_tables().await?;
        let found = self.warehouse.rows_naming(&tables, &s).await?;
        let outcome = self.delete_until_verified(&tables, &s).await?;
        let removed = json_counts(&found);
        for r in &due {
            match &outcome {
                Ok(rounds) => {
                    self.audit(&r.regulation_id, "deleted", &removed).await?;
                    let verified = format!("no row names a subject after {rounds} round(s)");
                    self.audit(&r.regulation_id, "verified", &verified).await?;
                    self.status(r, RegulationStatus::Finished, &removed).await?;
                    self.metrics.privacy_requests.with_label_values(&["finished"]).inc();
                }
                Err(left) => {
                    let rounds = self.cfg.rounds;
                    let detail = format!("rows still name a subject after {rounds} rounds: {}", json_counts(left));
                    self.audit(&r.regulation_id, "failed", &detail).await?;
                    self.status(r, RegulationStatus::Failed, &detail).await?;
                    self.metrics.privacy_requests.with_label_values(&["failed"]).inc();
                }
            }
        }
        // The `running` rows held the terms (emails, names): merge them away now that a final
        // status replaces them.
        if let Err(e) = self.warehouse.query("OPTIMIZE TABLE {db}.regulations FINAL").execute().await {
            tracing::warn!(error = %e, "merging the regulations ledger failed");
        }
        tracing::info!(requests = due.len(), tables = found.len(), ok = outcome.is_ok(), "deletion batch done");
        Ok(due.len())
    }

    /// Mutations, wait, verify — up to `rounds` times. `Ok(rounds used)`, or the rows left.
    async fn delete_until_verified(
        &self,
        tables: &[warehouse::privacy::TableColumns],
        s: &Subjects,
    ) -> Result<Result<u32, Vec<(String, u64)>>, AggregatorError> {
        let mut left = Vec::new();
        for round in 1..=self.cfg.rounds {
            self.warehouse.delete_subjects(tables, s).await?;
            self.wait_for_mutations().await?;
            left = self.warehouse.rows_naming(tables, s).await?;
            if left.is_empty() {
                return Ok(Ok(round));
            }
            tracing::info!(round, ?left, "rows still name a subject; another round");
        }
        Ok(Err(left))
    }

    async fn wait_for_mutations(&self) -> Result<(), AggregatorError> {
        let started = Instant::now();
        while self.warehouse.mutations_running().await? > 0 {
            if started.elapsed() > self.cfg.mutation_timeout() {
                return Err(AggregatorError::Task("ClickHouse mutations did not finish in time".into()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        Ok(())
    }

    async fn status(
        &self,
        r: &RegulationRow,
        status: RegulationStatus,
        detail: &str,
    ) -> Result<RegulationRow, AggregatorError> {
        let row = r.with_status(status.as_str(), detail, self.clock.now());
        self.warehouse.insert_rows(std::slice::from_ref(&row)).await?;
        Ok(row)
    }

    async fn audit(&self, id: &str, action: &str, detail: &str) -> Result<(), AggregatorError> {
        let row = AuditRow::new(id, ACTOR, action, detail, self.clock.now());
        Ok(self.warehouse.insert_rows(&[row]).await?)
    }
}

fn subjects_of(r: &RegulationRow) -> Vec<Subject> {
    let Some(kind) = SubjectKind::parse(&r.subject_kind) else { return Vec::new() };
    r.subject_ids.iter().map(|id| Subject { kind, id: id.clone() }).collect()
}

/// `{"events": 12, …}`: the rows per table, as the audit trail records them.
fn json_counts(counts: &[(String, u64)]) -> String {
    let map: BTreeMap<&str, u64> = counts.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    serde_json::to_string(&map).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_its_subjects_and_counts_read_as_json() {
        let r = RegulationRow {
            regulation_id: "r".into(),
            kind: "delete".into(),
            subject_kind: "user".into(),
            subject_ids: vec!["ann".into(), "bob".into()],
            requested_by: "admin".into(),
            requested_at: 0,
            status: "received".into(),
            detail: String::new(),
            updated_at: 0,
            version: 1,
        };
        assert_eq!(subjects_of(&r), vec![Subject::user("ann"), Subject::user("bob")]);
        assert!(subjects_of(&RegulationRow { subject_kind: "email".into(), ..r }).is_empty());
        assert_eq!(json_counts(&[("users".into(), 1), ("events".into(), 12)]), r#"{"events":12,"users":1}"#);
    }
}
