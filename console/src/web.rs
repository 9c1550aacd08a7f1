//! The HTTP side: routes, sign-in, the session and CSRF checks, and the page handlers.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Duration as Days;
use maud::Markup;
use schemas::alert::CloseReason;
use serde::Deserialize;

use crate::auth::{self, Signer, LOGIN_COOKIE, SESSION_COOKIE};
use crate::charts::day_number;
use crate::config::valid_user_name;
use crate::pages::{self, account, book, inbox, login, rules, Viewer};
use crate::store::{BookFilter, Sort};
use crate::workflow::Action;
use crate::{App, ConsoleError};

const CSS: &str = include_str!("../assets/console.css");
/// No script, no frames, no third-party anything: the pages need none.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/book") }))
        .route("/login", get(login_form).post(login_post))
        .route("/logout", post(logout))
        .route("/book", get(book_page))
        .route("/inbox", get(inbox_page))
        .route("/accounts/{account}", get(account_page))
        .route("/alerts/{alert}/{action}", post(alert_action))
        .route("/rules", get(rules_page))
        .route("/static/console.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(app)
}

async fn secure_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    res
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.store.ping().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "clickhouse unreachable").into_response()
    }
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], markup.into_string()).into_response()
}

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
struct Who {
    user: String,
    csrf: String,
}

impl Who {
    fn viewer(&self) -> Viewer<'_> {
        Viewer { user: &self.user, csrf: &self.csrf }
    }
}

fn who(app: &App, headers: &HeaderMap) -> Option<Who> {
    if let Some(name) = &app.cfg.trusted_header {
        if let Some(user) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()).map(str::trim) {
            return valid_user_name(user).then(|| Who { user: user.into(), csrf: app.signer.header_csrf(user) });
        }
    }
    let session = app.signer.check(cookie(headers, SESSION_COOKIE)?, app.clock.now().timestamp())?;
    // A user removed from the config is signed out at once, whatever their cookie says.
    let user = app.cfg.user(&session.user)?.name.clone();
    Some(Who { csrf: app.signer.csrf(&session), user })
}

/// Where an unsigned-in GET goes: the sign-in page, then back.
fn to_login(path_and_query: &str) -> Response {
    let next = percent_encoding::utf8_percent_encode(path_and_query, percent_encoding::NON_ALPHANUMERIC);
    Redirect::to(&format!("/login?next={next}")).into_response()
}

/// A redirect target from a form: only a path on this console (no `//host`, no scheme).
fn local(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/book"
    }
}

fn csrf_refused(viewer: Option<&Viewer<'_>>) -> Response {
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
struct NextQuery {
    #[serde(default)]
    next: String,
}

async fn login_form(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
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
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

async fn login_post(
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
        tracing::info!(user = %name, %address, "sign-in refused");
        return retry(StatusCode::UNAUTHORIZED, "Wrong user name or password.");
    };
    app.limiter.succeed(&name);
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
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    let Some(w) = who(&app, &headers) else { return Redirect::to("/login").into_response() };
    if !Signer::same(&form.csrf, &w.csrf) {
        return csrf_refused(Some(&w.viewer()));
    }
    let mut res = Redirect::to("/login").into_response();
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}", app.secure());
    res.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&clear).expect("ascii cookie"));
    res
}

/// A ClickHouse or broker failure as the page a CSM sees: nothing was changed, try again.
fn unavailable(e: &ConsoleError, viewer: &Viewer<'_>) -> Response {
    tracing::warn!(error = %e, "console request failed");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::error_page(
            "Temporarily unavailable",
            &format!("uptake could not reach its data: {e}. Try again in a moment."),
            Some(viewer),
        ),
    )
}

#[derive(Deserialize, Default)]
struct BookQuery {
    scope: Option<String>,
    band: Option<String>,
    stage: Option<String>,
    owner: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    page: Option<u64>,
}

