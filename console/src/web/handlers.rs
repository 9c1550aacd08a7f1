//! The pages and the alert actions: each takes the signed-in user ([`Who`]) as an argument, so
//! none runs for a request without one.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration as Days;
use maud::Markup;
use schemas::alert::CloseReason;
use serde::Deserialize;

use super::session::{csrf_refused, Who};
use super::{page, unavailable};
use crate::auth::Signer;
use crate::charts::day_number;
use crate::pages::{self, account, book, inbox, rules};
use crate::store::{BookFilter, InboxFilter, Sort};
use crate::workflow::Action;
use crate::{App, ConsoleError};

#[derive(Deserialize, Default)]
pub(super) struct BookQuery {
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

const STAGES: [&str; 3] = ["onboarding", "growth", "renewal"];

pub(super) async fn book_page(State(app): State<Arc<App>>, w: Who, Query(q): Query<BookQuery>) -> Response {
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
pub(super) struct InboxQuery {
    scope: Option<String>,
    snoozed: Option<String>,
    done: Option<String>,
}

pub(super) async fn inbox_page(State(app): State<Arc<App>>, w: Who, Query(q): Query<InboxQuery>) -> Response {
    let now = app.clock.now();
    let mine = q.scope.as_deref() == Some("mine");
    let show_snoozed = q.snoozed.is_some();
    let filter = InboxFilter { user: mine.then(|| w.user.clone()), show_snoozed, now: now.timestamp() };
    let inbox = match app.store.inbox(&filter).await {
        Ok(inbox) => inbox,
        Err(e) => return unavailable(&e, &w.viewer()),
    };
    let notice = q.done.as_deref().and_then(|d| match d {
        "acknowledged" => Some("Acknowledged."),
        "snoozed" => Some("Snoozed: no notification or re-fire until the snooze ends."),
        "assigned" => Some("Assigned."),
        "closed" => Some("Closed."),
        _ => None,
    });
    let view = inbox::InboxView {
        alerts: &inbox.alerts,
        total: inbox.total as usize,
        mine,
        show_snoozed,
        snoozed_hidden: inbox.snoozed_hidden as usize,
        users: &app.users,
        now,
        notice,
    };
    page(StatusCode::OK, inbox::page(&w.viewer(), &view))
}

pub(super) async fn account_page(State(app): State<Arc<App>>, w: Who, Path(account_id): Path<String>) -> Response {
    let now = app.clock.now();
    let today = now.date_naive();
    let from = today - Days::days(89);
    let s = &app.store;
    let loaded = tokio::try_join!(
        s.account(&account_id),
        s.health_history(&account_id, from),
        s.alerts(&account_id),
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
pub(super) struct ActionForm {
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

pub(super) async fn alert_action(
    State(app): State<Arc<App>>,
    w: Who,
    Path((alert_id, kind)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
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

pub(super) async fn rules_page(State(app): State<Arc<App>>, w: Who) -> Response {
    match app.store.latest_backtest().await {
        Ok(b) => page(StatusCode::OK, rules::page(&w.viewer(), &app.rules, b.as_ref())),
        Err(e) => unavailable(&e, &w.viewer()),
    }
}
