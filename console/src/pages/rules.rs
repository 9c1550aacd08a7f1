//! The rules: the rule set the aggregator runs, and the latest scored backtest of it.

use aggregator::RuleSet;
use maud::{html, Markup};
use serde_json::Value;
use warehouse::rows::BacktestScoreRow;

use super::{dash, layout, severity_badge, when, Nav, Viewer};
use crate::charts::date_of;

fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "—".into(),
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3_600 == 0 => format!("{} h", s / 3_600),
        s => format!("{} min", s / 60),
    }
}

fn ratio(v: &Value) -> Markup {
    match v.as_f64() {
        Some(x) => html! { (format!("{x:.2}")) },
        None => dash(),
    }
}

fn num(v: &Value) -> Markup {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 => html! { (format!("{x:.0}")) },
        Some(x) => html! { (format!("{x:.1}")) },
        None => dash(),
    }
}

pub fn page(viewer: &Viewer<'_>, rules: &RuleSet, backtest: Option<&BacktestScoreRow>) -> Markup {
    let score: Option<Value> = backtest.and_then(|b| serde_json::from_str(&b.score).ok());
    let body = html! {
        h1 { "Rules" }
        p.muted { "The churn-risk rules the aggregator evaluates on every pass. Change them in the rule file (docs/architecture.md#rules)." }
        div.table-wrap {
            table #rules {
                thead { tr { th { "Rule" } th { "Severity" } th { "Fires when" } th.hide-narrow { "Stages" } th.hide-narrow { "For" } th.hide-narrow { "Resolves after" } th.hide-narrow { "Cooldown" } } }
                tbody {
                    @for r in rules.rules() {
                        tr data-rule=(r.id) {
                            td { strong { (r.id) } br; span.small.muted { (r.description) } }
                            td { (severity_badge(r.severity.as_str())) }
                            td.small { (r.when.describe())
                                @if r.min_account_age_days > 0 { br; span.muted { "accounts at least " (r.min_account_age_days) " days old" } } }
                            td.hide-narrow { @if r.stages.is_empty() { "all" } @else { (r.stages.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) } }
                            td.hide-narrow { (duration(r.for_duration)) }
                            td.hide-narrow { (duration(r.resolve_after)) }
                            td.hide-narrow { (duration(r.cooldown)) }
                        }
                    }
                }
            }
        }
        h2 { "Latest scored backtest" }
        div.card #backtest {
            @match (backtest, &score) {
                (Some(b), Some(s)) => {
                    p.muted {
                        "Scored " (when(b.scored_at)) " over " (date_of(b.from_day)) " – " (date_of(b.to_day))
                        ", horizon " (b.horizon_days) " days, against the recorded outcomes (churned, contracted, renewed, and CSM closures as churned or saved)."
                    }
                    div.table-wrap { table #backtest-scores {
                        thead { tr {
                            th { "Rule" } th.num { "Recall" } th.num { "Precision" } th.num { "Lead days (median)" }
                            th.num.hide-narrow { "Caught / positives" } th.num.hide-narrow { "Alerts per healthy account-month" }
                        } }
                        tbody {
                            @for r in std::iter::once(&s["overall"]).chain(s["rules"].as_array().into_iter().flatten()) {
                                tr data-rule=(r["rule_id"].as_str().unwrap_or("")) {
                                    td { (r["rule_id"].as_str().unwrap_or("")) }
                                    td.num { (ratio(&r["recall"])) }
                                    td.num { (ratio(&r["precision"])) }
                                    td.num { (num(&r["lead_days_median"])) }
                                    td.num.hide-narrow { (num(&r["caught"])) " / " (num(&r["positives"])) }
                                    td.num.hide-narrow { (ratio(&r["alerts_per_healthy_account_month"])) }
                                }
                            }
                        }
                    } }
                },
                _ => p.muted { "No scored backtest stored yet: run " code { "aggregator backtest --from D --to D --score --store" } "." },
            }
        }
    };
    layout("Rules", Some(viewer), Nav::Rules, body)
}
