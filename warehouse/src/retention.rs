//! How long each class of data is kept (docs/privacy.md#retention).
//!
//! Three classes of ClickHouse tables, each with its own limit in days:
//! - raw events (`events`);
//! - health history, the per-day rollups the metrics read (`account_daily`, `account_members`,
//!   `account_csat_daily`, `account_health_daily`);
//! - alerts and their workflow (`alerts`, `alert_actions`).
//!
//! Two ways to apply a limit, one per server generation. ClickHouse 18.16 has no `TTL`, so whole
//! partitions are dropped once every day in them is past the limit (monthly partitions: data
//! stays up to a month longer than the limit, never less). Current ClickHouse takes a `TTL` per
//! table, which expires rows on the day (`ALTER TABLE … MODIFY TTL`, run at start-up and
//! idempotent). Dead letters live only on Kafka topics: their bound is the topics' `retention.ms`.

use chrono::NaiveDate;
use clickhouse::Row;
use serde::Deserialize;

use crate::columns::date_number;
use crate::{Warehouse, WarehouseError};

/// A class of tables with one retention limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    RawEvents,
    HealthHistory,
    Alerts,
}

/// How a table is partitioned, and so how its age is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Partitioning {
    /// `PARTITION BY toYYYYMM(column)`.
    Month(&'static str),
    /// `PARTITION BY epoch`, 64-day blocks of day numbers (`account_members`).
    Epoch64,
}

/// Every table a retention limit applies to.
const TABLES: &[(Class, &str, Partitioning)] = &[
    (Class::RawEvents, "events", Partitioning::Month("timestamp")),
    (Class::HealthHistory, "account_daily", Partitioning::Month("day")),
    (Class::HealthHistory, "account_members", Partitioning::Epoch64),
    (Class::HealthHistory, "account_csat_daily", Partitioning::Month("day")),
    (Class::HealthHistory, "account_health_daily", Partitioning::Month("day")),
    (Class::Alerts, "alerts", Partitioning::Month("fired_at")),
    (Class::Alerts, "alert_actions", Partitioning::Month("at")),
];

/// The limits, in days (validated by the service's config: never under what its metrics need).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub raw_events_days: u32,
    pub health_history_days: u32,
    pub alerts_days: u32,
}

impl Limits {
    fn days(&self, class: Class) -> u32 {
        match class {
            Class::RawEvents => self.raw_events_days,
            Class::HealthHistory => self.health_history_days,
            Class::Alerts => self.alerts_days,
        }
    }
}

/// One partition a pass dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub table: String,
    pub partition: String,
    /// False when a replica had not carried the drop out within the server's
    /// `distributed_ddl_task_timeout`: the cluster's DDL queue finishes it in the background,
    /// and the next pass drops the partition again if it is still there.
    pub confirmed: bool,
}

#[derive(Row, Deserialize)]
struct PartRow {
    table: String,
    partition: String,
}

impl Warehouse {
    /// The server's major version: 18 here, 20 and later have `TTL`.
    pub async fn server_major(&self) -> Result<u32, WarehouseError> {
        let v: String = self.client().query("SELECT version()").fetch_one().await?;
        Ok(v.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0))
    }

    /// The `ALTER TABLE … MODIFY TTL` statements that apply `limits` on current ClickHouse.
    pub fn ttl_statements(&self, limits: &Limits) -> Vec<String> {
        TABLES
            .iter()
            .map(|(class, table, part)| {
                let day = match part {
                    Partitioning::Month(column) => format!("toDate({column})"),
                    // The block's last day: a block goes when all of it is past the limit.
                    Partitioning::Epoch64 => "toDate(toUInt32(epoch) * 64 + 63)".to_owned(),
                };
                format!(
                    "ALTER TABLE {} MODIFY TTL {day} + toIntervalDay({})",
                    self.local_target(table),
                    limits.days(*class)
                )
            })
            .collect()
    }

    /// Drops every partition whose days are all older than its class's limit on `today`;
    /// returns what it dropped.
    pub async fn drop_expired_partitions(
        &self,
        limits: &Limits,
        today: NaiveDate,
    ) -> Result<Vec<Dropped>, WarehouseError> {
        let names: Vec<&str> = TABLES.iter().map(|(_, t, _)| *t).collect();
        // On a cluster each shard holds its own parts: a month may live on one shard only.
        let parts_of = match self.cluster() {
            Some(c) => format!("cluster('{c}', system, parts)"),
            None => "system.parts".to_owned(),
        };
        let parts: Vec<PartRow> = self
            .client()
            .query(&format!(
                "SELECT DISTINCT table, partition FROM {parts_of} \
                 WHERE database = ? AND active AND has(?, table) ORDER BY table, partition"
            ))
            .bind(self.data_database())
            .bind(&names)
            .fetch_all()
            .await?;
        let mut dropped = Vec::new();
        for p in parts {
            let Some((class, _, part)) = TABLES.iter().find(|(_, t, _)| *t == p.table) else { continue };
            let Some(last) = last_day(*part, &p.partition) else { continue };
            if expired(last, today, limits.days(*class)) {
                let sql = format!("ALTER TABLE {} DROP PARTITION {}", self.local_target(&p.table), p.partition);
                let confirmed = match self.client().query(&sql).execute().await {
                    Ok(()) => true,
                    Err(e) if ddl_still_running(&e) => false,
                    Err(e) => return Err(e.into()),
                };
                dropped.push(Dropped { table: p.table, partition: p.partition, confirmed });
            }
        }
        Ok(dropped)
    }
}

