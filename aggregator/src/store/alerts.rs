//! Alert history: the `alerts` rows the evaluator records, the `alert_pending` rows (since when
//! each rule's condition holds), and the episode state read back from both at start and after a
//! rebalance.

use clickhouse::Row;
use serde::Deserialize;

use super::Store;
use crate::evaluate::episode::{EpisodeHistory, OpenEpisode, Pending};
use crate::AggregatorError;

#[derive(Debug, Row, Deserialize)]
struct HeldRow {
    account_id: String,
    rule_id: String,
    since: u32,
    cleared: u8,
    at: u32,
}

#[derive(Debug, Row, Deserialize)]
struct OpenRow {
    alert_id: String,
    account_id: String,
    rule_id: String,
    fired_at: u32,
}

#[derive(Debug, Row, Deserialize)]
struct HistoryRow {
    account_id: String,
    rule_id: String,
    last_alert_id: String,
    last_resolved: u32,
}

impl Store {
    /// Alert episodes whose latest record is `firing`. A resolved record wins a tie in time.
    /// Only the rules' records count: a lifecycle row someone stored here must not hide an
    /// episode (closures come from `alert_actions`, [`Store::workflow_of`]).
    pub async fn open_episodes(&self) -> Result<Vec<OpenEpisode>, AggregatorError> {
        let sql = "SELECT alert_id, any(account_id) AS account_id, any(rule_id) AS rule_id, min(fired_at) AS fired_at
             FROM {db}.alerts
             WHERE status IN ('firing', 'resolved')
             GROUP BY alert_id
             HAVING argMax(status, toUInt64(recorded_at) * 2 + (status = 'resolved')) = 'firing'";
        let rows: Vec<OpenRow> = self.query(sql).fetch_all().await?;
        Ok(rows
            .into_iter()
            .map(|r| OpenEpisode {
                alert_id: r.alert_id,
                account_id: r.account_id,
                rule_id: r.rule_id,
                fired_at: r.fired_at,
            })
            .collect())
    }

    /// Per (account, rule) with any alert: the latest episode's id and when the latest episode
    /// resolved (0: never). The latest episode is the one with the latest row; at a tie in time
    /// the firing row wins (a new episode's firing can follow the previous resolution within a
    /// second only in that order).
    pub async fn episode_history(&self) -> Result<Vec<EpisodeHistory>, AggregatorError> {
        let sql = "SELECT account_id, rule_id,
                    argMax(alert_id, toUInt64(recorded_at) * 2 + (status = 'firing')) AS last_alert_id,
                    toUInt32(maxIf(recorded_at, status = 'resolved')) AS last_resolved
             FROM {db}.alerts
             WHERE status IN ('firing', 'resolved')
             GROUP BY account_id, rule_id";
        let rows: Vec<HistoryRow> = self.query(sql).fetch_all().await?;
        Ok(rows
            .into_iter()
            .map(|r| EpisodeHistory {
                account_id: r.account_id,
                rule_id: r.rule_id,
                last_alert_id: r.last_alert_id,
                last_resolved: r.last_resolved,
            })
            .collect())
    }

    /// Each pair's latest `alert_pending` state: holding since when, or cleared (and since when
    /// it has been clear, `cleared_at`, which an open episode's `resolve_after` runs from). Read with argMax rather than FINAL, so unmerged parts cannot show an older state; a clear
    /// wins a tie in time (the clock then restarts: an alert later, never earlier).
    pub async fn pending(&self) -> Result<Vec<Pending>, AggregatorError> {
        let sql = "SELECT account_id, rule_id, toUInt32(argMax(since, toUInt64(recorded_at) * 2 + cleared)) AS since,
                    toUInt8(argMax(cleared, toUInt64(recorded_at) * 2 + cleared)) AS is_cleared,
                    toUInt32(argMax(cleared_at, toUInt64(recorded_at) * 2 + cleared)) AS at
             FROM {db}.alert_pending
             GROUP BY account_id, rule_id";
        let rows: Vec<HeldRow> = self.query(sql).fetch_all().await?;
        Ok(rows
            .into_iter()
            .map(|r| Pending {
                account_id: r.account_id,
                rule_id: r.rule_id,
                since: r.since,
                cleared: r.cleared == 1,
                at: r.at,
            })
            .collect())
    }
}