fn given(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Alerts the inbox lists at most (the rest are counted): the queue's head is what gets worked.
const INBOX_ROWS: usize = 200;

const STAGES: [&str; 3] = ["onboarding", "growth", "renewal"];

async fn book_page(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<BookQuery>) -> Response {
    let Some(w) = who(&app, &headers) else { return to_login("/book") };
    let explicit = q.scope.is_some();
    let mine = q.scope.as_deref() != Some("all");
    let filter = BookFilter {
        owner: if mine { Some(w.user.clone()) } else { given(q.owner) },
        band: given(q.band),
        stage: given(q.stage),
        search: given(q.q),
        sort: Sort::parse(q.sort.as_deref().unwrap_or("")),
        page: q.page.unwrap_or(0).min(10_000),
    };
    match render_book(&app, &w, mine, explicit, filter).await {
        Ok(markup) => page(StatusCode::OK, markup),
        Err(e) => unavailable(&e, &w.viewer()),
    }
}

/// The book page. A CSM with no accounts of their own who did not ask for "mine" sees everyone's.
async fn render_book(
    app: &App,
    w: &Who,
    mine: bool,
    explicit: bool,
    mut filter: BookFilter,
) -> Result<Markup, ConsoleError> {
    let mut mine = mine;
    let mut data = app.store.book(&filter).await?;
    if mine && !explicit && data.total == 0 {
        mine = false;
        filter.owner = None;
        data = app.store.book(&filter).await?;
    }
    let today = app.clock.now().date_naive();
    let from = today - Days::days(29);
    let ids: Vec<String> = data.rows.iter().map(|r| r.account_id.clone()).collect();
    let (points, owners) = tokio::try_join!(app.store.scores_since(&ids, from), app.store.owners())?;
    // Grouped once: each row then takes its own points instead of scanning the page's.
    let mut by_account: std::collections::HashMap<&str, Vec<(u16, f64)>> = std::collections::HashMap::new();
    for p in &points {
        if let Some(s) = p.score {
            by_account.entry(p.account_id.as_str()).or_default().push((p.day, s));
        }
    }
    let sparks = |account: &str| -> Vec<(u16, f64)> { by_account.get(account).cloned().unwrap_or_default() };
    let view = book::BookView {
        mine,
        filter: &filter,
        owners: &owners,
        stages: &STAGES,
        page: &data,
        sparks: &sparks,
        first_day: day_number(from),
        last_day: day_number(today),
    };
    Ok(book::page(&w.viewer(), &view))
}

#[derive(Deserialize, Default)]
struct InboxQuery {
    scope: Option<String>,
    snoozed: Option<String>,
    done: Option<String>,
}

async fn inbox_page(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<InboxQuery>) -> Response {
    let Some(w) = who(&app, &headers) else { return to_login("/inbox") };
    let all = match app.store.alerts(None).await {
        Ok(a) => a,
        Err(e) => return unavailable(&e, &w.viewer()),
    };
    let now = app.clock.now();
    let mine = q.scope.as_deref() == Some("mine");
    let show_snoozed = q.snoozed.is_some();
    let in_scope = |a: &&crate::store::AlertView| {
        a.closed == 0
            && (!mine || a.csm_owner.eq_ignore_ascii_case(&w.user) || a.assignee.eq_ignore_ascii_case(&w.user))
    };
    let snoozed = |a: &crate::store::AlertView| i64::from(a.snoozed_until) > now.timestamp();
    let scoped: Vec<_> = all.iter().filter(in_scope).collect();
    let snoozed_hidden = if show_snoozed { 0 } else { scoped.iter().filter(|a| snoozed(a)).count() };
    let listed: Vec<_> = scoped.into_iter().filter(|a| show_snoozed || !snoozed(a)).collect();
    // Most severe and newest first (the query's order): the page shows the head of the queue.
    let alerts: Vec<_> = listed.iter().take(INBOX_ROWS).map(|a| (*a).clone()).collect();
    let notice = q.done.as_deref().and_then(|d| match d {
        "acknowledged" => Some("Acknowledged."),
        "snoozed" => Some("Snoozed: no notification or re-fire until the snooze ends."),
        "assigned" => Some("Assigned."),
        "closed" => Some("Closed."),
        _ => None,
    });
    let view = inbox::InboxView {
        alerts: &alerts,
        total: listed.len(),
        mine,
        show_snoozed,
        snoozed_hidden,
        users: &app.users,
        now,
        notice,
    };
    page(StatusCode::OK, inbox::page(&w.viewer(), &view))
}

async fn account_page(State(app): State<Arc<App>>, headers: HeaderMap, Path(account_id): Path<String>) -> Response {
    let Some(w) = who(&app, &headers) else { return to_login(&pages::account_href(&account_id)) };
    let now = app.clock.now();
    let today = now.date_naive();
    let from = today - Days::days(89);
    let s = &app.store;
    let loaded = tokio::try_join!(
        s.account(&account_id),
        s.health_history(&account_id, from),
        s.alerts(Some(&account_id)),
        s.timeline(&account_id),
        s.outcomes(&account_id),
        s.traits(&account_id),
    );
    let (now_row, history, alerts, timeline, outcomes, traits) = match loaded {
        Ok(l) => l,
        Err(e) => return unavailable(&e, &w.viewer()),
    };
    if now_row.is_none() && history.is_empty() && alerts.is_empty() {
        return page(
            StatusCode::NOT_FOUND,
            pages::error_page(
                "No such account",
                &format!("uptake knows no account {account_id:?}."),
                Some(&w.viewer()),
            ),
        );
    }
    let traits: serde_json::Value = serde_json::from_str(&traits).unwrap_or_default();
    let health = &app.cfg.aggregator.health;
    let view = account::AccountView {
        account_id: &account_id,
        now_row: now_row.as_ref(),
        history: &history,
        alerts: &alerts,
        timeline: &timeline,
        outcomes: &outcomes,
        traits: &traits,
        bands: (health.red_below, health.green_from),
        first_day: day_number(from),
        last_day: day_number(today),
        users: &app.users,
        now,
    };
    page(StatusCode::OK, account::page(&w.viewer(), &view))
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action_id: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    reason: String,
}

fn parse_action(kind: &str, form: &ActionForm) -> Result<Action, ConsoleError> {
    let refused = |field: &str, reason: &str| ConsoleError::Refused { field: field.into(), reason: reason.into() };
    match kind {
        "ack" => Ok(Action::Acknowledge),
        "snooze" => {
            let until = form.until.trim().parse().map_err(|_| refused("until", "must be a date (YYYY-MM-DD)"))?;
            Ok(Action::Snooze { until, note: form.note.clone() })
        }
        "assign" => Ok(Action::Assign { assignee: form.assignee.trim().to_owned() }),
        "close" => {
            let reason = CloseReason::parse(form.reason.trim())
                .ok_or_else(|| refused("reason", "must be contacted, false_alarm, saved or churned"))?;
            Ok(Action::Close { reason, note: form.note.clone() })
        }
        _ => Err(ConsoleError::NotFound(format!("no action {kind:?}"))),
    }
}

async fn alert_action(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((alert_id, kind)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let Some(w) = who(&app, &headers) else { return Redirect::to("/login").into_response() };
    if !Signer::same(&form.csrf, &w.csrf) {
        return csrf_refused(Some(&w.viewer()));
    }
    let action_id = uuid::Uuid::parse_str(form.action_id.trim()).unwrap_or_else(|_| uuid::Uuid::now_v7()).to_string();
    let applied = match parse_action(&kind, &form) {
        Ok(action) => app.workflow.apply(&alert_id, &action_id, &w.user, action).await,
        Err(e) => Err(e),
    };
    match applied {
        Ok(row) => {
            tracing::info!(alert = %alert_id, action = %row.action, user = %w.user, "alert action");
            Redirect::to(&format!("/inbox?done={}", row.action)).into_response()
        }
        Err(ConsoleError::NotFound(m)) => {
            page(StatusCode::NOT_FOUND, pages::error_page("Not found", &m, Some(&w.viewer())))
        }
        Err(e @ ConsoleError::Refused { .. }) => {
            page(StatusCode::CONFLICT, pages::error_page("Not done", &e.to_string(), Some(&w.viewer())))
        }
        Err(e) => unavailable(&e, &w.viewer()),
    }
}

async fn rules_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(w) = who(&app, &headers) else { return to_login("/rules") };
    match app.store.latest_backtest().await {
        Ok(b) => page(StatusCode::OK, rules::page(&w.viewer(), &app.rules, b.as_ref())),
        Err(e) => unavailable(&e, &w.viewer()),
    }
}
