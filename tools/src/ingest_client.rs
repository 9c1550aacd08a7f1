//! The one HTTP client of ingest the tools use (loadgen and bench): the write key, the JSON
//! content type, and one retry rule — a refusal (503 overloaded or broker away, 429 rate limit)
//! waits what its `Retry-After` says (else `fallback_wait`) and tries again, so every event is
//! counted exactly once and the tools never hammer an ingest that asked them to wait.

use std::time::{Duration, Instant};

use crate::ToolsError;
use bytes::Bytes;

/// How long to keep trying.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The wait after a refusal without `Retry-After`, and after a connection error.
    pub fallback_wait: Duration,
    /// Give up when the next attempt would start after this much time.
    pub give_up_after: Duration,
    /// Whether a connection error is retried (loadgen waits for an ingest that restarts) or
    /// ends the call (the bench started ingest itself: unreachable is a bug).
    pub retry_unreachable: bool,
}

/// A client for one of ingest's write endpoints with one write key.
#[derive(Clone)]
pub struct IngestClient {
    client: reqwest::Client,
    url: String,
    key: String,
}

impl IngestClient {
    /// `base_url` is ingest's address (`http://host:port`), `path` the endpoint (`/v1/events`).
    pub fn new(client: reqwest::Client, base_url: &str, path: &str, key: &str) -> Self {
        Self { client, url: format!("{}{path}", base_url.trim_end_matches('/')), key: key.to_owned() }
    }

    /// A POST of `body` with the key (HTTP Basic) and the JSON content type, not yet sent.
    pub fn request(&self, body: Bytes) -> reqwest::RequestBuilder {
        self.client
            .post(&self.url)
            .basic_auth(&self.key, Some(""))
            .header("content-type", "application/json")
            .body(body)
    }

    /// Posts `body` until ingest answers 200, following `policy`; `refused` is called on every
    /// 503/429 (the bench counts them).
    pub async fn post_until_accepted(
        &self,
        body: &Bytes,
        policy: &RetryPolicy,
        mut refused: impl FnMut(),
    ) -> Result<(), ToolsError> {
        let deadline = Instant::now() + policy.give_up_after;
        loop {
            let wait = match self.request(body.clone()).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status() == 503 || r.status() == 429 => {
                    refused();
                    retry_after(&r).unwrap_or(policy.fallback_wait)
                }
                Ok(r) => {
                    let status = r.status();
                    return Err(ToolsError::Refused { status, body: r.text().await.unwrap_or_default() });
                }
                Err(e) if !policy.retry_unreachable => return Err(e.into()),
                Err(_) => policy.fallback_wait,
            };
            if Instant::now() + wait > deadline {
                return Err(ToolsError::GaveUp { after: policy.give_up_after, unreachable: policy.retry_unreachable });
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// The `Retry-After` of a response, in whole seconds (the form ingest sends).
fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.trim().parse().ok()).map(Duration::from_secs)
}
