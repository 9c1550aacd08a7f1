//! [`Warehouse`]: the one ClickHouse client of every service. It applies the migrations, inserts
//! rows into the table their type names, and builds queries in one convention: tables are written
//! `{db}.table` and the database goes in as an identifier ([`Database`]); every value is a bound
//! `?` parameter, never text pasted into the statement.

use clickhouse::query::Query;
use clickhouse::Client;

use crate::cluster::{layout, ledger, local_database, shard_keys};
use crate::config::{ClickHouseConfig, Database};
use crate::failover::FailoverConnector;
use crate::migrations::{ledger_ddl, MIGRATIONS};
use crate::rows::Table;
use crate::WarehouseError;

#[derive(Clone)]
pub struct Warehouse {
    client: Client,
    db: Database,
    /// Replicated cluster to run DDL on; `None` for a single server.
    cluster: Option<String>,
}

impl Warehouse {
    pub fn new(cfg: &ClickHouseConfig) -> Self {
        let client = match cfg.endpoints() {
            Some(endpoints) => FailoverConnector::new(endpoints).client(),
            None => Client::default().with_url(&cfg.url),
        };
        let client = client.with_user(&cfg.user).with_password(&cfg.password).with_validation(false);
        let cluster = Some(cfg.cluster.clone()).filter(|c| !c.is_empty());
        // On a cluster every table read and written is Distributed (`crate::cluster`): an insert
        // is acknowledged only once its shards stored it, not when it is queued on this node
        // (whose disk may die with it); a subquery over a Distributed table inside a query over
        // one is run once and shipped (`GLOBAL`), which ClickHouse refuses by default; and reads
        // and inserts go to the first live replica of each shard (`in_order`), so a read sees
        // every write before it, not a replica that is still fetching them (the cluster drill
        // saw an alert stored twice: the instance that took an account over read the alerts
        // from the replica that lagged). The other replica is the hot standby.
        let client = match cluster {
            Some(_) => client
                .with_setting("insert_distributed_sync", "1")
                .with_setting("distributed_product_mode", "global")
                .with_setting("load_balancing", "in_order"),
            None => client,
        };
        Self { client, db: Database::new(&cfg.database), cluster }
    }

    /// The database, as an identifier: `format!("{}.events", wh.database())` is safe SQL.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The replicated cluster DDL and mutations run on, if any.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// Where an ALTER of a data table runs: the table itself, or on a cluster every local
    /// replica of it (`crate::cluster`; a Distributed table takes no mutation or DROP PARTITION).
    pub(crate) fn local_target(&self, table: &str) -> String {
        match &self.cluster {
            Some(c) => {
                let local = Database::new(&local_database(self.db.name()));
                format!("{local}.{table} ON CLUSTER {c}")
            }
            None => format!("{}.{table}", self.db),
        }
    }

    /// The raw client, for what the builders below do not cover (formatted inserts in tests).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A query whose text names tables as `{db}.table`; bind each `?` in order.
    pub fn query(&self, sql: &str) -> Query {
        self.client.query(&self.sql(sql))
    }

    /// `sql` with `{db}` replaced by the database identifier: the text [`Warehouse::query`] runs
    /// (printed by the services' `sql` commands for the check on current ClickHouse).
    pub fn sql(&self, sql: &str) -> String {
        sql.replace("{db}", &self.db.to_string())
    }

    /// Every DDL statement of the schema, in order: database, ledger, then each migration's
    /// statements with its version — on a cluster, in its sharded layout (`crate::cluster`).
    pub fn ddl(&self) -> Vec<(Option<u32>, String)> {
        let db = &self.db.to_string();
        let Some(cluster) = &self.cluster else {
            let mut out = vec![(None, format!("CREATE DATABASE IF NOT EXISTS {db}")), (None, ledger_ddl(db))];
            for m in MIGRATIONS {
                out.extend(m.statements(db).into_iter().map(|s| (Some(m.version), s)));
            }
            return out;
        };
        let local = Database::new(&local_database(self.db.name())).to_string();
        let fill = |s: &str| {
            s.replace("{db_name}", self.db.name())
                .replace("{local_name}", &local)
                .replace("{local}", &local)
                .replace("{db}", db)
        };
        let mut out = vec![
            (None, format!("CREATE DATABASE IF NOT EXISTS {db} ON CLUSTER {cluster}")),
            (None, format!("CREATE DATABASE IF NOT EXISTS {local} ON CLUSTER {cluster}")),
            (None, fill(&ledger(cluster))),
        ];
        let all: Vec<String> = MIGRATIONS.iter().flat_map(|m| m.raw_statements()).collect();
        let keys = shard_keys(all.iter().map(String::as_str));
        for m in MIGRATIONS {
            for s in m.raw_statements() {
                out.extend(layout(&s, cluster, &keys).iter().map(|c| (Some(m.version), fill(c))));
            }
        }
        out
    }

