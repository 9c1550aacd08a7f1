//! The rule file's format: typed serde structs (tagged condition enum, `Severity`, `Stage`,
//! human durations), then validation that resolves metric names into [`Metric`]s. Every error
//! names the rule and the field, e.g. `rule "r1": when.of[0].metric: unknown metric "nps"`.

use std::time::Duration;

use schemas::alert::Severity;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use toml::{Table, Value};

use super::{Condition, Op, Rule, Since};
use crate::model::{Metric, Stage};
use crate::AggregatorError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    #[serde(default)]
    description: String,
    severity: Severity,
    #[serde(default, deserialize_with = "stages")]
    stages: Vec<Stage>,
    #[serde(default)]
    min_account_age_days: u32,
    #[serde(default, rename = "for")]
    for_duration: Option<ForDuration>,
    #[serde(default)]
    resolve_after: Option<HumanDuration>,
    #[serde(default)]
    cooldown: Option<HumanDuration>,
    #[serde(default)]
    auto_resolve: Option<bool>,
    /// Deserialized on its own ([`condition`]), so its errors can name the field inside it.
    when: Value,
    #[serde(default)]
    hold_while: Option<Value>,
    #[serde(default)]
    resolve_when: Option<Value>,
}

/// A condition as written: `{ kind = "threshold", metric = …, op = …, value = … }`.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum RawCondition {
    Threshold(Threshold),
    Change(Change),
    Baseline(BaselineRaw),
    Inactivity(Inactivity),
    All(Of),
    Any(Of),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Threshold {
    metric: String,
    op: Op,
    #[serde(deserialize_with = "finite")]
    value: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    metric: String,
    window: String,
    #[serde(deserialize_with = "finite")]
    at_most_pct: f64,
    #[serde(default = "one", deserialize_with = "finite")]
    min_base: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineRaw {
    metric: String,
    #[serde(default = "week")]
    window: String,
    #[serde(deserialize_with = "finite")]
    at_most_pct: f64,
    #[serde(default, deserialize_with = "finite_opt")]
    at_least_pct: Option<f64>,
    #[serde(default = "one", deserialize_with = "finite")]
    min_baseline: f64,
}

fn week() -> String {
    "7d".into()
}

fn finite_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    finite(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Inactivity {
    since: Since,
    #[serde(deserialize_with = "finite")]
    days: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Of {
    of: Vec<RawCondition>,
}

fn one() -> f64 {
    1.0
}

/// nan/inf would make a condition silently never (or always) hold.
fn finite<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    f64::deserialize(d)
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| serde::de::Error::custom("must be a number (not nan or inf)"))
}

/// A list of stages; an unknown one is named without its index (`stages: unknown stage …`).
fn stages<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Stage>, D::Error> {
    Vec::<String>::deserialize(d)?.into_iter().map(|s| Stage::try_from(s).map_err(serde::de::Error::custom)).collect()
}

/// `for`: a duration like `cooldown`. It used to be a count of evaluations; a number is refused
/// with what changed rather than read as seconds or passes (docs/architecture.md#alert-episodes).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
struct ForDuration(Duration);

impl TryFrom<Value> for ForDuration {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        match v {
            Value::String(s) => HumanDuration::try_from(s).map(|d| Self(d.0)),
            Value::Integer(_) | Value::Float(_) => {
                Err("a number is no longer accepted: `for` is a duration such as \"3d\" \
                 (it used to count evaluations, which depended on evaluation_interval)"
                    .to_owned())
            }
            other => Err(format!("{other} is not a duration like 30m, 12h or 3d")),
        }
    }
}

/// `30m`, `12h`, `7d` in a rule file.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
struct HumanDuration(Duration);

impl TryFrom<String> for HumanDuration {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        parse_duration(&s).map(Self).ok_or_else(|| format!("{s:?} is not a duration like 30m, 12h or 7d"))
    }
}

/// `30m`, `12h`, `7d`. `None` for anything else — including a multi-byte last character
/// (`"7µ"`) and an amount that would overflow — never a panic: the text comes from a config file.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let secs: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return None,
    };
    // The unit is ASCII here, so cutting one byte off is on a character boundary.
    let n = &s[..s.len() - 1];
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Duration::from_secs(n.parse::<u64>().ok()?.checked_mul(secs)?))
}

