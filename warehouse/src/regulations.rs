//! The privacy requests' ledger (`regulations`, `regulation_audit`): every status is a new row,
//! the latest wins (FINAL), so a request's state survives any restart of whoever carries it out.

use crate::rows::{AuditRow, RegulationRow};
use crate::{Warehouse, WarehouseError};

const COLUMNS: &str =
    "regulation_id, kind, subject_kind, subject_ids, requested_by, requested_at, status, detail, updated_at, version";

impl Warehouse {
    /// One request's latest state.
    pub async fn regulation(&self, id: &str) -> Result<Option<RegulationRow>, WarehouseError> {
        Ok(self
            .query(&format!("SELECT {COLUMNS} FROM {{db}}.regulations FINAL WHERE regulation_id = ? LIMIT 1"))
            .bind(id)
            .fetch_optional()
            .await?)
    }

    /// The latest `limit` requests, newest first.
    pub async fn regulations(&self, limit: u64) -> Result<Vec<RegulationRow>, WarehouseError> {
        Ok(self
            .query(&format!(
                "SELECT {COLUMNS} FROM {{db}}.regulations FINAL ORDER BY requested_at DESC, regulation_id LIMIT ?"
            ))
            .bind(limit)
            .fetch_all()
            .await?)
    }

    /// Deletion requests not finished or failed, oldest first: what the worker does next,
    /// including a batch it was running when it stopped.
    pub async fn pending_deletions(&self, limit: u64) -> Result<Vec<RegulationRow>, WarehouseError> {
        Ok(self
            .query(&format!(
                "SELECT {COLUMNS} FROM {{db}}.regulations FINAL \
                 WHERE status IN ('received', 'running') AND kind IN ('delete', 'suppress_with_delete') \
                 ORDER BY requested_at, regulation_id LIMIT ?"
            ))
            .bind(limit)
            .fetch_all()
            .await?)
    }

    /// A request's audit trail, oldest first.
    pub async fn audit_trail(&self, id: &str) -> Result<Vec<AuditRow>, WarehouseError> {
        Ok(self
            .query(
                "SELECT regulation_id, at, actor, action, detail FROM {db}.regulation_audit \
                 WHERE regulation_id = ? ORDER BY at, action",
            )
            .bind(id)
            .fetch_all()
            .await?)
    }
}
