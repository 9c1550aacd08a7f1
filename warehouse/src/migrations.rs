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
];

/// The statement that creates the table recording which migrations were applied.
pub fn ledger_ddl(db: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.schema_migrations \
         (version UInt32, name String, applied_at DateTime) ENGINE = MergeTree() ORDER BY version"
    )
}

/// A statement rewritten for a replicated ClickHouse cluster: `ON CLUSTER cluster` after the
/// object name (after the table of an `ALTER TABLE`), and every MergeTree-family engine replaced
/// by its Replicated twin with the conventional `/clickhouse/tables/{shard}/DB/TABLE` path and
/// `{replica}` macro (which each server defines in its `macros` config). One shard, any number
/// of replicas.
pub fn on_cluster(statement: &str, cluster: &str) -> String {
    let mut s = statement.to_owned();
    let mut name = String::new();
    // An ALTER names its table first; checked first, so `DROP COLUMN IF EXISTS c` in an ALTER
    // is not taken for the object name.
    let alter = s.starts_with("ALTER TABLE ").then_some(("ALTER TABLE ", 0));
    let created = ["IF NOT EXISTS ", "IF EXISTS "].into_iter().find_map(|m| s.find(m).map(|at| (m, at)));
    if let Some((marker, at)) = alter.or(created) {
        let start = at + marker.len();
        let end = s[start..].find(|c: char| c.is_whitespace() || c == '(').map_or(s.len(), |e| start + e);
        name = s[start..end].to_owned();
        s.insert_str(end, &format!(" ON CLUSTER {cluster}"));
    }
    let path = format!("'/clickhouse/tables/{{shard}}/{}', '{{replica}}'", name.replace('.', "/"));
    for engine in ["MergeTree", "ReplacingMergeTree", "AggregatingMergeTree", "SummingMergeTree"] {
        let pattern = format!("ENGINE = {engine}(");
        if let Some(at) = s.find(&pattern) {
            let args_start = at + pattern.len();
            let args_end = args_start + s[args_start..].find(')').expect("engine arguments close");
            let args = s[args_start..args_end].trim().to_owned();
            let all = if args.is_empty() { path.clone() } else { format!("{path}, {args}") };
            s.replace_range(at..=args_end, &format!("ENGINE = Replicated{engine}({all})"));
            break;
        }
    }
    s
}

impl Migration {
    /// The migration's statements for database `db`, one per element, without the trailing `;`.
    /// Comment lines are dropped; statements are separated by a `;` at the end of a line.
    pub fn statements(&self, db: &str) -> Vec<String> {
        let body: String =
            self.sql.lines().filter(|l| !l.trim_start().starts_with("--")).map(|l| format!("{l}\n")).collect();
        body.split(";\n")
            .map(|s| s.trim().trim_end_matches(';').trim().replace("{db}", db))
            .filter(|s| !s.is_empty())
            .collect()
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

    #[test]
    fn cluster_statements_run_on_every_replica_with_replicated_engines() {
        let t = on_cluster(
            "CREATE TABLE IF NOT EXISTS up.accounts\n(\n a String\n)\nENGINE = ReplacingMergeTree(updated_at)\nORDER BY a",
            "prod",
        );
        assert_eq!(
            t,
            "CREATE TABLE IF NOT EXISTS up.accounts ON CLUSTER prod\n(\n a String\n)\n\
             ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/up/accounts', '{replica}', updated_at)\nORDER BY a"
        );
        let mv = on_cluster("CREATE MATERIALIZED VIEW IF NOT EXISTS up.x_mv TO up.x AS SELECT 1", "prod");
        assert_eq!(mv, "CREATE MATERIALIZED VIEW IF NOT EXISTS up.x_mv ON CLUSTER prod TO up.x AS SELECT 1");
        assert_eq!(on_cluster("DROP TABLE IF EXISTS up.m", "c"), "DROP TABLE IF EXISTS up.m ON CLUSTER c");
        assert_eq!(
            on_cluster("ALTER TABLE up.events ADD COLUMN outcome String DEFAULT ''", "c"),
            "ALTER TABLE up.events ON CLUSTER c ADD COLUMN outcome String DEFAULT ''"
        );
        assert_eq!(
            on_cluster("ALTER TABLE up.events DROP COLUMN IF EXISTS x", "c"),
            "ALTER TABLE up.events ON CLUSTER c DROP COLUMN IF EXISTS x"
        );
        let ledger = on_cluster(&ledger_ddl("up"), "c");
        assert!(ledger.contains("up.schema_migrations ON CLUSTER c (version"), "{ledger}");
        assert!(ledger
            .contains("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/up/schema_migrations', '{replica}')"));
        // Every table of every migration gets a replicated engine. A backfill (`INSERT …
        // SELECT`) runs on the migrating server only: replication copies its rows (one shard).
        for m in MIGRATIONS {
            for s in m.statements("up") {
                let c = on_cluster(&s, "prod");
                if s.starts_with("INSERT INTO ") {
                    assert_eq!(c, s, "a backfill is left as it is");
                    continue;
                }
                assert!(c.contains(" ON CLUSTER prod"), "{c}");
                if s.contains("ENGINE") {
                    assert!(c.contains("ENGINE = Replicated"), "{c}");
                }
            }
        }
    }
}
