//! The ClickHouse schema as versioned migrations (`warehouse/sql/NNN_name.sql`).
//!
//! The SQL names tables as `{db}.table`; [`Migration::statements`] puts the configured database in,
//! so tests can run isolated databases side by side. Every statement must run on ClickHouse 18.16
//! (Debian's package, our local server) and on current ClickHouse.

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    sql: &'static str,
}

/// All migrations, oldest first. Append only: an applied migration is never edited.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "events", sql: include_str!("../sql/001_events.sql") },
    Migration { version: 2, name: "account_daily", sql: include_str!("../sql/002_account_daily.sql") },
    Migration { version: 3, name: "metrics_alerts", sql: include_str!("../sql/003_metrics_alerts.sql") },
    Migration { version: 4, name: "account_partitions", sql: include_str!("../sql/004_account_partitions.sql") },
    Migration { version: 5, name: "account_metrics_v2", sql: include_str!("../sql/005_account_metrics_v2.sql") },
    Migration { version: 6, name: "notifications", sql: include_str!("../sql/006_notifications.sql") },
    Migration { version: 7, name: "account_daily_utc", sql: include_str!("../sql/007_account_daily_utc.sql") },
    Migration { version: 8, name: "outcomes", sql: include_str!("../sql/008_outcomes.sql") },
    Migration { version: 9, name: "open_alerts", sql: include_str!("../sql/009_open_alerts.sql") },
    Migration { version: 10, name: "alert_pending", sql: include_str!("../sql/010_alert_pending.sql") },
    Migration {
        version: 11,
        name: "baselines_health_history",
        sql: include_str!("../sql/011_baselines_health_history.sql"),
    },
    Migration { version: 12, name: "bounded_windows", sql: include_str!("../sql/012_bounded_windows.sql") },
    Migration { version: 13, name: "alert_workflow", sql: include_str!("../sql/013_alert_workflow.sql") },
    Migration { version: 14, name: "pending_cleared_at", sql: include_str!("../sql/014_pending_cleared_at.sql") },
    Migration { version: 15, name: "people_and_evidence", sql: include_str!("../sql/015_people_and_evidence.sql") },
    Migration { version: 16, name: "book_closures", sql: include_str!("../sql/016_book_closures.sql") },
    Migration { version: 17, name: "privacy", sql: include_str!("../sql/017_privacy.sql") },
    Migration { version: 18, name: "long_lapses", sql: include_str!("../sql/018_long_lapses.sql") },
    Migration { version: 19, name: "decline_score", sql: include_str!("../sql/019_decline_score.sql") },
    Migration { version: 20, name: "silence_evidence", sql: include_str!("../sql/020_silence_evidence.sql") },
    Migration { version: 21, name: "group_away_days", sql: include_str!("../sql/021_group_away_days.sql") },
    Migration { version: 22, name: "stopped_days", sql: include_str!("../sql/022_stopped_days.sql") },
    Migration { version: 23, name: "backfill_stored", sql: include_str!("../sql/023_backfill_stored.sql") },
];

/// The statement that creates the table recording which migrations were applied.
pub fn ledger_ddl(db: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.schema_migrations \
         (version UInt32, name String, applied_at DateTime) ENGINE = MergeTree() ORDER BY version"
    )
}

impl Migration {
    /// The migration's statements for database `db`, one per element, without the trailing `;`.
    pub fn statements(&self, db: &str) -> Vec<String> {
        self.raw_statements().into_iter().map(|s| s.replace("{db}", db)).collect()
    }

    /// The statements as written, tables named `{db}.table` (what `crate::cluster::layout`
    /// rewrites). Comment lines are dropped; statements are separated by a `;` at a line's end.
    pub fn raw_statements(&self) -> Vec<String> {
        let body: String =
            self.sql.lines().filter(|l| !l.trim_start().starts_with("--")).map(|l| format!("{l}\n")).collect();
        body.split(";\n").map(|s| s.trim().trim_end_matches(';').trim().to_owned()).filter(|s| !s.is_empty()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_strictly_increasing_and_statements_name_the_database() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last, "migration {} is out of order", m.name);
            last = m.version;
            let stmts = m.statements("uptake_x");
            assert!(!stmts.is_empty(), "migration {} has no statements", m.name);
            for s in &stmts {
                assert!(!s.contains("{db}"), "placeholder left in {s}");
                assert!(!s.contains(';'), "two statements glued together: {s}");
                assert!(s.contains("uptake_x."), "statement does not name the database: {s}");
            }
        }
        assert_eq!(MIGRATIONS[1].statements("d").len(), 2);
    }
}
