//! Finding, removing and exporting a person or an account in every table (docs/privacy.md).
//!
//! The tables are found by their columns, not listed: a table added later is covered the day it
//! exists. In every MergeTree table of the database:
//! - a `user_id` column, or a `member` column beside `member_kind`, names a person: their rows
//!   are deleted;
//! - an `account_id` column names an account: an account's rows are deleted;
//! - every other String column (not part of the sorting or partition key) is text that may name
//!   someone: an alert's reason, the lapsed users of a metrics row, a CSM's note, an event's
//!   properties. A subject's terms (ids, and the email and name their identify traits gave) are
//!   replaced there by `[deleted]` where they stand as a whole token.
//!
//! One request batch is at most two mutations per table, whatever the number of people in it.
//! The regulation tables are excluded: they must name whom a request was for. Their ledger
//! (the requests' states and audit trail) is read here too.

use std::collections::{BTreeMap, BTreeSet};

use clickhouse::Row;
use schemas::privacy::{Subject, SubjectKind};
use serde::Deserialize;

use crate::columns::literal;
use crate::rows::{AuditRow, RegulationRow};
use crate::{Warehouse, WarehouseError};

/// Tables a deletion never touches: the request ledger itself (docs/privacy.md#what-stays).
pub const EXCLUDED: &[&str] = &["regulations", "regulation_audit", "schema_migrations"];
/// Identify traits whose values name a person, and are redacted from text with their id.
const PERSONAL_TRAITS: &[&str] =
    &["email", "name", "first_name", "firstName", "last_name", "lastName", "username", "phone"];
/// What a redacted term becomes.
pub const REDACTED: &str = "[deleted]";
/// Characters that continue a token: a term is only replaced where none stands either side, so
/// `ann` leaves `anna` and `ann.lee@x.com` alone.
const TOKEN_CHARS: &str = "A-Za-z0-9_.@+-";

/// How one table can name a subject.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableColumns {
    pub table: String,
    /// `user_id`, when the table has it.
    pub user_id: bool,
    /// `member` of `member_kind = 'user'` (the per-user activity bitmaps).
    pub member: bool,
    pub account_id: bool,
    /// String columns outside the keys, searched and redacted as text.
    pub text: Vec<String>,
}

/// The people and accounts of one batch of requests, with the terms that name them in text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subjects {
    pub users: Vec<String>,
    pub accounts: Vec<String>,
    /// Ids, and the emails and names from identify traits, as whole tokens.
    pub terms: Vec<String>,
}

impl Subjects {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.accounts.is_empty()
    }

    /// The RE2 patterns that find the terms as whole tokens; in each, groups 1 and 3 are the
    /// delimiters kept around the replacement. Words (ids with a letter, emails, names) are
    /// found between any characters that cannot continue them. A term made only of digits is
    /// found only where text or a JSON string holds it (after a start, space, quote or
    /// parenthesis; before an end, space, quote, parenthesis, comma or full stop): never as a
    /// bare JSON number (`{"count":42}`, `[1,42]`), which deleting user `42` must not touch.
    pub fn patterns(&self) -> Vec<String> {
        let (numbers, words): (Vec<&String>, Vec<&String>) =
            self.terms.iter().partition(|t| t.chars().all(|c| c.is_ascii_digit()));
        let alternatives = |terms: &[&String]| terms.iter().map(|t| escape_re2(t)).collect::<Vec<_>>().join("|");
        let mut out = Vec::new();
        if !words.is_empty() {
            out.push(format!("(^|[^{TOKEN_CHARS}])({})([^{TOKEN_CHARS}]|$)", alternatives(&words)));
        }
        if !numbers.is_empty() {
            out.push(format!("(^|[ \"(])({})([ \")\\.,]|$)", alternatives(&numbers)));
        }
        out
    }
}

impl TableColumns {
    /// The tables that can name a subject, from `(table, column, type, in a key)` rows as
    /// `system.columns` lists them (the request ledger excluded).
    pub fn from_columns(rows: impl IntoIterator<Item = (String, String, String, bool)>) -> Vec<TableColumns> {
        let rows: Vec<(String, String, String, bool)> = rows.into_iter().collect();
        let has_kind: BTreeSet<&str> = rows.iter().filter(|r| r.1 == "member_kind").map(|r| r.0.as_str()).collect();
        let mut tables: BTreeMap<&str, TableColumns> = BTreeMap::new();
        for (table, name, ty, in_key) in rows.iter().filter(|r| !EXCLUDED.contains(&r.0.as_str())) {
            let t = tables.entry(table).or_insert_with(|| TableColumns { table: table.clone(), ..Default::default() });
            match name.as_str() {
                "user_id" => t.user_id = true,
                "account_id" => t.account_id = true,
                "member" if has_kind.contains(table.as_str()) => t.member = true,
                _ if !in_key && (ty == "String" || ty == "Nullable(String)") => t.text.push(name.clone()),
                _ => {}
            }
        }
        tables.into_values().filter(|t| t.user_id || t.member || t.account_id || !t.text.is_empty()).collect()
    }
}