/// Whether an `ON CLUSTER` statement timed out waiting for a replica that is still carrying it
/// out (code 159, "… they are going to execute the query in background"). A replica busy with
/// merges or a fetch can hold a `DROP PARTITION` longer than the timeout; the drop is not lost.
fn ddl_still_running(e: &clickhouse::error::Error) -> bool {
    matches!(e, clickhouse::error::Error::BadResponse(m)
        if m.starts_with("Code: 159") && m.contains("execute the query in background"))
}

/// The last day a partition can hold, from its id (`202606`, or an epoch number).
fn last_day(part: Partitioning, id: &str) -> Option<u16> {
    match part {
        Partitioning::Month(_) => {
            let n: u32 = id.parse().ok()?;
            let (y, m) = ((n / 100) as i32, n % 100);
            let next =
                if m == 12 { NaiveDate::from_ymd_opt(y + 1, 1, 1)? } else { NaiveDate::from_ymd_opt(y, m + 1, 1)? };
            Some(date_number(next) - 1)
        }
        Partitioning::Epoch64 => {
            let e: u32 = id.parse().ok()?;
            u16::try_from(e * 64 + 63).ok()
        }
    }
}

/// Whether every day up to `last` is more than `days` before `today`.
fn expired(last: u16, today: NaiveDate, days: u32) -> bool {
    u32::from(last) + days < u32::from(date_number(today))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_month_goes_only_once_its_last_day_is_past_the_limit() {
        let june = last_day(Partitioning::Month("day"), "202606").unwrap();
        assert_eq!(june, date_number(d("2026-06-30")));
        // 30 days: June 30 + 30 = July 30; kept on that day, dropped the day after.
        assert!(!expired(june, d("2026-07-30"), 30));
        assert!(expired(june, d("2026-07-31"), 30));
        let december = last_day(Partitioning::Month("day"), "202612").unwrap();
        assert_eq!(december, date_number(d("2026-12-31")));
        assert_eq!(last_day(Partitioning::Month("day"), "tuple()"), None);
    }

    #[test]
    fn only_a_ddl_timeout_with_the_query_left_running_counts_as_queued() {
        let timeout = "Code: 159, e.displayText() = DB::Exception: Watching task /clickhouse/task_queue/ddl/\
            query-0000000175 is executing longer than distributed_ddl_task_timeout (=180) seconds. There are 1 \
            unfinished hosts (1 of them are currently active), they are going to execute the query in background";
        assert!(ddl_still_running(&clickhouse::error::Error::BadResponse(timeout.into())));
        let refused = "Code: 159, e.displayText() = DB::Exception: Timeout exceeded: elapsed 5 seconds";
        assert!(!ddl_still_running(&clickhouse::error::Error::BadResponse(refused.into())));
        let other = "Code: 248, e.displayText() = DB::Exception: Invalid partition format";
        assert!(!ddl_still_running(&clickhouse::error::Error::BadResponse(other.into())));
    }

    #[test]
    fn an_epoch_is_a_block_of_64_days() {
        let e = date_number(d("2026-06-30")) / 64;
        let last = last_day(Partitioning::Epoch64, &e.to_string()).unwrap();
        assert_eq!(last, e * 64 + 63);
        assert!(last >= date_number(d("2026-06-30")));
        assert!(!expired(last, d("2026-06-30"), 1));
    }
}
