//! Churn-risk rules from a TOML file: what to watch, for which lifecycle stages, how long it
//! must hold, how loud it is. Each rule looks at one account's [`MetricsRow`] and either finds a
//! risk — with the values it used and a sentence a CSM understands — or not.
//!
//! ```toml
//! [[rule]]
//! id = "usage_falling"
//! severity = "warning"                  # info | warning | critical
//! stages = ["growth", "renewal"]        # default: every stage
//! min_account_age_days = 30             # default 0 (age from contract_start)
//! for = 2                               # consecutive evaluations it must hold; default 1
//! cooldown = "7d"                       # no new episode within this after one resolved
//! auto_resolve = true                   # default true
//! when = { kind = "change", metric = "active_users", window = "7d", at_most_pct = -50, min_base = 3 }
//! ```
//! Condition kinds: `threshold` (metric, op `<` `<=` `>` `>=`, value), `change` (metric, window,
//! at_most_pct, min_base), `inactivity` (since = `login` | `activity`, days), `all` / `any` (of).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use schemas::alert::Severity;
use serde::Deserialize;
use toml::Value;

use crate::account::MetricsRow;
use crate::health::Stage;
use crate::AggregatorError;

/// The rule set shipped with uptake (deploy/rules.toml), used when no file is configured.
pub const DEFAULT_RULES: &str = include_str!("../../deploy/rules.toml");

/// Percentage change from `previous` to `current`; `None` when there is no previous base.
pub fn change_pct(previous: u64, current: u64) -> Option<f64> {
    (previous > 0).then(|| (current as f64 - previous as f64) * 100.0 / previous as f64)
}

/// How to read one metric from a metrics row.
type Reader = fn(&MetricsRow) -> Option<f64>;

/// Every metric a rule may name, with how to read it from a metrics row.
const METRICS: &[(&str, Reader)] = &[
    ("active_users_1d", |m| Some(m.active_users_1d as f64)),
    ("active_users_7d", |m| Some(m.active_users_7d as f64)),
    ("active_users_30d", |m| Some(m.active_users_30d as f64)),
    ("active_users_prev_7d", |m| Some(m.active_users_prev_7d as f64)),
    ("active_users_prev_30d", |m| Some(m.active_users_prev_30d as f64)),
    ("active_users_change_7d", |m| m.active_users_change_7d),
    ("active_users_change_30d", |m| m.active_users_change_30d),
    ("logins_7d", |m| Some(m.logins_7d as f64)),
    ("logins_30d", |m| Some(m.logins_30d as f64)),
    ("login_users_7d", |m| Some(m.login_users_7d as f64)),
    ("login_users_30d", |m| Some(m.login_users_30d as f64)),
    ("events_7d", |m| Some(m.events_7d as f64)),
    ("events_prev_7d", |m| Some(m.events_prev_7d as f64)),
    ("events_change_7d", |m| m.events_change_7d),
    ("events_30d", |m| Some(m.events_30d as f64)),
    ("events_per_active_user_7d", |m| m.events_per_active_user_7d),
    ("features_used_7d", |m| Some(m.features_used_7d as f64)),
    ("features_used_30d", |m| Some(m.features_used_30d as f64)),
    ("feature_breadth_30d", |m| m.feature_breadth_30d),
    ("records_30d", |m| Some(m.records_30d as f64)),
    ("records_prev_30d", |m| Some(m.records_prev_30d as f64)),
    ("records_change_30d", |m| m.records_change_30d),
    ("bytes_30d", |m| Some(m.bytes_30d as f64)),
    ("bytes_prev_30d", |m| Some(m.bytes_prev_30d as f64)),
    ("bytes_change_30d", |m| m.bytes_change_30d),
    ("stickiness_30d", |m| m.stickiness_30d),
    ("seat_utilisation", |m| m.seat_utilisation),
    ("days_since_last_activity", |m| m.days_since_last_activity.map(f64::from)),
    ("days_since_last_login", |m| m.days_since_last_login.map(f64::from)),
    ("latest_nps", |m| m.latest_nps.map(f64::from)),
    ("avg_csat_90d", |m| m.avg_csat_90d),
    ("open_tickets", |m| Some(m.open_tickets as f64)),
    ("health_score", |m| m.health_score),
    ("days_to_renewal", |m| m.days_to_renewal.map(f64::from)),
];