#[derive(Row, Deserialize)]
struct ColumnRow {
    table: String,
    name: String,
    #[serde(rename = "type")]
    ty: String,
    in_key: u8,
}

impl Warehouse {
    /// Every table that can hold a person or an account, with how (see the module doc).
    pub async fn privacy_tables(&self) -> Result<Vec<TableColumns>, WarehouseError> {
        let rows: Vec<ColumnRow> = self
            .client()
            .query(
                "SELECT table, name, type, toUInt8(is_in_sorting_key OR is_in_partition_key) AS in_key \
                 FROM system.columns WHERE database = ? AND table IN \
                 (SELECT name FROM system.tables WHERE database = ? AND engine LIKE '%MergeTree') \
                 ORDER BY table, name",
            )
            .bind(self.data_database())
            .bind(self.data_database())
            .fetch_all()
            .await?;
        Ok(TableColumns::from_columns(rows.into_iter().map(|r| (r.table, r.name, r.ty, r.in_key != 0))))
    }

    /// The subjects with their terms: each id, plus the personal traits (email, name…) the
    /// people's identify calls stored, so that a sentence naming them by email is found too.
    pub async fn subjects(&self, list: &[Subject]) -> Result<Subjects, WarehouseError> {
        let mut s = Subjects::default();
        for subject in list {
            match subject.kind {
                SubjectKind::User => s.users.push(subject.id.clone()),
                SubjectKind::Account => s.accounts.push(subject.id.clone()),
            }
        }
        let mut terms: BTreeSet<String> = s.users.iter().chain(&s.accounts).cloned().collect();
        if !s.users.is_empty() {
            let users = in_list(&s.users);
            let traits: Vec<String> = self
                .query(&format!(
                    "SELECT traits FROM {{db}}.users WHERE user_id IN {users} \
                     UNION ALL SELECT traits FROM {{db}}.events WHERE user_id IN {users} AND kind = 'user'"
                ))
                .fetch_all()
                .await?;
            for t in traits {
                terms.extend(personal_values(&t));
            }
        }
        s.terms = terms.into_iter().collect();
        Ok(s)
    }

    /// The statements of one batch's deletion: per table, one DELETE of the rows that name a
    /// subject and one UPDATE that redacts them from text. Values are inlined as literals, so
    /// the same text runs here and in the check on current ClickHouse (`aggregator privacy-sql`).
    pub fn deletion_statements(&self, tables: &[TableColumns], s: &Subjects) -> Vec<String> {
        let patterns: Vec<String> = s.patterns().into_iter().map(literal).collect();
        let mut out = Vec::new();
        for t in tables {
            let target = self.local_target(&t.table);
            if let Some(cond) = identity_condition(t, s) {
                out.push(format!("ALTER TABLE {target} DELETE WHERE {cond}"));
            }
            if patterns.is_empty() || t.text.is_empty() {
                continue;
            }
            // Each pattern twice: a match consumes the delimiter after it, so the second of two
            // terms side by side ("ann,ann") is only found on the second pass.
            let sets: Vec<String> = t
                .text
                .iter()
                .map(|c| {
                    let redacted = patterns.iter().fold(c.clone(), |e, p| {
                        let once = format!("replaceRegexpAll({e}, {p}, '\\\\1{REDACTED}\\\\3')");
                        format!("replaceRegexpAll({once}, {p}, '\\\\1{REDACTED}\\\\3')")
                    });
                    format!("{c} = {redacted}")
                })
                .collect();
            let wheres: Vec<String> =
                t.text.iter().flat_map(|c| patterns.iter().map(move |p| format!("match({c}, {p})"))).collect();
            out.push(format!("ALTER TABLE {target} UPDATE {} WHERE {}", sets.join(", "), wheres.join(" OR ")));
        }
        out
    }

    /// Per table, the query counting its rows that still name a subject (identity columns or
    /// text): a deletion is complete when every count is 0.
    pub fn verification_queries(&self, tables: &[TableColumns], s: &Subjects) -> Vec<(String, String)> {
        let patterns: Vec<String> = s.patterns().into_iter().map(literal).collect();
        tables
            .iter()
            .filter_map(|t| {
                let mut conds: Vec<String> = identity_condition(t, s).map(|c| format!("({c})")).into_iter().collect();
                for p in &patterns {
                    conds.extend(t.text.iter().map(|c| format!("match({c}, {p})")));
                }
                (!conds.is_empty()).then(|| {
                    let sql =
                        format!("SELECT count() FROM {}.{} WHERE {}", self.database(), t.table, conds.join(" OR "));
                    (t.table.clone(), sql)
                })
            })
            .collect()
    }

