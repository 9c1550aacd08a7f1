//! My book: the signed-in CSM's accounts (or all), worst health first, with the filters a CSM
//! works through their book with.

use maud::{html, Markup};

use super::{account_href, band_badge, change, dash, layout, severity_badge, Nav, Viewer};
use crate::charts::sparkline;
use crate::store::{BookFilter, BookPage, Sort, PAGE_ROWS};

/// What the page was asked for, echoed back into the filters and links.
pub struct BookView<'a> {
    /// Only the viewer's accounts.
    pub mine: bool,
    pub filter: &'a BookFilter,
    pub owners: &'a [String],
    pub stages: &'a [&'a str],
    pub page: &'a BookPage,
    /// Each shown account's health points over the sparkline's 30 days.
    pub sparks: &'a dyn Fn(&str) -> Vec<(u16, f64)>,
    pub first_day: u16,
    pub last_day: u16,
}

fn query(view: &BookView<'_>, sort: Sort, page: u64) -> String {
    let f = view.filter;
    let mut parts = vec![format!("scope={}", if view.mine { "mine" } else { "all" })];
    let mut add = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)));
        }
    };
    add("band", &f.band);
    add("stage", &f.stage);
    if !view.mine {
        add("owner", &f.owner);
    }
    add("q", &f.search);
    parts.push(format!("sort={}", sort.key()));
    if page > 0 {
        parts.push(format!("page={page}"));
    }
    format!("/book?{}", parts.join("&"))
}

pub fn page(viewer: &Viewer<'_>, view: &BookView<'_>) -> Markup {
    let f = view.filter;
    let header = |sort: Sort, label: &str, class: &str| {
        html! { th class=(class) { a href=(query(view, sort, 0)) class=[(f.sort == sort).then_some("sorted")] { (label) } } }
    };
    let pages = view.page.total.div_ceil(PAGE_ROWS).max(1);
    let body = html! {
        h1 { @if view.mine { "My book" } @else { "All accounts" } }
        div.scope {
            a #scope-mine href=(format!("/book?scope=mine&sort={}", f.sort.key())) class=[view.mine.then_some("active")] { "My accounts" }
            a #scope-all href=(format!("/book?scope=all&sort={}", f.sort.key())) class=[(!view.mine).then_some("active")] { "All accounts" }
        }
        form.filters #filters method="get" action="/book" {
            input type="hidden" name="scope" value=(if view.mine { "mine" } else { "all" });
            input type="hidden" name="sort" value=(f.sort.key());
            label { "Search" input type="search" name="q" value=(f.search.as_deref().unwrap_or("")) placeholder="account id"; }
            label { "Band" select name="band" {
                option value="" { "any" }
                @for b in ["red", "yellow", "green"] { option value=(b) selected[f.band.as_deref() == Some(b)] { (b) } }
            } }
            label { "Stage" select name="stage" {
                option value="" { "any" }
                @for s in view.stages { option value=(s) selected[f.stage.as_deref() == Some(*s)] { (s) } }
            } }
            @if !view.mine {
                label { "Owner" select name="owner" {
                    option value="" { "anyone" }
                    @for o in view.owners { option value=(o) selected[f.owner.as_deref() == Some(o.as_str())] { (o) } }
                } }
            }
            button type="submit" { "Filter" }
        }
        p.summary #book-summary {
            span { strong { (view.page.total) } " accounts" }
            @for (band, n) in &view.page.bands {
                span { (band_badge(band, None)) " " (n) }
            }
        }
        div.table-wrap {
            table #book {
                thead { tr {
                    th { "Account" }
                    (header(Sort::Health, "Health", ""))
                    th.hide-narrow { "30 days" }
                    th { "Stage" }
                    (header(Sort::Renewal, "Renewal", "num"))
                    (header(Sort::ActiveUsers, "Active users vs usual", "num"))
                    (header(Sort::Alerts, "Open alerts", ""))
                    th.hide-narrow { "Owner" }
                } }
                tbody {
                    @for r in &view.page.rows {
                        tr data-account=(r.account_id) {
                            td { a.account href=(account_href(&r.account_id)) { (r.account_id) } br; span.muted.small { (r.plan) } }
                            td.band { (band_badge(&r.band, r.score)) }
                            td.hide-narrow { (sparkline(&(view.sparks)(&r.account_id), view.first_day, view.last_day, &r.band)) }
                            td { (r.stage) }
                            td.num { @match r.days_to_renewal { Some(d) if d < 0 => span.muted { "passed " (-d) " d ago" }, Some(d) => { (d) " d" }, None => (dash()) } }
                            td.num {
                                (r.wau)
                                @if let Some(u) = r.wau_usual { span.muted { " / " (format!("{u:.0}")) } " " (change(r.wau_vs_usual)) }
                            }
                            td {
                                @if r.open_alerts > 0 {
                                    (severity_badge(match r.top_severity { 3 => "critical", 2 => "warning", _ => "info" }))
                                    " " (r.open_alerts)
                                } @else { (dash()) }
                            }
                            td.hide-narrow.small { (r.owner) }
                        }
                    }
                    @if view.page.rows.is_empty() {
                        tr { td colspan="8" .muted { "No accounts match." } }
                    }
                }
            }
        }
        div.pager {
            @if f.page > 0 { a href=(query(view, f.sort, f.page - 1)) { "← previous" } }
            span.muted { "page " (f.page + 1) " of " (pages) }
            @if f.page + 1 < pages { a href=(query(view, f.sort, f.page + 1)) { "next →" } }
        }
    };
    layout(if view.mine { "My book" } else { "All accounts" }, Some(viewer), Nav::Book, body)
}
