//! The alert inbox: open episodes, most severe and newest first, each with its one-sentence
//! reason and the four actions.

use chrono::{DateTime, Utc};
use maud::{html, Markup};
use schemas::alert::CloseReason;

use super::{account_href, ago, form_fields, layout, severity_badge, when, Nav, Viewer};
use crate::store::AlertView;

pub struct InboxView<'a> {
    pub alerts: &'a [AlertView],
    /// Open alerts in scope, of which `alerts` are the first.
    pub total: usize,
    pub mine: bool,
    pub show_snoozed: bool,
    /// Snoozed episodes left out of the list.
    pub snoozed_hidden: usize,
    pub users: &'a [String],
    pub now: DateTime<Utc>,
    /// A confirmation of the action just taken.
    pub notice: Option<&'a str>,
}

pub fn page(viewer: &Viewer<'_>, view: &InboxView<'_>) -> Markup {
    let scope = if view.mine { "mine" } else { "all" };
    let default_until = (view.now + chrono::Duration::days(7)).date_naive();
    let body = html! {
        h1 { "Alert inbox" }
        @if let Some(n) = view.notice { p.notice role="status" { (n) } }
        div.scope {
            a #scope-mine href="/inbox?scope=mine" class=[view.mine.then_some("active")] { "Mine" }
            a #scope-all href="/inbox?scope=all" class=[(!view.mine).then_some("active")] { "Everyone's" }
        }
        p.summary {
            span { strong { (view.total) } " open" }
            @if view.total > view.alerts.len() { span.muted { "showing the first " (view.alerts.len()) } }
            @if view.show_snoozed {
                a href=(format!("/inbox?scope={scope}")) { "hide snoozed" }
            } @else if view.snoozed_hidden > 0 {
                a #show-snoozed href=(format!("/inbox?scope={scope}&snoozed=1")) { "show " (view.snoozed_hidden) " snoozed" }
            }
        }
        div.table-wrap {
            table #inbox {
                thead { tr { th { "Alert" } th { "Why" } th.hide-narrow { "State" } th { "Act" } } }
                tbody {
                    @for a in view.alerts {
                        tr data-alert=(a.alert_id) data-account=(a.account_id) {
                            td {
                                (severity_badge(&a.severity)) " "
                                a.account href=(account_href(&a.account_id)) { (a.account_id) }
                                br; span.muted.small { (a.rule_id) " · " (ago(a.fired_at, view.now)) }
                            }
                            td.reason { (a.reason) }
                            td.hide-narrow.small.state {
                                @if !a.acknowledged_by.is_empty() { span.badge.state { "acknowledged" } " by " (a.acknowledged_by) br; }
                                @if !a.assignee.is_empty() { "assigned to " (a.assignee) br; }
                                @if i64::from(a.snoozed_until) > view.now.timestamp() {
                                    span.badge.state { "snoozed" } " until " (when(a.snoozed_until)) br;
                                    @if !a.snooze_note.is_empty() { span.muted { "“" (a.snooze_note) "”" } br; }
                                }
                                @if a.csm_owner.is_empty() { span.muted { "no owner" } } @else { span.muted { "owner " (a.csm_owner) } }
                            }
                            td { (actions(viewer, a, view.users, default_until)) }
                        }
                    }
                    @if view.alerts.is_empty() {
                        tr { td colspan="4" .muted { "Nothing needs you right now." } }
                    }
                }
            }
        }
    };
    layout("Alert inbox", Some(viewer), Nav::Inbox, body)
}

/// The four workflow forms of one episode.
pub fn actions(viewer: &Viewer<'_>, a: &AlertView, users: &[String], default_until: chrono::NaiveDate) -> Markup {
    let to = |what: &str| {
        format!(
            "/alerts/{}/{what}",
            percent_encoding::utf8_percent_encode(&a.alert_id, percent_encoding::NON_ALPHANUMERIC)
        )
    };
    html! {
        div.actions {
            @if a.acknowledged_by.is_empty() {
                form.ack method="post" action=(to("ack")) {
                    (form_fields(viewer.csrf))
                    button type="submit" { "Acknowledge" }
                }
            }
            form.snooze method="post" action=(to("snooze")) {
                (form_fields(viewer.csrf))
                input type="date" name="until" value=(default_until) required aria-label="snooze until";
                input type="text" name="note" placeholder="note" maxlength="1000" aria-label="snooze note";
                button.secondary type="submit" { "Snooze" }
            }
            form.assign method="post" action=(to("assign")) {
                (form_fields(viewer.csrf))
                select name="assignee" aria-label="assign to" {
                    @for u in users { option value=(u) selected[u.as_str() == a.assignee] { (u) } }
                }
                button.secondary type="submit" { "Assign" }
            }
            form.close method="post" action=(to("close")) {
                (form_fields(viewer.csrf))
                select name="reason" aria-label="close reason" {
                    @for r in CloseReason::ALL { option value=(r.as_str()) { (r.label()) } }
                }
                input type="text" name="note" placeholder="note" maxlength="1000" aria-label="close note";
                button.secondary type="submit" { "Close" }
            }
        }
    }
}
