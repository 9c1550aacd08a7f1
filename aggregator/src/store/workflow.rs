//! The CSM workflow the console records (`alert_actions`, migration 013), as the evaluator and
//! the notifier read it (docs/architecture.md#alert-workflow). Both read it by `alert_id`, the
//! table's primary key, so what a read costs follows the episodes asked about, never the history
//! of actions. The expressions are the `alert_workflow` view's, applied to the asked-for episodes
//! before grouping (ClickHouse 18.16 does not push a filter down into a view).

use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::Deserialize;

use super::Store;
use crate::evaluate::episode::Workflow;
use crate::AggregatorError;

/// Episodes per workflow query: keeps the statement far below ClickHouse's `max_query_size`
/// (256 KiB) whatever the number of open episodes.
const IDS_PER_QUERY: usize = 1_000;

/// The latest snooze-related action's `snoozed_until` (0 unless it was a snooze), as in the view.
const SNOOZED_UNTIL: &str = "toUInt32(argMaxIf(snoozed_until, at_ms, action IN ('snoozed', 'snooze_ended', 'closed')))";

#[derive(Debug, Row, Deserialize)]
struct WorkflowRow {
    alert_id: String,
    snoozed_until: u32,
    closed: u8,
    closed_at: u32,
}

impl Store {
    /// The workflow of the episodes `alert_ids` that have any action; the others are absent.
    pub async fn workflow_of(&self, alert_ids: &[String]) -> Result<Vec<Workflow>, AggregatorError> {
        let mut out = Vec::new();
        for ids in alert_ids.chunks(IDS_PER_QUERY) {
            let sql = format!(
                "SELECT alert_id, {SNOOZED_UNTIL} AS snoozed_until,
                        toUInt8(countIf(action = 'closed') > 0) AS closed,
                        toUInt32(maxIf(at, action = 'closed')) AS closed_at
                 FROM {{db}}.alert_actions
                 WHERE alert_id IN ({marks})
                 GROUP BY alert_id",
                marks = vec!["?"; ids.len()].join(", "),
            );
            let query = ids.iter().fold(self.query(&sql), |q, id| q.bind(id.as_str()));
            let rows: Vec<WorkflowRow> = query.fetch_all().await?;
            out.extend(rows.into_iter().map(|r| Workflow {
                alert_id: r.alert_id,
                snoozed_until: r.snoozed_until,
                closed_at: (r.closed == 1).then_some(r.closed_at),
            }));
        }
        Ok(out)
    }

    /// Until when episode `alert_id` was snoozed as of `at` (actions up to then only): seconds
    /// since the epoch, 0 when it was not snoozed. The notifier holds back a record whose own
    /// time falls before it.
    pub async fn snoozed_until_at(&self, alert_id: &str, at: DateTime<Utc>) -> Result<u32, AggregatorError> {
        let sql = format!("SELECT {SNOOZED_UNTIL} FROM {{db}}.alert_actions WHERE alert_id = ? AND at_ms <= ?");
        let at_ms = at.timestamp_millis().max(0) as u64;
        Ok(self.query(&sql).bind(alert_id).bind(at_ms).fetch_one().await?)
    }
}
