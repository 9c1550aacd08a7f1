//! Privacy requests over HTTP (docs/privacy.md): the admin's pages (a signed-in user with
//! `role = "admin"`; a CSM gets 403) and the JSON API for scripts and `console privacy`
//! (`Authorization: Bearer <token>`, one of `api_tokens`). Never a write key: those are public
//! in browsers.

use std::sync::Arc;

use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use schemas::privacy::{Subject, SubjectKind};
use serde::Deserialize;

use super::session::{csrf_refused, Who};
use super::{page, unavailable};
use crate::auth::Signer;
use crate::pages;
use crate::privacy::NewRequest;
use crate::{App, ConsoleError};

/// Requests the list shows.
const LIST_ROWS: u64 = 200;

fn admins_only(w: &Who) -> Option<Response> {
    (!w.admin).then(|| {
        page(
            StatusCode::FORBIDDEN,
            pages::error_page("Admins only", "Privacy requests are filed by console admins.", Some(&w.viewer())),
        )
    })
}

#[derive(Deserialize, Default)]
pub(super) struct DoneQuery {
    done: Option<String>,
}

pub(super) async fn privacy_page(State(app): State<Arc<App>>, w: Who, Query(q): Query<DoneQuery>) -> Response {
    if let Some(refused) = admins_only(&w) {
        return refused;
    }
    match app.privacy.list(LIST_ROWS).await {
        Ok(list) => page(StatusCode::OK, pages::privacy::page(&w.viewer(), &list, q.done.as_deref())),
        Err(e) => unavailable(&e, &w.viewer()),
    }
}

#[derive(Deserialize)]
pub(super) struct FileForm {
    csrf: String,
    #[serde(rename = "type")]
    kind: String,
    subject_type: String,
    ids: String,
}

pub(super) async fn privacy_file(State(app): State<Arc<App>>, w: Who, Form(form): Form<FileForm>) -> Response {
    if let Some(refused) = admins_only(&w) {
        return refused;
    }
    if !Signer::same(&form.csrf, &w.csrf) {
        return csrf_refused(Some(&w.viewer()));
    }
    let ids = form.ids.split(['\n', ',']).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    let req = NewRequest { kind: form.kind, subject_type: form.subject_type, ids };
    match app.privacy.file(&w.user, &req).await {
        Ok(r) => Redirect::to(&format!("/admin/privacy?done={}", r.id)).into_response(),
        Err(e @ ConsoleError::Refused { .. }) => {
            page(StatusCode::BAD_REQUEST, pages::error_page("Not filed", &e.to_string(), Some(&w.viewer())))
        }
        Err(e) => unavailable(&e, &w.viewer()),
    }
}

pub(super) async fn privacy_request(State(app): State<Arc<App>>, w: Who, Path(id): Path<String>) -> Response {
    if let Some(refused) = admins_only(&w) {
        return refused;
    }
    match app.privacy.get(&id).await {
        Ok(r) => page(StatusCode::OK, pages::privacy::request(&w.viewer(), &r)),
        Err(ConsoleError::NotFound(m)) => {
            page(StatusCode::NOT_FOUND, pages::error_page("Not found", &m, Some(&w.viewer())))
        }
        Err(e) => unavailable(&e, &w.viewer()),
    }
}

#[derive(Deserialize)]
pub(super) struct ExportQuery {
    subject_type: String,
    id: String,
}

impl ExportQuery {
    fn subject(&self) -> Result<Subject, ConsoleError> {
        let kind = SubjectKind::parse(self.subject_type.trim()).ok_or_else(|| ConsoleError::Refused {
            field: "subject_type".into(),
            reason: "must be user or account".into(),
        })?;
        Ok(Subject { kind, id: self.id.trim().to_owned() })
    }
}

pub(super) async fn privacy_export(State(app): State<Arc<App>>, w: Who, Query(q): Query<ExportQuery>) -> Response {
    if let Some(refused) = admins_only(&w) {
        return refused;
    }
    let exported = match q.subject() {
        Ok(subject) => app.privacy.export(&w.user, &subject).await,
        Err(e) => Err(e),
    };
    match exported {
        Ok(doc) => {
            let file = format!("attachment; filename=\"uptake-export-{}.json\"", sanitize(&q.id));
            ([(header::CONTENT_DISPOSITION, file)], Json(doc)).into_response()
        }
        Err(e @ ConsoleError::Refused { .. }) => {
            page(StatusCode::BAD_REQUEST, pages::error_page("Not exported", &e.to_string(), Some(&w.viewer())))
        }
        Err(e) => unavailable(&e, &w.viewer()),
    }
}

/// A file name made of the id's safe characters.
fn sanitize(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).take(64).collect()
}

/// The caller of the JSON API: the name of the token it presented.
pub(super) struct ApiCaller(String);

impl FromRequestParts<Arc<App>> for ApiCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let digest = token.map(crate::auth::token_digest);
        match digest.as_deref().and_then(|d| app.cfg.api_token(d)) {
            Some(name) => Ok(ApiCaller(name.to_owned())),
            None => Err(api_error(
                StatusCode::UNAUTHORIZED,
                "authorization",
                "a valid `Authorization: Bearer` API token is required",
            )),
        }
    }
}

fn api_error(status: StatusCode, field: &str, reason: &str) -> Response {
    (status, Json(serde_json::json!({ "error": { "field": field, "reason": reason } }))).into_response()
}

fn api_failure(e: ConsoleError) -> Response {
    match e {
        ConsoleError::Refused { field, reason } => api_error(StatusCode::BAD_REQUEST, &field, &reason),
        ConsoleError::NotFound(m) => api_error(StatusCode::NOT_FOUND, "id", &m),
        e => {
            tracing::warn!(error = %e, "privacy API request failed");
            let mut res = api_error(StatusCode::SERVICE_UNAVAILABLE, "", &format!("try again: {e}"));
            res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            res
        }
    }
}

pub(super) async fn api_file(State(app): State<Arc<App>>, who: ApiCaller, Json(req): Json<NewRequest>) -> Response {
    match app.privacy.file(&who.0, &req).await {
        Ok(r) => (StatusCode::ACCEPTED, Json(r)).into_response(),
        Err(e) => api_failure(e),
    }
}

pub(super) async fn api_list(State(app): State<Arc<App>>, _who: ApiCaller) -> Response {
    match app.privacy.list(LIST_ROWS).await {
        Ok(list) => Json(serde_json::json!({ "regulations": list })).into_response(),
        Err(e) => api_failure(e),
    }
}

pub(super) async fn api_get(State(app): State<Arc<App>>, _who: ApiCaller, Path(id): Path<String>) -> Response {
    match app.privacy.get(&id).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => api_failure(e),
    }
}

pub(super) async fn api_export(State(app): State<Arc<App>>, who: ApiCaller, Query(q): Query<ExportQuery>) -> Response {
    let exported = match q.subject() {
        Ok(subject) => app.privacy.export(&who.0, &subject).await,
        Err(e) => Err(e),
    };
    match exported {
        Ok(doc) => Json(doc).into_response(),
        Err(e) => api_failure(e),
    }
}
