//! The schema on a sharded and replicated ClickHouse cluster (`clickhouse.cluster`).
//!
//! Two databases, so that no service or analyst query changes with the layout:
//! - `{db}_local` holds the data: every table with its Replicated engine (replicas of a shard share
//!   the ZooKeeper path `/clickhouse/tables/{shard}/…`), and every materialized view, reading the
//!   local `events` and writing local tables — so an event inserted on a shard is rolled up on
//!   that shard, and replication copies both the event and its rollups to the other replica;
//! - `{db}`, what everything reads and writes, holds a `Distributed` table of the same name over
//!   each local table, sharded by `cityHash64(account_id)`: every row of an account, in every
//!   table, lands on one shard, so an account's history, rollups, metrics and alerts sit
//!   together. The plain views (`open_alerts`, …) are in `{db}` over the Distributed tables.
//!
//! Every statement runs `ON CLUSTER`. The privacy tables are sharded by their regulation (its
//! status rows must meet for FINAL); `backtest_scores`, read whole, is spread at random. The migration ledger is one replicated table across all
//! nodes (path without `{shard}`): every node knows what ran.

use std::collections::HashMap;

/// `{db}` as the migrations write it, and the local database's placeholder.
const DB: &str = "{db}";
const LOCAL: &str = "{local}";

/// The local database's name for database `db`.
pub fn local_database(db: &str) -> String {
    format!("{db}_local")
}

/// The sharding key of every table the migrations create (`statements`: all of them, raw):
/// its account when it has one, else at random.
pub fn shard_keys<'a>(statements: impl IntoIterator<Item = &'a str>) -> HashMap<String, &'static str> {
    let mut keys = HashMap::new();
    for s in statements {
        if let Some(rest) = s.strip_prefix("CREATE TABLE IF NOT EXISTS {db}.") {
            // A regulation's status rows must meet on one shard for FINAL to keep the latest.
            let key = if has_column(s, "account_id") {
                "cityHash64(account_id)"
            } else if has_column(s, "regulation_id") {
                "cityHash64(regulation_id)"
            } else {
                "rand()"
            };
            keys.insert(object_name(rest).to_owned(), key);
        }
    }
    keys
}

/// The statements, with `{db}` and `{local}` placeholders, that make `statement` (a migration's,
/// `{db}` placeholders) on `cluster`'s sharded layout; `keys` from [`shard_keys`].
pub fn layout(statement: &str, cluster: &str, keys: &HashMap<String, &'static str>) -> Vec<String> {
    let on = format!(" ON CLUSTER {cluster}");
    let distributed = |name: &str| {
        let key = keys.get(name).copied().unwrap_or("rand()");
        format!(
            "CREATE TABLE IF NOT EXISTS {DB}.{name}{on} AS {LOCAL}.{name} \
             ENGINE = Distributed({cluster}, {{local_name}}, {name}, {key})"
        )
    };
    if let Some(rest) = statement.strip_prefix("CREATE TABLE IF NOT EXISTS {db}.") {
        let name = object_name(rest);
        let local = replicated(&format!("CREATE TABLE IF NOT EXISTS {LOCAL}.{rest}"), name, &on);
        return vec![local, distributed(name)];
    }
    if statement.starts_with("CREATE MATERIALIZED VIEW ") {
        // Wholly local: it reads the shard's own inserts and writes the shard's own tables.
        return vec![after_name(&statement.replace("{db}.", "{local}."), "IF NOT EXISTS ", &on)];
    }
    if statement.starts_with("CREATE VIEW ") {
        return vec![after_name(statement, "IF NOT EXISTS ", &on)];
    }
    if let Some(rest) = statement.strip_prefix("ALTER TABLE {db}.") {
        // The data changes on every shard; the Distributed table over it is made again with the
        // new columns. It cannot be altered ON CLUSTER: 18.16 refuses an ALTER of a table that
        // is not replicated on a cluster whose shards replicate themselves (code 371), and
        // altering each node's copy would need every node's address. Queries in the instant
        // between the drop and the create fail and are retried, as during any migration.
        let name = object_name(rest);
        let local = format!("ALTER TABLE {LOCAL}.{rest}");
        let drop = format!("DROP TABLE IF EXISTS {DB}.{name}{on}");
        return vec![after_name(&local, "ALTER TABLE ", &on), drop, distributed(name)];
    }
    if let Some(rest) = statement.strip_prefix("DROP TABLE IF EXISTS {db}.") {
        // A table has both parts, a materialized view only the local one: IF EXISTS covers both.
        let local = format!("DROP TABLE IF EXISTS {LOCAL}.{rest}");
        return vec![after_name(&local, "IF EXISTS ", &on), after_name(statement, "IF EXISTS ", &on)];
    }
    // A backfill (`INSERT INTO {db}.t SELECT … FROM {db}.events`) runs once, through the
    // Distributed tables: it reads every shard and writes each row to its account's shard.
    vec![statement.to_owned()]
}

/// The ledger on a cluster: one table replicated on every node.
pub fn ledger(cluster: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {DB}.schema_migrations ON CLUSTER {cluster} \
         (version UInt32, name String, applied_at DateTime) \
         ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{{db_name}}/schema_migrations', '{{shard}}-{{replica}}') \
         ORDER BY version"
    )
}

/// The table or view name at the start of `rest` (what follows `{db}.`).
fn object_name(rest: &str) -> &str {
    let end = rest.find(|c: char| c.is_whitespace() || c == '(').unwrap_or(rest.len());
    &rest[..end]
}

