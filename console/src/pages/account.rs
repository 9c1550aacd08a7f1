//! One account: its health history with the bands and components, its usage charts, what
//! changed in words, the alert timeline with every action, traits, contract dates and outcomes.

use aggregator::model::MetricsRow;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde_json::Value;
use warehouse::rows::HealthDayRow;

use super::inbox::actions;
use super::{band_badge, change, dash, layout, severity_badge, when, Nav, Viewer};
use crate::charts::{line_chart, Frame, Series};
use crate::store::{AlertView, OutcomeRow, TimelineRow};

pub struct AccountView<'a> {
    pub account_id: &'a str,
    pub now_row: Option<&'a MetricsRow>,
    pub history: &'a [HealthDayRow],
    pub alerts: &'a [AlertView],
    pub timeline: &'a [TimelineRow],
    pub outcomes: &'a [OutcomeRow],
    /// The latest traits as a JSON object.
    pub traits: &'a Value,
    /// (red below, green from).
    pub bands: (f64, f64),
    pub first_day: u16,
    pub last_day: u16,
    pub users: &'a [String],
    pub now: DateTime<Utc>,
}

const COMPONENTS: [(&str, &str); 5] = [
    ("deployment", "seats in use"),
    ("adoption", "feature breadth"),
    ("trend", "usage vs its usual"),
    ("value", "data put in"),
    ("experience", "surveys and tickets"),
];

fn component(m: &MetricsRow, name: &str) -> Option<f64> {
    match name {
        "deployment" => m.health_deployment,
        "adoption" => m.health_adoption,
        "trend" => m.health_trend,
        "value" => m.health_value,
        "experience" => m.health_experience,
        _ => None,
    }
}

/// What changed, in sentences a CSM reads in ten seconds.
pub fn what_changed(m: &MetricsRow) -> Vec<String> {
    let mut out = Vec::new();
    match (m.health_score, m.health_score_14d_ago) {
        (Some(now), Some(then)) if (now - then).abs() >= 5.0 => {
            let verb = if now < then { "fell" } else { "rose" };
            out.push(format!("Health {verb} {:.0} points in 14 days ({then:.0} → {now:.0}).", (now - then).abs()));
        }
        (Some(now), Some(_)) => out.push(format!("Health is steady at {now:.0} over 14 days.")),
        (Some(now), None) => out.push(format!("Health is {now:.0}; there is no score from 14 days ago to compare.")),
        _ => out.push("No health score yet: too little usage recorded.".into()),
    }
    let weakest = COMPONENTS.iter().find(|(n, _)| *n == m.health_weakest);
    if let Some((name, what)) = weakest {
        let value = component(m, name).map(|v| format!(" ({v:.0}/100)")).unwrap_or_default();
        out.push(format!("Weakest component: {name} — {what}{value}."));
    }
    match m.health_cap.as_str() {
        "inactive" => out.push("Capped at red: nobody has used the product for weeks.".into()),
        "falling_usage" => out.push("Capped at yellow: usage is well below the account's usual.".into()),
        _ => {}
    }
    if let (Some(usual), Some(vs)) = (m.active_users_baseline, m.active_users_vs_baseline) {
        out.push(format!(
            "{} weekly active users against a usual {usual:.0} ({}{:.0} %).",
            m.active_users_7d,
            if vs < 0.0 { "−" } else { "+" },
            vs.abs()
        ));
    }
    if let Some(d) = m.days_since_last_login.filter(|d| *d >= 7) {
        out.push(format!("No login for {d} days."));
    }
    if m.latest_nps.is_some_and(|n| n >= 9) && m.health_band != "green" {
        out.push("Survey scores are happy, but usage says otherwise: do not read the NPS as health.".into());
    }
    if m.open_tickets > 0 {
        out.push(format!("{} support ticket(s) open.", m.open_tickets));
    }
    out
}

fn series<'a>(
    history: &[HealthDayRow],
    label: &'a str,
    class: &'a str,
    f: impl Fn(&HealthDayRow) -> Option<f64>,
) -> Series<'a> {
    Series { label, class, points: history.iter().filter_map(|h| f(h).map(|v| (h.day, v))).collect() }
}