fn metric(name: &str) -> Option<Reader> {
    METRICS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Below,
    AtMost,
    Above,
    AtLeast,
}

impl Op {
    fn holds(self, v: f64, t: f64) -> bool {
        match self {
            Self::Below => v < t,
            Self::AtMost => v <= t,
            Self::Above => v > t,
            Self::AtLeast => v >= t,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Self::Below => "below",
            Self::AtMost => "at most",
            Self::Above => "above",
            Self::AtLeast => "at least",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Threshold { metric: String, op: Op, value: f64 },
    /// `metric_change_window` at most `at_most_pct`, with at least `min_base` in the previous window.
    Change { metric: String, window: String, at_most_pct: f64, min_base: f64 },
    /// No login (or no activity) for at least `days`.
    Inactivity { login: bool, days: u32 },
    All(Vec<Condition>),
    Any(Vec<Condition>),
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub severity: Severity,
    /// Empty: every stage.
    pub stages: Vec<Stage>,
    pub min_account_age_days: u32,
    pub for_evaluations: u32,
    pub cooldown: Duration,
    pub auto_resolve: bool,
    pub when: Condition,
}

/// What a condition found: the values it read and a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub metrics: BTreeMap<String, f64>,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    #[serde(default)]
    description: String,
    severity: String,
    #[serde(default)]
    stages: Vec<String>,
    #[serde(default)]
    min_account_age_days: u32,
    #[serde(default, rename = "for")]
    for_evaluations: Option<u32>,
    #[serde(default)]
    cooldown: Option<String>,
    #[serde(default)]
    auto_resolve: Option<bool>,
    when: Value,
}

/// A validation error that names the rule and the field.
fn bad(rule: &str, field: &str, reason: impl std::fmt::Display) -> AggregatorError {
    AggregatorError::Config { key: format!("rule {rule:?}: {field}"), reason: reason.to_string() }
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

/// Parses and validates a rule file; every error names the rule and the field.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, AggregatorError> {
    let raw: RawFile = toml::from_str(text)
        .map_err(|e| AggregatorError::Config { key: "rules file".into(), reason: e.to_string() })?;
    let mut rules: Vec<Rule> = Vec::new();
    for r in raw.rule {
        if r.id.is_empty() || !r.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(bad(&r.id, "id", "must be letters, digits, _ or -"));
        }
        if rules.iter().any(|x| x.id == r.id) {
            return Err(bad(&r.id, "id", "is used by another rule"));
        }
        let severity = match r.severity.as_str() {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "critical" => Severity::Critical,
            other => return Err(bad(&r.id, "severity", format!("{other:?}; expected info, warning or critical"))),
        };
        let stages = r
            .stages
            .iter()
            .map(|s| Stage::parse(s).ok_or_else(|| bad(&r.id, "stages", format!("unknown stage {s:?}; expected onboarding, growth or renewal"))))
            .collect::<Result<Vec<_>, _>>()?;
        let for_evaluations = r.for_evaluations.unwrap_or(1);
        if for_evaluations == 0 {
            return Err(bad(&r.id, "for", "must be at least 1"));
        }
        let cooldown = match &r.cooldown {
            None => Duration::ZERO,
            Some(c) => parse_duration(c).ok_or_else(|| bad(&r.id, "cooldown", format!("{c:?} is not a duration like 30m, 12h or 7d")))?,
        };
        let when = condition(&r.id, "when", &r.when)?;
        rules.push(Rule {
            description: r.description,
            severity,
            stages,
            min_account_age_days: r.min_account_age_days,
            for_evaluations,
            cooldown,
            auto_resolve: r.auto_resolve.unwrap_or(true),
            when,
            id: r.id,
        });
    }
    Ok(rules)
}

/// Reads and validates the rule file at `path`, or the shipped default set.
pub fn load_rules(path: Option<&Path>) -> Result<Vec<Rule>, AggregatorError> {
    match path {
        None => parse_rules(DEFAULT_RULES),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| AggregatorError::Config { key: "rules_file".into(), reason: format!("{}: {e}", p.display()) })?;
            parse_rules(&text)
        }
    }
}