    /// Issues [`Warehouse::deletion_statements`]. Mutations run in the background; see
    /// [`Warehouse::mutations_running`].
    pub async fn delete_subjects(&self, tables: &[TableColumns], s: &Subjects) -> Result<(), WarehouseError> {
        for sql in self.deletion_statements(tables, s) {
            self.client().query(&sql).execute().await?;
        }
        Ok(())
    }

    /// How many mutations of the database have not finished.
    pub async fn mutations_running(&self) -> Result<u64, WarehouseError> {
        Ok(self
            .client()
            .query("SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0")
            .bind(self.data_database())
            .fetch_one()
            .await?)
    }

    /// Rows per table that still name a subject: the proof that a deletion is complete is an
    /// empty list.
    pub async fn rows_naming(
        &self,
        tables: &[TableColumns],
        s: &Subjects,
    ) -> Result<Vec<(String, u64)>, WarehouseError> {
        let mut out = Vec::new();
        for (table, sql) in self.verification_queries(tables, s) {
            let n: u64 = self.client().query(&sql).fetch_one().await?;
            if n > 0 {
                out.push((table, n));
            }
        }
        Ok(out)
    }

    /// Everything held about `s` (an access request): per table, its rows that name a subject,
    /// as JSON objects (aggregate states, which are not readable values, left out), at most
    /// `limit` per table.
    pub async fn export(
        &self,
        tables: &[TableColumns],
        s: &Subjects,
        limit: u64,
    ) -> Result<BTreeMap<String, Vec<serde_json::Value>>, WarehouseError> {
        let mut out = BTreeMap::new();
        for t in tables {
            let Some(cond) = identity_condition(t, s) else { continue };
            let columns: Vec<String> = self
                .client()
                .query(
                    "SELECT name FROM system.columns WHERE database = ? AND table = ? \
                     AND type NOT LIKE 'AggregateFunction%' ORDER BY name",
                )
                .bind(self.data_database())
                .bind(&t.table)
                .fetch_all()
                .await?;
            let sql = format!(
                "SELECT {} FROM {}.{} WHERE {cond} LIMIT {limit}",
                columns.join(", "),
                self.database(),
                t.table
            );
            let mut cursor = self.client().query(&sql).fetch_bytes("JSONEachRow")?;
            let mut body = Vec::new();
            while let Some(chunk) = cursor.next().await? {
                body.extend_from_slice(&chunk);
            }
            let rows: Vec<serde_json::Value> = body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .filter_map(|l| serde_json::from_slice(l).ok())
                .collect();
            if !rows.is_empty() {
                out.insert(t.table.clone(), rows);
            }
        }
        Ok(out)
    }

    /// The database the data tables are in: on a cluster, the local one (`crate::cluster`),
    /// where `system.columns` describes the real engines.
    pub(crate) fn data_database(&self) -> String {
        match self.cluster() {
            Some(_) => crate::cluster::local_database(self.database().name()),
            None => self.database().name().to_owned(),
        }
    }
}

// The request ledger (`regulations`, `regulation_audit`): every status is a new row, the
// latest wins (FINAL), so a request's state survives any restart of whoever carries it out.

const LEDGER_COLUMNS: &str =
    "regulation_id, kind, subject_kind, subject_ids, requested_by, requested_at, status, detail, updated_at, version";

impl Warehouse {
    /// One request's latest state.
    pub async fn regulation(&self, id: &str) -> Result<Option<RegulationRow>, WarehouseError> {
        Ok(self
            .query(&format!("SELECT {LEDGER_COLUMNS} FROM {{db}}.regulations FINAL WHERE regulation_id = ? LIMIT 1"))
            .bind(id)
            .fetch_optional()
            .await?)
    }