/// `statement` with `on` inserted after the object name that follows `marker`.
fn after_name(statement: &str, marker: &str, on: &str) -> String {
    let mut s = statement.to_owned();
    if let Some(at) = s.find(marker) {
        let start = at + marker.len();
        let end = s[start..].find(|c: char| c.is_whitespace() || c == '(').map_or(s.len(), |e| start + e);
        s.insert_str(end, on);
    }
    s
}

/// A local `CREATE TABLE` made `ON CLUSTER` with the Replicated twin of its MergeTree engine.
fn replicated(statement: &str, name: &str, on: &str) -> String {
    let mut s = after_name(statement, "IF NOT EXISTS ", on);
    let path = format!("'/clickhouse/tables/{{shard}}/{{db_name}}/{name}', '{{replica}}'");
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

/// Whether a `CREATE TABLE` statement's column list declares `column`.
fn has_column(statement: &str, column: &str) -> bool {
    let Some(open) = statement.find('(') else { return false };
    let body = &statement[open + 1..statement.find("ENGINE").unwrap_or(statement.len())];
    body.lines()
        .any(|l| l.split_whitespace().next().is_some_and(|w| w.trim_matches(|c| c == '(' || c == ',') == column))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::MIGRATIONS;

    #[test]
    fn a_table_becomes_replicated_data_and_a_distributed_table_by_account() {
        let create =
            "CREATE TABLE IF NOT EXISTS {db}.accounts\n(\n    account_id String,\n    updated_at DateTime\n)\n\
                      ENGINE = ReplacingMergeTree(updated_at)\nORDER BY account_id";
        let t = layout(create, "prod", &shard_keys([create]));
        assert_eq!(
            t,
            [
                "CREATE TABLE IF NOT EXISTS {local}.accounts ON CLUSTER prod\n(\n    account_id String,\n    updated_at DateTime\n)\n\
                 ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{db_name}/accounts', '{replica}', updated_at)\n\
                 ORDER BY account_id",
                "CREATE TABLE IF NOT EXISTS {db}.accounts ON CLUSTER prod AS {local}.accounts \
                 ENGINE = Distributed(prod, {local_name}, accounts, cityHash64(account_id))",
            ]
        );
        let create =
            "CREATE TABLE IF NOT EXISTS {db}.s\n(\n    scored_at DateTime\n)\nENGINE = MergeTree()\nORDER BY scored_at";
        let scores = layout(create, "c", &shard_keys([create]));
        assert!(
            scores[0].contains("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{db_name}/s', '{replica}')")
        );
        assert!(scores[1].ends_with("Distributed(c, {local_name}, s, rand())"), "{}", scores[1]);
    }

    #[test]
    fn views_alters_drops_and_backfills_find_their_side() {
        let keys = HashMap::from([("events".to_owned(), "cityHash64(account_id)")]);
        let layout = |s: &str, c: &str| layout(s, c, &keys);
        let mv = layout("CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.x_mv TO {db}.x AS SELECT a FROM {db}.events", "c");
        assert_eq!(mv, ["CREATE MATERIALIZED VIEW IF NOT EXISTS {local}.x_mv ON CLUSTER c TO {local}.x AS SELECT a FROM {local}.events"]);
        let view = layout("CREATE VIEW IF NOT EXISTS {db}.open_alerts AS SELECT * FROM {db}.alerts", "c");
        assert_eq!(view, ["CREATE VIEW IF NOT EXISTS {db}.open_alerts ON CLUSTER c AS SELECT * FROM {db}.alerts"]);
        let alter = layout("ALTER TABLE {db}.events ADD COLUMN outcome String DEFAULT ''", "c");
        assert_eq!(
            alter,
            [
                "ALTER TABLE {local}.events ON CLUSTER c ADD COLUMN outcome String DEFAULT ''",
                "DROP TABLE IF EXISTS {db}.events ON CLUSTER c",
                "CREATE TABLE IF NOT EXISTS {db}.events ON CLUSTER c AS {local}.events \
                 ENGINE = Distributed(c, {local_name}, events, cityHash64(account_id))",
            ]
        );
        let drop = layout("DROP TABLE IF EXISTS {db}.m", "c");
        assert_eq!(drop, ["DROP TABLE IF EXISTS {local}.m ON CLUSTER c", "DROP TABLE IF EXISTS {db}.m ON CLUSTER c"]);
        let fill = "INSERT INTO {db}.t SELECT a FROM {db}.events";
        assert_eq!(layout(fill, "c"), [fill]);
    }

    #[test]
    fn every_migration_has_a_cluster_form_and_every_account_table_is_sharded_by_account() {
        let all: Vec<String> = MIGRATIONS.iter().flat_map(|m| m.raw_statements()).collect();
        let keys = shard_keys(all.iter().map(String::as_str));
        for m in MIGRATIONS {
            for s in m.raw_statements() {
                for c in layout(&s, "prod", &keys) {
                    if c.starts_with("INSERT INTO ") {
                        continue;
                    }
                    assert!(c.contains(" ON CLUSTER prod"), "{c}");
                    if c.contains("ENGINE = ") && !c.contains("Distributed(") {
                        assert!(c.contains("ENGINE = Replicated") && c.contains("{local}."), "{c}");
                    }
                    if c.contains("Distributed(") && c.contains(".regulation") {
                        assert!(c.ends_with("cityHash64(regulation_id))"), "a request's rows on one shard: {c}");
                    } else if c.contains("Distributed(") && !c.contains("backtest_scores") {
                        assert!(c.ends_with("cityHash64(account_id))"), "every account's rows on one shard: {c}");
                    }
                }
            }
        }
        assert!(ledger("c").contains("'/clickhouse/tables/all/{db_name}/schema_migrations', '{shard}-{replica}'"));
    }
}