/// Why a red account has no open alert to work, when it has none (health and alerts must agree,
/// or the CSM must be told why they do not): its alert is snoozed, or was closed, or no rule
/// holds for it — and then what makes it red. `None` when it is not red or has an open alert.
pub fn red_without_alert(m: &MetricsRow, alerts: &[AlertView], now: DateTime<Utc>) -> Option<String> {
    if m.health_band != "red" {
        return None;
    }
    let now = now.timestamp();
    let open: Vec<&AlertView> = alerts.iter().filter(|a| a.open == 1 && a.closed == 0).collect();
    if open.iter().any(|a| (a.snoozed_until as i64) <= now) {
        return None;
    }
    if let Some(a) = open.iter().max_by_key(|a| a.snoozed_until) {
        let until = DateTime::from_timestamp(a.snoozed_until as i64, 0).map(|t| t.format("%Y-%m-%d %H:%M UTC"));
        let until = until.map(|t| t.to_string()).unwrap_or_default();
        return Some(format!("Red, and its alert ({}) is snoozed until {until}.", a.rule_id));
    }
    if let Some(a) = alerts.iter().filter(|a| a.closed == 1).max_by_key(|a| a.fired_at) {
        let reason = if a.close_reason.is_empty() { String::new() } else { format!(" as {}", a.close_reason) };
        return Some(format!(
            "Red, but its last alert ({}) was closed{reason}: a new one opens when a rule holds again after its cooldown.",
            a.rule_id
        ));
    }
    let why = match m.health_cap.as_str() {
        "inactive" => "nobody has used the product for weeks".to_owned(),
        _ => COMPONENTS.iter().find(|(n, _)| *n == m.health_weakest).map_or_else(
            || "its score is under 40".to_owned(),
            |(name, what)| format!("its weakest component is {name} ({what})"),
        ),
    };
    Some(format!(
        "Red without an open alert: no alert rule holds for this account (see Rules); it is red because {why}."
    ))
}