/// A validation error that names the rule and the field.
fn bad(rule: &str, field: &str, reason: impl std::fmt::Display) -> AggregatorError {
    AggregatorError::Config { key: format!("rule {rule:?}: {field}"), reason: reason.to_string() }
}

/// Deserializes `T` from `v`; on error, the field (under `field`) and serde's reason.
fn typed<T: DeserializeOwned>(v: Value, field: &str) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let reason = e.inner().to_string();
        let key = e.path().iter().find_map(|s| match s {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            _ => None,
        });
        // An unknown field is reported on the struct, not on the field: take its name from serde.
        let unknown = reason.strip_prefix("unknown field `").and_then(|r| r.split('`').next()).map(str::to_owned);
        let join = |k: String| if field.is_empty() { k } else { format!("{field}.{k}") };
        match (unknown, key) {
            (Some(k), _) => (join(k), "unknown field for this kind".to_owned()),
            (None, Some(k)) => (join(k), reason),
            (None, None) => (field.to_owned(), reason),
        }
    })
}

/// Parses and validates a rule file; every error names the rule and the field.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, AggregatorError> {
    let raw: RawFile = toml::from_str(text)
        .map_err(|e| AggregatorError::Config { key: "rules file".into(), reason: e.to_string() })?;
    let mut rules: Vec<Rule> = Vec::new();
    for table in raw.rule {
        let id = table.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let r: RawRule = typed(Value::Table(table), "").map_err(|(field, reason)| bad(&id, &field, reason))?;
        if r.id.is_empty() || !r.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(bad(&r.id, "id", "must be letters, digits, _ or -"));
        }
        if rules.iter().any(|x| x.id == r.id) {
            return Err(bad(&r.id, "id", "is used by another rule"));
        }
        let when = condition(&r.id, "when", r.when)?;
        let hold_while = r.hold_while.map(|v| condition(&r.id, "hold_while", v)).transpose()?;
        if hold_while.is_some() && !r.auto_resolve.unwrap_or(true) {
            return Err(bad(
                &r.id,
                "hold_while",
                "holds an episode open until it resolves: not for a rule with auto_resolve = false",
            ));
        }
        let resolve_when = r.resolve_when.map(|v| condition(&r.id, "resolve_when", v)).transpose()?;
        if resolve_when.is_some() && r.resolve_after.is_none_or(|d| d.0.is_zero()) {
            return Err(bad(
                &r.id,
                "resolve_when",
                "resolves an episode before its resolve_after: only for a rule with a resolve_after",
            ));
        }
        rules.push(Rule {
            description: r.description,
            severity: r.severity,
            stages: r.stages,
            min_account_age_days: r.min_account_age_days,
            for_duration: r.for_duration.map_or(Duration::ZERO, |f| f.0),
            resolve_after: r.resolve_after.map_or(Duration::ZERO, |d| d.0),
            cooldown: r.cooldown.map_or(Duration::ZERO, |c| c.0),
            auto_resolve: r.auto_resolve.unwrap_or(true),
            when,
            hold_while,
            resolve_when,
            id: r.id,
        });
    }
    Ok(rules)
}

/// The condition at `field` of `rule`, typed and resolved.
fn condition(rule: &str, field: &str, v: Value) -> Result<Condition, AggregatorError> {
    match RawCondition::deserialize(v.clone()) {
        Ok(raw) => resolve(rule, field, raw),
        Err(e) => Err(locate(rule, field, &v).unwrap_or_else(|| bad(rule, field, e))),
    }
}

/// Where in the condition `v` a deserialization error is: serde's tagged enums buffer their
/// content and lose the path, so the condition's own kind is deserialized again on its own.
fn locate(rule: &str, field: &str, v: &Value) -> Option<AggregatorError> {
    let Some(t) = v.as_table() else { return Some(bad(rule, field, "must be a table with a kind")) };
    let kinds = "expected threshold, change, baseline, inactivity, all or any";
    let mut rest = t.clone();
    let kind = match rest.remove("kind") {
        Some(Value::String(k)) => k,
        Some(_) | None => return Some(bad(rule, &format!("{field}.kind"), format!("must be a string; {kinds}"))),
    };
    let fail = |(f, reason): (String, String)| Some(bad(rule, &f, reason));
    let rest = Value::Table(rest);
    match kind.as_str() {
        "threshold" => typed::<Threshold>(rest, field).err().and_then(fail),
        "change" => typed::<Change>(rest, field).err().and_then(fail),
        "baseline" => typed::<BaselineRaw>(rest, field).err().and_then(fail),
        "inactivity" => typed::<Inactivity>(rest, field).err().and_then(fail),
        "all" | "any" => {
            if let Err((f, reason)) = typed::<Of>(rest.clone(), field) {
                let of = rest.get("of").and_then(Value::as_array);
                // An error inside one of the parts: find that part.
                let part = of.into_iter().flatten().enumerate().find_map(|(i, c)| {
                    RawCondition::deserialize(c.clone())
                        .err()
                        .and_then(|_| locate(rule, &format!("{field}.of[{i}]"), c))
                });
                return part.or_else(|| Some(bad(rule, &f, reason)));
            }
            None
        }
        other => Some(bad(rule, &format!("{field}.kind"), format!("{other:?}; {kinds}"))),
    }
}