    /// Creates the database and applies every migration not yet recorded in
    /// `schema_migrations`. Idempotent; returns the versions it applied.
    pub async fn migrate(&self) -> Result<Vec<u32>, WarehouseError> {
        let ddl = self.ddl();
        for (_, statement) in ddl.iter().filter(|(v, _)| v.is_none()) {
            self.client.query(statement).execute().await?;
        }
        let done: Vec<u32> = self.query("SELECT version FROM {db}.schema_migrations").fetch_all().await?;
        let mut applied = Vec::new();
        for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
            for (_, statement) in ddl.iter().filter(|(v, _)| *v == Some(m.version)) {
                if let Err(e) = self.client.query(statement).execute().await {
                    // Instances started together all apply a migration nobody recorded yet; an
                    // `ADD COLUMN` (18.16 has no IF NOT EXISTS) then fails for all but one. The
                    // column being there is the migration's whole effect, so that is success.
                    match added_column(statement) {
                        Some((table, column)) if self.has_column(table, column).await? => {}
                        _ => return Err(e.into()),
                    }
                }
            }
            self.query("INSERT INTO {db}.schema_migrations (version, name, applied_at) VALUES (?, ?, now())")
                .bind(m.version)
                .bind(m.name)
                .execute()
                .await?;
            tracing::info!(version = m.version, name = m.name, "migration applied");
            applied.push(m.version);
        }
        Ok(applied)
    }

    /// Whether `table` (as a statement names it, `db.table`: the data's own database on a
    /// cluster) has `column`.
    async fn has_column(&self, table: &str, column: &str) -> Result<bool, WarehouseError> {
        // The statement wrote the database as an identifier; the lookup binds its plain name.
        let (database, table) = table.rsplit_once('.').unwrap_or((self.db.name(), table));
        let database = database.trim_matches('`');
        let n: u64 = self
            .client
            .query("SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?")
            .bind(database)
            .bind(table)
            .bind(column)
            .fetch_one()
            .await?;
        Ok(n > 0)
    }

    /// Whether the server answers.
    pub async fn ping(&self) -> bool {
        self.client.query("SELECT 1").fetch_one::<u8>().await.is_ok()
    }

    /// The server's clock (seconds): what `account_lifetime.last_stored` is measured in.
    pub async fn clock(&self) -> Result<u32, WarehouseError> {
        Ok(self.client.query("SELECT toUInt32(now())").fetch_one().await?)
    }

    /// Inserts rows into their table as one INSERT: stored whole or, on error, not at all.
    pub async fn insert_rows<T: Table>(&self, rows: &[T]) -> Result<(), WarehouseError> {
        self.insert_each(rows).await
    }

    /// [`Warehouse::insert_rows`] for rows that are not contiguous in memory.
    pub async fn insert_each<'a, T: Table + 'a>(
        &self,
        rows: impl IntoIterator<Item = &'a T>,
    ) -> Result<(), WarehouseError> {
        // The database is written as an identifier and the table is a constant of ours.
        let mut insert = self.client.insert_unescaped::<T>(&format!("{}.{}", self.db, T::TABLE)).await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await?;
        Ok(())
    }

    /// Inserts rows already encoded in RowBinary with `columns` (comma-separated, in the order of
    /// `T`'s fields) into `T`'s table as one INSERT: stored whole or, on error, not at all.
    pub async fn insert_row_binary<'a, T: Table>(
        &self,
        columns: &str,
        rows: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), WarehouseError> {
        let sql = format!("INSERT INTO {}.{}({columns}) FORMAT RowBinary", self.db, T::TABLE);
        let mut insert = self.client.insert_formatted_with(sql).buffered();
        for mut row in rows {
            while !row.is_empty() {
                let written = insert.write(row).await?;
                row = &row[written..];
            }
        }
        insert.end().await?;
        Ok(())
    }

    /// The partitions of `topic` that stored events came from (`account_partitions`).
    pub async fn partitions(&self, topic: &str) -> Result<Vec<i32>, WarehouseError> {
        let sql =
            "SELECT DISTINCT kafka_partition FROM {db}.account_partitions WHERE kafka_topic = ? ORDER BY kafka_partition";
        Ok(self.query(sql).bind(topic).fetch_all().await?)
    }
}

/// The table and column an `ALTER TABLE t [ON CLUSTER c] ADD COLUMN col …` statement adds.
fn added_column(statement: &str) -> Option<(&str, &str)> {
    let table = statement.trim_start().strip_prefix("ALTER TABLE ")?.split_whitespace().next()?;
    let rest = &statement[statement.find("ADD COLUMN ")? + "ADD COLUMN ".len()..];
    let rest = rest.trim_start().strip_prefix("IF NOT EXISTS ").unwrap_or(rest);
    Some((table, rest.split_whitespace().next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_column_is_read_from_its_statement() {
        assert_eq!(
            added_column("ALTER TABLE uptake.events ADD COLUMN outcome String DEFAULT ''"),
            Some(("uptake.events", "outcome"))
        );
        assert_eq!(
            added_column("ALTER TABLE uptake.events ON CLUSTER c ADD COLUMN outcome String"),
            Some(("uptake.events", "outcome"))
        );
        assert_eq!(added_column("CREATE TABLE IF NOT EXISTS uptake.x (a String) ENGINE = Log"), None);
    }

    #[test]
    fn queries_name_the_database_as_an_identifier() {
        let plain = Warehouse::new(&ClickHouseConfig { database: "uptake_t".into(), ..Default::default() });
        assert_eq!(plain.sql("SELECT 1 FROM {db}.events"), "SELECT 1 FROM uptake_t.events");
        let odd = Warehouse::new(&ClickHouseConfig { database: "a`b".into(), ..Default::default() });
        assert_eq!(odd.sql("SELECT 1 FROM {db}.events"), "SELECT 1 FROM `a\\`b`.events");
        assert!(plain.ddl().iter().all(|(_, s)| !s.contains("{db}")), "every statement names the database");
    }
}