pub fn page(viewer: &Viewer<'_>, v: &AccountView<'_>) -> Markup {
    let frame = |id, title| Frame { id, title, first_day: v.first_day, last_day: v.last_day, ..Default::default() };
    let health =
        Frame { y_max: Some(100.0), bands: Some(v.bands), marks: true, ..frame("health-history", "Health, 90 days") };
    let components = Frame { y_max: Some(100.0), ..frame("health-components", "Health components") };
    let usual = v.now_row.and_then(|m| m.active_users_baseline).map(|u| (u, "usual"));
    let users = Frame { reference: usual, ..frame("chart-users", "Weekly active users vs usual") };
    let open: Vec<&AlertView> = v.alerts.iter().filter(|a| a.open == 1 && a.closed == 0).collect();
    let default_until = (v.now + chrono::Duration::days(7)).date_naive();
    let body = html! {
        h1 #account-name { (v.account_id) " " @if let Some(m) = v.now_row { (band_badge(&m.health_band, m.health_score)) } }
        @match v.now_row {
            None => p.notice { "No metrics for this account yet: it has sent no usage, or the aggregator has not evaluated it." },
            Some(m) => {
                p.muted {
                    "stage " strong { (m.lifecycle_stage.as_str()) } " · plan " (m.plan) " · owner " (if m.csm_owner.is_empty() { "none" } else { &m.csm_owner })
                    @if let Some(d) = m.days_to_renewal { " · renews in " strong { (d) " days" } }
                    " · evaluated " (when(m.computed_at))
                }
                @if let Some(why) = red_without_alert(m, v.alerts, v.now) {
                    p.notice #red-without-alert { (why) }
                }
                div.card #what-changed {
                    h2 { "What changed" }
                    ul { @for line in what_changed(m) { li { (line) } } }
                }
            }
        }
        @if !open.is_empty() {
            h2 { "Open alerts" }
            div.table-wrap { table #account-alerts { tbody {
                @for a in &open {
                    tr data-alert=(a.alert_id) {
                        td { (severity_badge(&a.severity)) " " (a.rule_id) br; span.small { (a.reason) } }
                        td { (actions(viewer, a, v.users, default_until)) }
                    }
                }
            } } }
        }
        h2 { "Health" }
        div.grid {
            div.card {
                (line_chart(&health, &[series(v.history, "score", "line-score", |h| h.health_score)]))
                p.legend { span.muted { "red below " (v.bands.0) ", green from " (v.bands.1) " · " (v.history.len()) " daily snapshots" } }
            }
            div.card {
                (line_chart(&components, &[
                    series(v.history, "deployment", "line-deployment", |h| h.health_deployment),
                    series(v.history, "adoption", "line-adoption", |h| h.health_adoption),
                    series(v.history, "trend", "line-trend", |h| h.health_trend),
                    series(v.history, "value", "line-value", |h| h.health_value),
                    series(v.history, "experience", "line-experience", |h| h.health_experience),
                ]))
            }
        }
        h2 { "Usage" }
        div.grid {
            div.card { (line_chart(&users, &[series(v.history, "weekly active users", "line-users", |h| Some(h.active_users_7d as f64))])) }
            div.card { (line_chart(&frame("chart-logins", "Logins, last 7 days"), &[series(v.history, "logins", "line-logins", |h| Some(h.logins_7d as f64))])) }
            div.card { (line_chart(&frame("chart-features", "Features used, last 30 days"), &[series(v.history, "features", "line-features", |h| Some(h.features_used_30d as f64))])) }
            div.card { (line_chart(&frame("chart-data", "Data put in (records), last 30 days"), &[series(v.history, "records", "line-records", |h| Some(h.records_30d as f64))])) }
        }
        div.grid {
            div {
                h2 { "Alert timeline" }
                div.card {
                    ul.timeline #alert-timeline {
                        @for t in v.timeline {
                            li data-alert=(t.alert_id) data-what=(t.what) {
                                span.small.muted { (when(t.at)) } " "
                                strong { (t.what.replace('_', " ")) } " · " (t.rule_id) " · by " (t.by)
                                @if !t.detail.trim().is_empty() { br; span.small { (t.detail.trim()) } }
                            }
                        }
                        @if v.timeline.is_empty() { li.muted { "No alerts yet." } }
                    }
                }
                h2 { "Outcomes" }
                div.card {
                    ul.timeline #outcomes {
                        @for o in v.outcomes {
                            li data-outcome=(o.outcome) data-source=(o.source) { strong { (o.outcome) } " on " (when(o.occurred_at)) span.muted.small { " (" (o.source) ")" } }
                        }
                        @if v.outcomes.is_empty() { li.muted { "None recorded." } }
                    }
                }
            }
            div {
                h2 { "Contract" }
                div.card {
                    @match v.now_row {
                        Some(m) => dl.traits #contract {
                            dt { "days since start" } dd { @match m.days_since_start { Some(d) => (d), None => (dash()) } }
                            dt { "days to renewal" } dd { @match m.days_to_renewal { Some(d) => (d), None => (dash()) } }
                            dt { "seats" } dd { @match m.seats { Some(s) => (s), None => (dash()) } }
                            dt { "seat utilisation" } dd { @match m.seat_utilisation { Some(s) => (format!("{:.0} %", s * 100.0)), None => (dash()) } }
                            dt { "latest NPS" } dd { @match m.latest_nps { Some(n) => (n), None => (dash()) } }
                            dt { "active users 7 d vs usual" } dd { (m.active_users_7d) " " (change(m.active_users_vs_baseline)) }
                        },
                        None => p.muted { "Unknown." },
                    }
                }
                h2 { "Traits" }
                div.card {
                    dl.traits #traits {
                        @if let Some(obj) = v.traits.as_object() {
                            @for (k, val) in obj {
                                dt { (k) } dd { (match val { Value::String(s) => s.clone(), other => other.to_string() }) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(v.account_id, Some(viewer), Nav::None, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red() -> MetricsRow {
        MetricsRow {
            account_id: "wayne".into(),
            health_band: "red".into(),
            health_weakest: "trend".into(),
            ..Default::default()
        }
    }

    fn alert(open: u8, closed: u8, snoozed_until: u32) -> AlertView {
        AlertView {
            alert_id: "a1".into(),
            account_id: "wayne".into(),
            rule_id: "usage_sliding".into(),
            severity: "warning".into(),
            fired_at: 1_000,
            lifecycle_stage: "growth".into(),
            health_score: Some(30.0),
            csm_owner: String::new(),
            reason: String::new(),
            metrics: "{}".into(),
            open,
            acknowledged_by: String::new(),
            assignee: String::new(),
            snoozed_until,
            snooze_note: String::new(),
            closed,
            close_reason: if closed == 1 { "saved".into() } else { String::new() },
        }
    }

    #[test]
    fn a_red_account_without_an_open_alert_says_why() {
        let now = DateTime::from_timestamp(2_000_000, 0).unwrap();
        let m = red();
        assert_eq!(red_without_alert(&m, &[alert(1, 0, 0)], now), None, "an open alert to work");
        let green = MetricsRow { health_band: "green".into(), ..red() };
        assert_eq!(red_without_alert(&green, &[], now), None);
        let snoozed = red_without_alert(&m, &[alert(1, 0, 3_000_000)], now).unwrap();
        assert!(snoozed.contains("snoozed until 1970-02-04"), "{snoozed}");
        let closed = red_without_alert(&m, &[alert(1, 1, 0)], now).unwrap();
        assert!(closed.contains("was closed as saved"), "{closed}");
        let none = red_without_alert(&m, &[], now).unwrap();
        assert!(none.contains("no alert rule holds") && none.contains("weakest component is trend"), "{none}");
        let idle = MetricsRow { health_cap: "inactive".into(), ..red() };
        assert!(red_without_alert(&idle, &[], now).unwrap().contains("nobody has used the product"));
    }
}