fn condition(rule: &str, field: &str, v: &Value) -> Result<Condition, AggregatorError> {
    let t = v.as_table().ok_or_else(|| bad(rule, field, "must be a table with a kind"))?;
    let get = |k: &str| t.get(k);
    let num = |k: &str| -> Result<f64, AggregatorError> {
        get(k)
            .and_then(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
            // nan/inf would make a condition silently never (or always) hold.
            .filter(|x| x.is_finite())
            .ok_or_else(|| bad(rule, &format!("{field}.{k}"), "must be a number (not nan or inf)"))
    };
    let string = |k: &str| -> Result<String, AggregatorError> {
        get(k).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| bad(rule, &format!("{field}.{k}"), "must be a string"))
    };
    let allowed = |keys: &[&str]| -> Result<(), AggregatorError> {
        match t.keys().find(|k| !keys.contains(&k.as_str())) {
            Some(k) => Err(bad(rule, &format!("{field}.{k}"), "unknown field for this kind")),
            None => Ok(()),
        }
    };
    match string("kind")?.as_str() {
        "threshold" => {
            allowed(&["kind", "metric", "op", "value"])?;
            let m = string("metric")?;
            if metric(&m).is_none() {
                let known: Vec<&str> = METRICS.iter().map(|(n, _)| *n).collect();
                return Err(bad(rule, &format!("{field}.metric"), format!("unknown metric {m:?}; known: {}", known.join(", "))));
            }
            let op = match string("op")?.as_str() {
                "<" => Op::Below,
                "<=" => Op::AtMost,
                ">" => Op::Above,
                ">=" => Op::AtLeast,
                other => return Err(bad(rule, &format!("{field}.op"), format!("{other:?}; expected <, <=, > or >="))),
            };
            Ok(Condition::Threshold { metric: m, op, value: num("value")? })
        }
        "change" => {
            allowed(&["kind", "metric", "window", "at_most_pct", "min_base"])?;
            let (m, w) = (string("metric")?, string("window")?);
            for needed in [format!("{m}_change_{w}"), format!("{m}_{w}")] {
                if metric(&needed).is_none() {
                    return Err(bad(rule, &format!("{field}.metric"), format!("no change metric for {m:?} over {w:?} (e.g. active_users 7d/30d, events 7d, records 30d)")));
                }
            }
            let min_base = if get("min_base").is_some() { num("min_base")? } else { 1.0 };
            Ok(Condition::Change { metric: m, window: w, at_most_pct: num("at_most_pct")?, min_base })
        }
        "inactivity" => {
            allowed(&["kind", "since", "days"])?;
            let login = match string("since")?.as_str() {
                "login" => true,
                "activity" => false,
                other => return Err(bad(rule, &format!("{field}.since"), format!("{other:?}; expected login or activity"))),
            };
            let days = num("days")?;
            if days < 1.0 {
                return Err(bad(rule, &format!("{field}.days"), "must be at least 1"));
            }
            Ok(Condition::Inactivity { login, days: days as u32 })
        }
        kind @ ("all" | "any") => {
            allowed(&["kind", "of"])?;
            let of = get("of").and_then(Value::as_array).filter(|a| !a.is_empty());
            let of = of.ok_or_else(|| bad(rule, &format!("{field}.of"), "must be a non-empty list of conditions"))?;
            let parts = of
                .iter()
                .enumerate()
                .map(|(i, c)| condition(rule, &format!("{field}.of[{i}]"), c))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if kind == "all" { Condition::All(parts) } else { Condition::Any(parts) })
        }
        other => Err(bad(rule, &format!("{field}.kind"), format!("{other:?}; expected threshold, change, inactivity, all or any"))),
    }
}

