//! Privacy suppression on the write path (docs/privacy.md#suppression): the follower that keeps
//! [`App::suppressions`] in step with `kafka.suppressions_topic`, the wait that keeps a request
//! from writing anything before the list is loaded, and the filter that drops the events of a
//! suppressed user or account.
//!
//! A suppressed event is answered as accepted (as Segment does: the sender must not learn whom
//! we suppress, nor retry), counted, and never written. Its request still waits for the broker's
//! acknowledgement of the others, so its answer means what every 200 means.

use std::time::Duration;

use schemas::event::Event;
use schemas::runtime::suppressions::follow;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{App, IngestError};

/// How often a request that arrived before the list was loaded looks again. Loading takes about
/// a second once per process, so this costs nothing in steady state.
const LOAD_POLL: Duration = Duration::from_millis(20);

/// The task following the suppression topic for [`crate::serve`], if the app follows one.
pub struct Follower {
    running: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl Follower {
    /// Starts following `kafka.suppressions_topic` into `app.suppressions` with the `[kafka]`
    /// client settings (brokers and passthrough), unless the app was given its list.
    pub fn start(app: &App) -> Self {
        if !app.follows_suppressions {
            return Self { running: None };
        }
        let (stop, stopped) = watch::channel(false);
        let config = app.config.kafka.client.client_config(&[]);
        let topic = app.config.kafka.suppressions_topic.clone();
        let task = tokio::spawn(follow(config, topic, app.suppressions.clone(), stopped));
        Self { running: Some((stop, task)) }
    }

    /// Stops the follower and waits for it (its consumer closes before the process ends).
    pub async fn stop(self) {
        if let Some((stop, task)) = self.running {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }
}

/// Returns once the suppression list is loaded, or [`IngestError::NotReady`] (a 503) when it is
/// still loading after `kafka.delivery_timeout_ms` — as long as a request may wait for the
/// broker anyway. Requests that arrive in the second after start-up (before a load balancer has
/// seen `/readyz`) therefore wait instead of being stored unfiltered: no race window.
pub async fn loaded(app: &App) -> Result<(), IngestError> {
    if app.suppressions.is_ready() {
        return Ok(());
    }
    let deadline = Instant::now() + app.config.kafka.delivery_timeout();
    loop {
        tokio::time::sleep(LOAD_POLL).await;
        if app.suppressions.is_ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(IngestError::NotReady);
        }
    }
}

/// Removes the events of suppressed subjects from `events` and returns how many it removed.
/// While nothing is suppressed (the usual case) this is one atomic load per request.
pub fn drop_suppressed(app: &App, events: &mut Vec<Event>) -> usize {
    if app.suppressions.is_empty() {
        return 0;
    }
    let before = events.len();
    events.retain(|e| !app.suppressions.matches(&e.account_id, &e.user_id));
    before - events.len()
}

/// Drops the dead letters of a suppressed subject: their refused events are still answered with
/// every field error, but the raw payload of a person who asked not to be collected is not kept
/// on the dead-letter topic. The ids are read where a sender puts them (native and Segment
/// spellings): a refused event has no canonical form to ask.
pub fn drop_suppressed_dead<E>(app: &App, dead: &mut Vec<(Value, E)>) {
    if app.suppressions.is_empty() {
        return;
    }
    dead.retain(|(raw, _)| {
        let at = |pointer: &str| raw.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
        let users = ["/user_id", "/userId", "/anonymousId"];
        let accounts = ["/account_id", "/accountId", "/groupId", "/context/groupId", "/properties/account_id"];
        !users.iter().any(|p| app.suppressions.matches("", at(p)))
            && !accounts.iter().any(|p| app.suppressions.matches(at(p), ""))
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::extract::State;
    use axum::http::{header, HeaderMap, HeaderValue};
    use axum::response::Response;
    use schemas::privacy::Subject;
    use schemas::runtime::suppressions::Suppressions;
    use serde_json::{json, Value};

    use crate::sink::{CollectingSink, EventSink};
    use crate::{handlers, App, RawIngestConfig, WriteKey};

    const KEY: &str = "suppress-key-0123456789abcdef0123456";

    fn service(list: Suppressions, tweak: impl FnOnce(&mut RawIngestConfig)) -> (Arc<App>, Arc<CollectingSink>) {
        let mut cfg = RawIngestConfig {
            write_keys: vec![WriteKey { key: KEY.into(), source: "web".into() }],
            ..RawIngestConfig::default()
        };
        tweak(&mut cfg);
        let sink = Arc::new(CollectingSink::new());
        let app = App::with_suppressions(cfg.build_and_validate().unwrap(), sink.clone() as Arc<dyn EventSink>, list)
            .unwrap();
        (app, sink)
    }

    /// Posts `body` to the handler of `path` as a client with the write key would.
    async fn post(app: &Arc<App>, path: &str, body: Value) -> (u16, Value, Response) {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {KEY}")).unwrap());
        let (state, body) = (State(app.clone()), Body::from(body.to_string()));
        let mut response = match path {
            "/v1/events" => handlers::native(state, headers, body).await,
            "/v1/track" => handlers::track(state, headers, body).await,
            "/v1/batch" => handlers::batch(state, headers, body).await,
            other => panic!("no handler for {other} here"),
        };
        let bytes = axum::body::to_bytes(std::mem::take(response.body_mut()), usize::MAX).await.unwrap();
        (response.status().as_u16(), serde_json::from_slice(&bytes).unwrap(), response)
    }

    fn ids(sink: &CollectingSink) -> Vec<String> {
        sink.events().into_iter().map(|e| e.message_id).collect()
    }

    #[tokio::test]
    async fn a_suppressed_subjects_events_are_answered_as_accepted_and_never_written() {
        let list = Suppressions::ready_empty();
        list.set(&Subject::user("ann"), true);
        list.set(&Subject::account("globex"), true);
        let (app, sink) = service(list.clone(), |_| {});

        // Native batch: ann (any account) and everyone of globex dropped; the invalid event is
        // still rejected and dead-lettered as before.
        let batch = json!({"batch": [
            {"kind": "login", "account_id": "acme", "user_id": "ann", "message_id": "n1"},
            {"kind": "login", "account_id": "acme", "user_id": "bob", "message_id": "n2"},
            {"kind": "login", "account_id": "globex", "user_id": "carl", "message_id": "n3"},
            {"kind": "login", "user_id": "dora", "message_id": "n4"}
        ]});
        let (status, body, _) = post(&app, "/v1/events", batch).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["accepted"].as_u64(), body["rejected"][0]["index"].as_u64()), (Some(3), Some(3)), "{body}");
        assert_eq!(ids(&sink), ["n2"]);
        assert_eq!(sink.dead_letters().len(), 1);

        // A suppressed person's refused event is answered with its error, never dead-lettered.
        let bad = json!({"batch": [{"kind": "survey", "account_id": "acme", "user_id": "ann", "nps": 99, "message_id": "n9"}]});
        let (status, body, _) = post(&app, "/v1/events", bad).await;
        assert_eq!((status, body["errors"][0]["field"].as_str()), (400, Some("nps")), "{body}");
        assert_eq!(sink.dead_letters().len(), 1, "only dora's");

        // A request of nothing but suppressed events is a 200 (not a 400: nothing was invalid).
        let single = json!({"kind": "login", "account_id": "acme", "user_id": "ann", "message_id": "n5"});
        let (status, body, _) = post(&app, "/v1/events", single).await;
        assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)), "{body}");

        // Segment, single and batch: the same rule on the canonical event's user and account.
        let track =
            json!({"userId": "ann", "event": "Report Exported", "messageId": "s1", "context": {"groupId": "acme"}});
        let (status, body, _) = post(&app, "/v1/track", track).await;
        assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)), "{body}");
        let batch = json!({"batch": [
            {"type": "track", "userId": "bob", "event": "Export", "messageId": "s2", "context": {"groupId": "acme"}},
            {"type": "identify", "userId": "ann", "messageId": "s3", "traits": {"email": "ann@example.com"}},
            {"type": "track", "userId": "erin", "event": "Export", "messageId": "s4", "context": {"groupId": "globex"}}
        ]});
        let (status, body, _) = post(&app, "/v1/batch", batch).await;
        assert_eq!((status, body["accepted"].as_u64()), (200, Some(3)), "{body}");
        assert_eq!(ids(&sink), ["n2", "s2"]);
        assert_eq!(app.metrics.suppressed_events.get(), 6, "n1 n3 n5 s1 s3 s4");
        assert!(app.metrics.render().contains("uptake_ingest_suppressed_events_total 6"));

        // Lifted: ann's new events are written again.
        list.set(&Subject::user("ann"), false);
        let again = json!({"kind": "login", "account_id": "acme", "user_id": "ann", "message_id": "n6"});
        assert_eq!(post(&app, "/v1/events", again).await.0, 200);
        assert_eq!(ids(&sink), ["n2", "s2", "n6"]);
        assert_eq!(app.metrics.suppressed_events.get(), 6);
    }

    #[tokio::test]
    async fn nothing_is_written_and_readyz_says_why_until_the_list_is_loaded() {
        // A list no follower fills stays unloaded: a write waits its delivery timeout, then 503.
        let (app, sink) = service(Suppressions::default(), |c| c.kafka.delivery_timeout_ms = 200);
        app.ready.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(crate::admin::not_ready_reason(&app), Some("suppression list not loaded"));
        let started = std::time::Instant::now();
        let batch = json!({"batch": [
            {"kind": "login", "account_id": "acme", "user_id": "bob", "message_id": "m1"},
            {"kind": "login", "user_id": "dora", "message_id": "m2"}
        ]});
        let (status, body, response) = post(&app, "/v1/events", batch).await;
        assert_eq!(status, 503, "{body}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(200), "waited for the list first");
        assert!(body["error"].as_str().unwrap().contains("suppression list"), "{body}");
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        assert!(sink.events().is_empty() && sink.dead_letters().is_empty(), "nothing written, not even dead letters");
        assert_eq!(app.metrics.requests_refused.with_label_values(&["not_ready"]).get(), 1);

        // With a loaded list, readiness is the broker's alone.
        let (app, _) = service(Suppressions::ready_empty(), |_| {});
        assert_eq!(crate::admin::not_ready_reason(&app), Some("kafka unreachable"));
        app.ready.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(crate::admin::not_ready_reason(&app), None);
    }
}
