//! The `[clickhouse]` settings every service shares, and the database name as an identifier.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::WarehouseError;

/// Current ClickHouse's default `max_partitions_per_insert_block`.
pub const MAX_PARTITIONS_PER_INSERT: usize = 100;

/// Where uptake's tables are: the `[clickhouse]` section of the aggregator's config, which the
/// console and the tools read too.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP endpoint of the ClickHouse server.
    pub url: String,
    /// Further endpoints (`http://host:port`) of the same cluster, tried in turn when the one in
    /// use refuses connections or does not answer within 2 s: with `cluster`, the other
    /// replicas. Empty: `url` only. A failed request is retried by the service, on the endpoint
    /// that answers; a retried INSERT is stored once (the replicas deduplicate identical blocks).
    pub failover_urls: Vec<String>,
    /// Database holding uptake's tables; created by the migrations.
    pub database: String,
    /// ClickHouse user.
    pub user: String,
    /// Its password; set it from the environment (`UPTAKE_CLICKHOUSE__PASSWORD`) or a Secret, not
    /// in the file.
    pub password: String,
    /// For a replicated ClickHouse cluster: the cluster name (from `remote_servers`). Migrations
    /// then run `ON CLUSTER` with Replicated engines (see docs/analysts.md). Empty: one server.
    pub cluster: String,
    /// Most monthly partitions one INSERT may touch, 1 to 100. Current ClickHouse refuses more
    /// than its `max_partitions_per_insert_block` (100, error 252); a batch of backdated events is
    /// split to fit. Lower it if the server's limit is lower.
    pub max_partitions_per_insert: usize,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            failover_urls: Vec::new(),
            database: "uptake".into(),
            user: "default".into(),
            password: String::new(),
            cluster: String::new(),
            max_partitions_per_insert: MAX_PARTITIONS_PER_INSERT,
        }
    }
}

impl ClickHouseConfig {
    /// Checks what types alone cannot; each error names the offending key (`clickhouse.…`).
    pub fn validate(&self) -> Result<(), WarehouseError> {
        let bad = |key: &str, reason: &str| Err(WarehouseError::Config { key: key.into(), reason: reason.into() });
        if !self.url.starts_with("http://") && !self.url.starts_with("https://") {
            return bad("clickhouse.url", "must be an http:// or https:// URL");
        }
        for (i, u) in self.failover_urls.iter().enumerate() {
            if endpoint(u).is_none() {
                return Err(WarehouseError::Config {
                    key: format!("clickhouse.failover_urls[{i}]"),
                    reason: "must be an http://host:port URL (failover does not speak https)".into(),
                });
            }
        }
        if !self.failover_urls.is_empty() && endpoint(&self.url).is_none() {
            return bad("clickhouse.url", "must be an http://host:port URL when failover_urls are set");
        }
        if !Database::is_plain(&self.database) {
            return bad("clickhouse.database", "must be a plain identifier (letters, digits, _)");
        }
        if !self.cluster.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return bad("clickhouse.cluster", "must be a cluster name (letters, digits, _ or -)");
        }
        if !(1..=MAX_PARTITIONS_PER_INSERT).contains(&self.max_partitions_per_insert) {
            return bad(
                "clickhouse.max_partitions_per_insert",
                "must be 1 to 100 (ClickHouse's max_partitions_per_insert_block; lower it if the server's is lower)",
            );
        }
        Ok(())
    }
}

impl ClickHouseConfig {
    /// Every endpoint as `host:port`, `url` first, when `failover_urls` are set; `None` for one
    /// endpoint (the crate's own client).
    pub fn endpoints(&self) -> Option<Vec<String>> {
        if self.failover_urls.is_empty() {
            return None;
        }
        std::iter::once(&self.url).chain(&self.failover_urls).map(|u| endpoint(u)).collect()
    }
}

/// `host:port` of a plain `http://host:port[/]` URL.
fn endpoint(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    (!host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok()).then(|| rest.to_owned())
}

/// The database name as it is written into SQL: an identifier, never pasted text. A plain name
/// (letters, digits, `_`, not starting with a digit) is written as it is, so the statements read
/// as an analyst would write them; anything else is back-quoted with its quotes escaped, so even
/// a name that skipped [`ClickHouseConfig::validate`] cannot end the identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database(String);

impl Database {
    pub fn new(name: &str) -> Self {
        Self(name.to_owned())
    }

    /// The name, unquoted (for `system.*` lookups, where it is a bound value).
    pub fn name(&self) -> &str {
        &self.0
    }

    fn is_plain(name: &str) -> bool {
        name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if Self::is_plain(&self.0) {
            return f.write_str(&self.0);
        }
        f.write_str("`")?;
        for c in self.0.chars() {
            match c {
                '`' => f.write_str("\\`")?,
                '\\' => f.write_str("\\\\")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_written_as_an_identifier() {
        assert_eq!(Database::new("uptake_test_3").to_string(), "uptake_test_3");
        assert_eq!(Database::new("up-take").to_string(), "`up-take`");
        assert_eq!(Database::new("x`; DROP TABLE t; --").to_string(), "`x\\`; DROP TABLE t; --`");
        assert_eq!(Database::new("9lives").to_string(), "`9lives`");
    }

    #[test]
    fn each_bad_setting_is_named() {
        let named = |c: ClickHouseConfig| c.validate().unwrap_err().to_string();
        assert!(ClickHouseConfig::default().validate().is_ok());
        let c = ClickHouseConfig { database: "up-take; DROP".into(), ..Default::default() };
        assert!(named(c).contains("clickhouse.database"));
        let c = ClickHouseConfig { url: "127.0.0.1:8123".into(), ..Default::default() };
        assert!(named(c).contains("clickhouse.url"));
        let c = ClickHouseConfig { max_partitions_per_insert: 101, ..Default::default() };
        assert!(named(c).contains("clickhouse.max_partitions_per_insert"));
        let c = ClickHouseConfig { cluster: "a b".into(), ..Default::default() };
        assert!(named(c).contains("clickhouse.cluster"));
        let c = ClickHouseConfig {
            failover_urls: vec!["http://ch-2:8123".into(), "https://ch-3:8443".into()],
            ..Default::default()
        };
        assert!(named(c).contains("clickhouse.failover_urls[1]"));
        let c = ClickHouseConfig { failover_urls: vec!["http://ch-2".into()], ..Default::default() };
        assert!(named(c).contains("clickhouse.failover_urls[0]"), "a port is needed");
    }

    #[test]
    fn failover_endpoints_are_the_url_then_the_others() {
        assert_eq!(ClickHouseConfig::default().endpoints(), None, "one endpoint: the crate's own client");
        let c = ClickHouseConfig {
            url: "http://ch-1:8123/".into(),
            failover_urls: vec!["http://ch-2:8123".into()],
            ..Default::default()
        };
        assert_eq!(c.endpoints(), Some(vec!["ch-1:8123".to_owned(), "ch-2:8123".to_owned()]));
    }
}