fn resolve(rule: &str, field: &str, raw: RawCondition) -> Result<Condition, AggregatorError> {
    match raw {
        RawCondition::Threshold(t) => {
            let metric = Metric::named(&t.metric).ok_or_else(|| {
                let known: Vec<&str> = Metric::all().map(Metric::name).collect();
                bad(
                    rule,
                    &format!("{field}.metric"),
                    format!("unknown metric {:?}; known: {}", t.metric, known.join(", ")),
                )
            })?;
            Ok(Condition::Threshold { metric, op: t.op, value: t.value })
        }
        RawCondition::Change(c) => {
            let (m, w) = (&c.metric, &c.window);
            let (Some(change), Some(current)) =
                (Metric::named(&format!("{m}_change_{w}")), Metric::named(&format!("{m}_{w}")))
            else {
                return Err(bad(
                    rule,
                    &format!("{field}.metric"),
                    format!("no change metric for {m:?} over {w:?} (e.g. active_users 7d/30d, events 7d, records 30d)"),
                ));
            };
            let previous = Metric::named(&format!("{m}_prev_{w}"));
            Ok(Condition::Change {
                current,
                previous,
                change,
                at_most_pct: c.at_most_pct,
                min_base: c.min_base,
                name: c.metric,
                window: c.window,
            })
        }
        RawCondition::Baseline(b) => {
            let (m, w) = (&b.metric, &b.window);
            let change = match w.as_str() {
                "7d" => Metric::named(&format!("{m}_vs_baseline")),
                "3d" => Metric::named(&format!("{m}_3d_vs_baseline")),
                _ => return Err(bad(rule, &format!("{field}.window"), format!("{w:?}; expected 7d or 3d"))),
            };
            let (Some(change), Some(usual)) = (change, Metric::named(&format!("{m}_baseline"))) else {
                return Err(bad(
                    rule,
                    &format!("{field}.metric"),
                    format!(
                        "no baseline for {m:?} over {w:?} (active_user_days 7d/3d; active_users, logins, features_used, records 7d)"
                    ),
                ));
            };
            if b.at_least_pct.is_some_and(|low| low >= b.at_most_pct) {
                return Err(bad(rule, &format!("{field}.at_least_pct"), "must be below at_most_pct"));
            }
            Ok(Condition::Baseline {
                usual,
                change,
                at_most_pct: b.at_most_pct,
                at_least_pct: b.at_least_pct,
                min_baseline: b.min_baseline,
                name: b.metric,
                window: b.window,
            })
        }
        RawCondition::Inactivity(i) => {
            if i.days < 1.0 {
                return Err(bad(rule, &format!("{field}.days"), "must be at least 1"));
            }
            Ok(Condition::Inactivity { since: i.since, days: i.days as u32 })
        }
        RawCondition::All(Of { of }) | RawCondition::Any(Of { of }) if of.is_empty() => {
            Err(bad(rule, &format!("{field}.of"), "must be a non-empty list of conditions"))
        }
        RawCondition::All(Of { of }) => Ok(Condition::All(parts(rule, field, of)?)),
        RawCondition::Any(Of { of }) => Ok(Condition::Any(parts(rule, field, of)?)),
    }
}

fn parts(rule: &str, field: &str, of: Vec<RawCondition>) -> Result<Vec<Condition>, AggregatorError> {
    of.into_iter().enumerate().map(|(i, c)| resolve(rule, &format!("{field}.of[{i}]"), c)).collect()
}