    /// The latest `limit` requests, newest first.
    pub async fn regulations(&self, limit: u64) -> Result<Vec<RegulationRow>, WarehouseError> {
        Ok(self
            .query(&format!(
                "SELECT {LEDGER_COLUMNS} FROM {{db}}.regulations FINAL ORDER BY requested_at DESC, regulation_id LIMIT ?"
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
                "SELECT {LEDGER_COLUMNS} FROM {{db}}.regulations FINAL \
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

/// A WHERE clause over a table's identity columns, values inlined.
fn identity_condition(t: &TableColumns, s: &Subjects) -> Option<String> {
    let mut parts = Vec::new();
    if !s.users.is_empty() {
        if t.user_id {
            parts.push(format!("user_id IN {}", in_list(&s.users)));
        }
        if t.member {
            parts.push(format!("(member_kind = 'user' AND member IN {})", in_list(&s.users)));
        }
    }
    if !s.accounts.is_empty() && t.account_id {
        parts.push(format!("account_id IN {}", in_list(&s.accounts)));
    }
    (!parts.is_empty()).then(|| parts.join(" OR "))
}

/// `('a', 'b')`: an `IN` list of literals (ClickHouse 18.16 takes a tuple there, not an array).
fn in_list(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(literal).collect();
    format!("({})", items.join(", "))
}

/// The personal values of an identify call's traits (JSON text), each at least 3 characters: a
/// shorter "name" would redact unrelated words.
pub fn personal_values(traits: &str) -> Vec<String> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(traits) else {
        return Vec::new();
    };
    PERSONAL_TRAITS
        .iter()
        .filter_map(|k| map.get(*k).and_then(|v| v.as_str()))
        .map(str::trim)
        .filter(|v| v.chars().count() >= 3)
        .map(str::to_owned)
        .collect()
}

/// `s` with every RE2 metacharacter escaped, so a term matches only itself.
fn escape_re2(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$-#&~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_traits_are_the_named_keys_of_three_characters_or_more() {
        let t = r#"{"email":"ann@x.com","name":"Ann Lee","plan":"pro","firstName":"Al","phone":42}"#;
        assert_eq!(personal_values(t), vec!["ann@x.com".to_owned(), "Ann Lee".to_owned()]);
        assert!(personal_values("not json").is_empty());
    }

    #[test]
    fn a_term_is_escaped_and_found_only_as_a_whole_token() {
        let s = Subjects { users: vec!["u.1".into()], accounts: vec![], terms: vec!["u.1".into(), "a+b@x.com".into()] };
        assert_eq!(s.patterns(), [r"(^|[^A-Za-z0-9_.@+-])(u\.1|a\+b@x\.com)([^A-Za-z0-9_.@+-]|$)"]);
        assert!(Subjects::default().patterns().is_empty());
        let numeric = Subjects { terms: vec!["42".into(), "ann".into()], ..Subjects::default() };
        assert_eq!(
            numeric.patterns(),
            [r"(^|[^A-Za-z0-9_.@+-])(ann)([^A-Za-z0-9_.@+-]|$)", r#"(^|[ "(])(42)([ ")\.,]|$)"#],
            "a number only where text or a JSON string holds it"
        );
    }

    #[test]
    fn tables_are_classified_by_their_columns() {
        let col = |t: &str, n: &str, ty: &str, key: bool| (t.to_owned(), n.to_owned(), ty.to_owned(), key);
        let tables = TableColumns::from_columns([
            col("events", "account_id", "String", true),
            col("events", "user_id", "String", false),
            col("events", "properties", "String", false),
            col("events", "uses", "UInt64", false),
            col("members", "member_kind", "Enum8('user' = 1, 'feature' = 2)", true),
            col("members", "member", "String", true),
            col("regulations", "subject_ids", "Array(String)", false),
            col("regulation_audit", "detail", "String", false),
            col("scores", "score", "Nullable(String)", false),
            col("counts", "n", "UInt64", false),
        ]);
        let names: Vec<&str> = tables.iter().map(|t| t.table.as_str()).collect();
        assert_eq!(names, ["events", "members", "scores"], "the ledger and tables naming no one are left out");
        assert!(tables[0].user_id && tables[0].account_id && tables[0].text == ["properties"]);
        assert!(tables[1].member && tables[1].text.is_empty(), "key columns are not text to redact");
        assert_eq!(tables[2].text, ["score"]);
    }

    #[test]
    fn identity_conditions_follow_the_columns_a_table_has() {
        let s = Subjects { users: vec!["ann".into()], accounts: vec!["acme".into()], terms: vec![] };
        let events = TableColumns { table: "events".into(), user_id: true, account_id: true, ..Default::default() };
        assert_eq!(identity_condition(&events, &s).unwrap(), "user_id IN ('ann') OR account_id IN ('acme')");
        let members = TableColumns { table: "m".into(), member: true, ..Default::default() };
        assert_eq!(identity_condition(&members, &s).unwrap(), "(member_kind = 'user' AND member IN ('ann'))");
        let users_only = Subjects { accounts: vec![], ..s };
        let metrics = TableColumns { table: "account_metrics".into(), account_id: true, ..Default::default() };
        assert!(identity_condition(&metrics, &users_only).is_none(), "a person's deletion keeps account rows");
    }
}
