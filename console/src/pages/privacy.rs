//! The admin's privacy page: file a request (delete, suppress, unsuppress, export a person or an
//! account), the latest requests with their status, and one request's audit trail.

use maud::{html, Markup};

use super::{dash, layout, Nav, Viewer};
use crate::privacy::RequestView;

const KINDS: [(&str, &str); 4] = [
    ("suppress_with_delete", "Delete and stop collecting"),
    ("delete", "Delete what is stored"),
    ("suppress", "Stop collecting"),
    ("unsuppress", "Collect again (lift a suppression)"),
];

fn status_badge(status: &str) -> Markup {
    let class = match status {
        "finished" => "badge green",
        "failed" => "badge red",
        _ => "badge yellow",
    };
    html! { span class=(class) data-status=(status) { (status) } }
}

/// The list of requests and the form to file one. `done` names a request just filed.
pub fn page(viewer: &Viewer<'_>, requests: &[RequestView], done: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Privacy requests" }
        p.muted {
            "Requests from the people whose usage you send to uptake (GDPR, CCPA). A suppression is in force on every ingest instance within seconds; "
            "a deletion removes the person from every table within minutes and is verified. Every step is in the request's audit trail. "
            "See docs/privacy.md."
        }
        @if let Some(id) = done {
            p.notice #filed { "Request " a href=(format!("/admin/privacy/{id}")) { (id) } " filed." }
        }
        h2 { "File a request" }
        form.privacy.filters method="post" action="/admin/privacy" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            label { "Request"
                select name="type" {
                    @for (value, label) in KINDS { option value=(value) { (label) } }
                }
            }
            label { "For"
                select name="subject_type" {
                    option value="user" { "people (user or anonymous ids)" }
                    option value="account" { "whole accounts" }
                }
            }
            label { "Ids (one per line, at most 1,000)" textarea name="ids" rows="3" cols="40" required {} }
            button type="submit" { "File request" }
        }
        h2 { "Export what is held" }
        form.export.filters method="get" action="/admin/privacy/export" {
            label { "About"
                select name="subject_type" {
                    option value="user" { "person" }
                    option value="account" { "account" }
                }
            }
            label { "Id" input type="text" name="id" required placeholder="user or account id"; }
            button type="submit" { "Download JSON" }
        }
        h2 { "Latest requests" }
        @if requests.is_empty() {
            p.muted #no-requests { "No privacy request yet." }
        } @else {
            table #requests {
                thead { tr { th { "Filed" } th { "Request" } th { "Subjects" } th { "By" } th { "Status" } th { "Detail" } } }
                tbody {
                    @for r in requests {
                        tr data-id=(r.id) {
                            td { a href=(format!("/admin/privacy/{}", r.id)) { (r.requested_at) } }
                            td { (r.kind) }
                            td { (r.subject_type) ": " (r.ids.join(", ")) }
                            td { (r.requested_by) }
                            td { (status_badge(&r.status)) }
                            td { @if r.detail.is_empty() { (dash()) } @else { (r.detail) } }
                        }
                    }
                }
            }
        }
    };
    layout("Privacy", Some(viewer), Nav::Privacy, body)
}

/// One request: its state and audit trail.
pub fn request(viewer: &Viewer<'_>, r: &RequestView) -> Markup {
    let body = html! {
        p { a href="/admin/privacy" { "← Privacy requests" } }
        h1 { "Request " (r.id) }
        dl {
            dt { "Request" } dd { (r.kind) }
            dt { "Subjects" } dd #subjects { (r.subject_type) ": " (r.ids.join(", ")) }
            dt { "Filed" } dd { (r.requested_at) " by " (r.requested_by) }
            dt { "Status" } dd #status { (status_badge(&r.status)) " since " (r.updated_at) }
            @if !r.detail.is_empty() { dt { "Detail" } dd { (r.detail) } }
        }
        h2 { "Audit trail" }
        table #audit {
            thead { tr { th { "At" } th { "By" } th { "Step" } th { "Detail" } } }
            tbody {
                @for a in &r.audit {
                    tr { td { (a.at) } td { (a.actor) } td.step { (a.action) } td { (a.detail) } }
                }
            }
        }
    };
    layout("Privacy request", Some(viewer), Nav::Privacy, body)
}
