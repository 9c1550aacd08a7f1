//! Who is signed in: the session cookie (or, when configured, a trusted proxy header), its CSRF
//! token, sign-in with its per-name and per-address limit, and sign-out.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::page;
use crate::auth::{self, Signer, LOGIN_COOKIE, SESSION_COOKIE};
use crate::config::valid_user_name;
use crate::pages::{self, login, Viewer};
use crate::App;

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The signed-in user and their forms' CSRF token: from the trusted header when that mode is
/// on and the header is present, else from the session cookie.
pub(super) struct Who {
    pub(super) user: String,
    pub(super) csrf: String,
    /// Whether the user may file privacy requests (`role = "admin"`).
    pub(super) admin: bool,
}

impl Who {
    pub(super) fn viewer(&self) -> Viewer<'_> {
        Viewer { user: &self.user, csrf: &self.csrf, admin: self.admin }
    }
}

/// The signed-in user as a handler argument: a request without one never reaches the handler. A
/// page (GET) is sent to sign in and back to the page it asked for; a form post to the sign-in
/// page (its form would be stale after signing in).
impl FromRequestParts<Arc<App>> for Who {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        who(app, &parts.headers).ok_or_else(|| {
            if parts.method == Method::GET {
                to_login(parts.uri.path())
            } else {
                Redirect::to("/login").into_response()
            }
        })
    }
}

fn who(app: &App, headers: &HeaderMap) -> Option<Who> {
    if let Some(name) = &app.cfg.trusted_header {
        if let Some(user) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()).map(str::trim) {
            let admin = app.cfg.is_admin(user);
            return valid_user_name(user).then(|| Who { user: user.into(), csrf: app.signer.header_csrf(user), admin });
        }
    }
    let session = app.signer.check(cookie(headers, SESSION_COOKIE)?, app.clock.now().timestamp())?;
    // A user removed from the config is signed out at once, whatever their cookie says.
    let user = app.cfg.user(&session.user)?.name.clone();
    let admin = app.cfg.is_admin(&user);
    Some(Who { csrf: app.signer.csrf(&session), user, admin })
}

/// Where an unsigned-in GET goes: the sign-in page, then back.
fn to_login(path_and_query: &str) -> Response {
    let next = percent_encoding::utf8_percent_encode(path_and_query, percent_encoding::NON_ALPHANUMERIC);
    Redirect::to(&format!("/login?next={next}")).into_response()
}

/// A redirect target from a form: only a path on this console (no `//host`, no scheme).
pub(super) fn local(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/book"
    }
}

pub(super) fn csrf_refused(viewer: Option<&Viewer<'_>>) -> Response {
    page(
        StatusCode::FORBIDDEN,
        pages::error_page(
            "Form refused",
            "The form expired or did not come from this console (missing or wrong CSRF token). Reload the page and try again.",
            viewer,
        ),
    )
}

#[derive(Deserialize, Default)]
pub(super) struct NextQuery {
    #[serde(default)]
    next: String,
}

pub(super) async fn login_form(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    if who(&app, &headers).is_some() {
        return Redirect::to(local(&q.next)).into_response();
    }
    let nonce = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, auth::random_bytes::<16>());
    let mut res = page(StatusCode::OK, login::page(&app.signer.login_csrf(&nonce), local(&q.next), "", None));
    let set = format!("{LOGIN_COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600{}", app.secure());
    res.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&set).expect("ascii cookie"));
    res
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

pub(super) async fn login_post(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(nonce) = cookie(&headers, LOGIN_COOKIE) else {
        return csrf_refused(None);
    };
    let csrf = app.signer.login_csrf(nonce);
    if !Signer::same(&form.csrf, &csrf) {
        return csrf_refused(None);
    }
    let name = form.username.trim().to_owned();
    let address = client_address(&app, &headers, peer);
    let retry = |status, message: &str| page(status, login::page(&csrf, local(&form.next), &name, Some(message)));
    if app.limiter.blocked(&name, &address) {
        app.telemetry.sign_ins.with_label_values(&["blocked"]).inc();
        let minutes = app.cfg.login_window.as_secs().div_ceil(60);
        return retry(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many failed sign-ins. Try again in {minutes} minutes."),
        );
    }
    let user = app.cfg.user(&name).cloned();
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    // argon2 is deliberately slow: off the async workers.
    let password = form.password;
    let ok =
        tokio::task::spawn_blocking(move || auth::verify_password(hash.as_deref(), &password)).await.unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        app.limiter.fail(&name, &address);
        app.telemetry.sign_ins.with_label_values(&["refused"]).inc();
        tracing::info!(user = %name, %address, "sign-in refused");
        return retry(StatusCode::UNAUTHORIZED, "Wrong user name or password.");
    };
    app.limiter.succeed(&name);
    app.telemetry.sign_ins.with_label_values(&["ok"]).inc();
    let ttl = app.cfg.session_ttl.as_secs();
    let value = app.signer.issue(&user.name, app.clock.now().timestamp() + ttl as i64);
    let mut res = Redirect::to(local(&form.next)).into_response();
    let session = format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={ttl}{}", app.secure());
    let clear = format!("{LOGIN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", app.secure());
    for c in [session, clear] {
        res.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&c).expect("ascii cookie"));
    }
    tracing::info!(user = %user.name, "signed in");
    res
}

/// The client's address for the sign-in limit: the configured proxy header's (the last entry of
/// a list: the one the proxy appended, not one the client made up), else the TCP peer's.
fn client_address(app: &App, headers: &HeaderMap, peer: SocketAddr) -> String {
    app.cfg
        .client_address_header
        .as_deref()
        .and_then(|h| headers.get_all(h).iter().next_back())
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| peer.ip().to_string())
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn logout(State(app): State<Arc<App>>, w: Who, Form(form): Form<CsrfForm>) -> Response {
    if !Signer::same(&form.csrf, &w.csrf) {
        return csrf_refused(Some(&w.viewer()));
    }
    let mut res = Redirect::to("/login").into_response();
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}", app.secure());
    res.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&clear).expect("ascii cookie"));
    res
}
