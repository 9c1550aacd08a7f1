//! The sign-in page.

use maud::{html, Markup};

use super::{layout, Nav};

/// The sign-in form; `error` when the last attempt failed, `next` the page to return to.
pub fn page(csrf: &str, next: &str, user: &str, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        Nav::None,
        html! {
            div.login.card {
                h1 { "Sign in to uptake" }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                form #login method="post" action="/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="next" value=(next);
                    label { "User name" input type="text" name="username" value=(user) autocomplete="username" required autofocus; }
                    label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}
