//! The HTML pages, rendered with maud: every interpolated value is escaped, so account ids,
//! traits and notes — customer- or user-supplied — can never become markup.

pub mod account;
pub mod book;
pub mod inbox;
pub mod login;
pub mod privacy;
pub mod rules;

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// Which nav entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Book,
    Inbox,
    Rules,
    Privacy,
    None,
}

/// Who the page is rendered for: their name and the CSRF token every form carries.
pub struct Viewer<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    /// Shows the privacy page in the navigation.
    pub admin: bool,
}

/// The page frame: navigation, who is signed in (with sign-out), then `body`.
pub fn layout(title: &str, viewer: Option<&Viewer<'_>>, nav: Nav, body: Markup) -> Markup {
    let link = |href: &str, label: &str, this: Nav| {
        html! { a href=(href) class=[(nav == this).then_some("active")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · uptake" }
                link rel="stylesheet" href="/static/console.css";
            }
            body {
                header.top {
                    a.brand href="/book" { "uptake" }
                    @if let Some(v) = viewer {
                        nav {
                            (link("/book", "Book", Nav::Book))
                            (link("/inbox", "Alert inbox", Nav::Inbox))
                            (link("/rules", "Rules", Nav::Rules))
                            @if v.admin {
                                (link("/admin/privacy", "Privacy", Nav::Privacy))
                            }
                        }
                        div.who {
                            span #whoami { (v.user) }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page that only says what went wrong.
pub fn error_page(title: &str, message: &str, viewer: Option<&Viewer<'_>>) -> Markup {
    layout(
        title,
        viewer,
        Nav::None,
        html! {
            h1 { (title) }
            p.error { (message) }
            p { a href="/book" { "Back to the book" } }
        },
    )
}

/// The account page's path (the id percent-encoded: ids are customer-supplied).
pub fn account_href(account_id: &str) -> String {
    format!("/accounts/{}", utf8_percent_encode(account_id, NON_ALPHANUMERIC))
}

pub fn band_badge(band: &str, score: Option<f64>) -> Markup {
    let class = if band.is_empty() { "none" } else { band };
    html! {
        span class=(format!("badge {class}")) {
            @if let Some(s) = score { (format!("{s:.0}")) " " }
            (if band.is_empty() { "no score" } else { band })
        }
    }
}

pub fn severity_badge(severity: &str) -> Markup {
    html! { span class=(format!("badge {severity}")) { (severity) } }
}

/// A signed percentage with its direction: "−64 %" in red, "+12 %" in green.
pub fn change(pct: Option<f64>) -> Markup {
    match pct {
        Some(p) if p.is_finite() => {
            let class = if p < 0.0 { "down" } else { "up" };
            let sign = if p < 0.0 { "−" } else { "+" };
            html! { span class=(class) { (sign) (format!("{:.0}", p.abs())) " %" } }
        }
        _ => html! { span.muted { "–" } },
    }
}

pub fn when(secs: u32) -> String {
    DateTime::<Utc>::from_timestamp(i64::from(secs), 0)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M").to_string())
}

/// "3 days ago" relative to `now`.
pub fn ago(secs: u32, now: DateTime<Utc>) -> String {
    let d = now.timestamp() - i64::from(secs);
    match d {
        d if d < 3_600 => format!("{} min ago", (d / 60).max(0)),
        d if d < 86_400 => format!("{} h ago", d / 3_600),
        d => format!("{} days ago", d / 86_400),
    }
}

/// The hidden fields every workflow form carries: the CSRF token and a fresh action id (a
/// re-post of the same form is recognised and stored once).
pub fn form_fields(csrf: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(csrf);
        input type="hidden" name="action_id" value=(uuid::Uuid::now_v7().to_string());
    }
}

/// An empty `<span>` that keeps a table cell from collapsing.
pub fn dash() -> Markup {
    html! { span.muted { (PreEscaped("&ndash;")) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_escaped_in_paths_and_markup() {
        assert_eq!(account_href("a/b c<x>"), "/accounts/a%2Fb%20c%3Cx%3E");
        let page = error_page("Oops", "<script>alert(1)</script>", None).into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
    }

    #[test]
    fn changes_read_with_their_sign() {
        assert!(change(Some(-63.6)).into_string().contains("−64 %"));
        assert!(change(Some(12.0)).into_string().contains("+12 %"));
        assert!(change(None).into_string().contains("–"));
    }
}