fn label(metric: &str, window: &str) -> String {
    match (metric, window) {
        ("active_users", "7d") => "Weekly active users".into(),
        ("active_users", "30d") => "Monthly active users".into(),
        ("latest_nps", _) => "Latest NPS".into(),
        ("avg_csat_90d", _) => "Average CSAT (90 days)".into(),
        _ => {
            let words = metric.replace('_', " ");
            let mut c = words.chars();
            let first = c.next().map(|f| f.to_uppercase().collect::<String>()).unwrap_or_default();
            if window.is_empty() { format!("{first}{}", c.as_str()) } else { format!("{first}{} ({window})", c.as_str()) }
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

impl Condition {
    /// The finding when the condition holds for `m`; `None` when it does not, or when an input
    /// it needs is missing (a rule never fires on data the account does not send).
    pub fn check(&self, m: &MetricsRow) -> Option<Finding> {
        match self {
            Self::Threshold { metric: name, op, value } => {
                let v = metric(name)?(m)?;
                op.holds(v, *value).then(|| Finding {
                    metrics: BTreeMap::from([(name.clone(), v)]),
                    reason: format!("{} is {} ({} {})", label(name, ""), fmt_num(v), op.words(), fmt_num(*value)),
                })
            }
            Self::Change { metric: name, window, at_most_pct, min_base } => {
                let cur = metric(&format!("{name}_{window}"))?(m)?;
                let prev = metric(&format!("{name}_prev_{window}")).and_then(|f| f(m));
                let change = metric(&format!("{name}_change_{window}"))?(m)?;
                if change > *at_most_pct || prev.is_some_and(|p| p < *min_base) {
                    return None;
                }
                let mut metrics = BTreeMap::from([(format!("{name}_{window}"), cur), (format!("{name}_change_{window}"), change)]);
                let span = window.trim_end_matches('d');
                let reason = match prev {
                    Some(p) => {
                        metrics.insert(format!("{name}_prev_{window}"), p);
                        let verb = if change < 0.0 { "fell" } else { "rose" };
                        format!("{} {verb} {:.0} % ({} → {}) vs the previous {span} days", label(name, window), change.abs(), fmt_num(p), fmt_num(cur))
                    }
                    None => format!("{} changed {:.0} % vs the previous {span} days", label(name, window), change),
                };
                Some(Finding { metrics, reason })
            }
            Self::Inactivity { login, days } => {
                let (name, what) = if *login { ("days_since_last_login", "login") } else { ("days_since_last_activity", "activity") };
                let since = metric(name)?(m);
                match since {
                    Some(d) if d >= *days as f64 => Some(Finding {
                        metrics: BTreeMap::from([(name.to_owned(), d)]),
                        reason: format!("No {what} for {} days", fmt_num(d)),
                    }),
                    Some(_) => None,
                    // Never: only a login rule can say so (activity always has a first event).
                    None => login.then(|| Finding { metrics: BTreeMap::new(), reason: "No login recorded yet".into() }),
                }
            }
            Self::All(parts) => {
                let found = parts.iter().map(|c| c.check(m)).collect::<Option<Vec<_>>>()?;
                Some(merge(found, " and "))
            }
            Self::Any(parts) => {
                let found: Vec<Finding> = parts.iter().filter_map(|c| c.check(m)).collect();
                (!found.is_empty()).then(|| merge(found, "; "))
            }
        }
    }
}

fn merge(found: Vec<Finding>, join: &str) -> Finding {
    let mut metrics = BTreeMap::new();
    let mut reasons = Vec::new();
    for (i, f) in found.into_iter().enumerate() {
        metrics.extend(f.metrics);
        // Later parts read as a continuation of the sentence.
        let mut r = f.reason;
        if i > 0 {
            if let Some(first) = r.chars().next() {
                r = first.to_lowercase().collect::<String>() + &r[first.len_utf8()..];
            }
        }
        reasons.push(r);
    }
    Finding { metrics, reason: reasons.join(join) }
}

impl Condition {
    fn metric_names(&self, out: &mut Vec<String>) {
        match self {
            Self::Threshold { metric, .. } => out.push(metric.clone()),
            Self::Change { metric, window, .. } => {
                out.extend([format!("{metric}_{window}"), format!("{metric}_prev_{window}"), format!("{metric}_change_{window}")])
            }
            Self::Inactivity { login: true, .. } => out.push("days_since_last_login".into()),
            Self::Inactivity { login: false, .. } => out.push("days_since_last_activity".into()),
            Self::All(parts) | Self::Any(parts) => parts.iter().for_each(|p| p.metric_names(out)),
        }
    }

    /// The current values of every metric the condition reads (for resolved alerts).
    pub fn values(&self, m: &MetricsRow) -> BTreeMap<String, f64> {
        let mut names = Vec::new();
        self.metric_names(&mut names);
        names.into_iter().filter_map(|n| metric(&n).and_then(|f| f(m)).map(|v| (n, v))).collect()
    }
}

impl Rule {
    /// Whether the rule applies to `m` at all: its stage and the account's age.
    pub fn applies(&self, m: &MetricsRow) -> bool {
        let stage_ok = self.stages.is_empty() || m.stage().is_some_and(|s| self.stages.contains(&s));
        let age_ok = self.min_account_age_days == 0
            || m.days_since_start.is_some_and(|d| d >= self.min_account_age_days as i32);
        stage_ok && age_ok
    }
}

#[cfg(test)]
mod tests;
