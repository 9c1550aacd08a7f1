//! One alert record to one webhook: POST, and on failure retry with exponential backoff until
//! it succeeds, fails for good, or runs out of attempts.
//!
//! The client never follows a redirect: it would re-send the webhook's custom headers (API keys)
//! and the alert to whatever address the receiver names — a 3xx is a final failure that says so.
//! A refusal's body is read only up to [`ERROR_BODY_CAP`], so a receiver answering an endless
//! error page costs a few KiB, not memory and the whole request timeout.

use std::time::Duration;

use reqwest::StatusCode;
use schemas::alert::Alert;
use tokio::sync::watch;

use super::payload;
use crate::config::{NotifierConfig, WebhookConfig};
use crate::telemetry::Telemetry;

/// How much of a failed response's body is read for the error message.
pub const ERROR_BODY_CAP: usize = 4 * 1024;

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The webhook answered 2xx.
    Delivered { attempts: u32 },
    /// Out of attempts, or refused for good (a 4xx other than 408/429): to be parked.
    Failed { attempts: u32, error: String },
    /// Shutdown came during a backoff wait: nothing is recorded, the record is redelivered
    /// after the restart.
    Interrupted,
}

/// Why one attempt failed.
struct Failure {
    error: String,
    /// Worth another attempt: timeouts, connection errors, 408, 429 and 5xx.
    retryable: bool,
    /// The receiver's `Retry-After`, in seconds.
    retry_after: Option<Duration>,
}

/// Sends alert records to webhooks; one per notifier, shared by all webhooks.
pub struct Sender {
    client: reqwest::Client,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Sender {
    pub fn new(cfg: &NotifierConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("uptake-notifier/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            max_attempts: cfg.max_attempts,
            initial_backoff: cfg.initial_backoff(),
            max_backoff: cfg.max_backoff(),
        })
    }

    /// Delivers `alert` to `hook`, retrying as configured. A request in flight is never cut
    /// short by shutdown (its timeout bounds it), so an answered delivery is always recorded;
    /// only the waits between attempts are.
    pub async fn deliver(
        &self,
        hook: &WebhookConfig,
        alert: &Alert,
        metrics: &Telemetry,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let body = payload::render(hook.format, &hook.name, alert);
        let id = payload::delivery_id(alert);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let timer = metrics.notify_seconds.start_timer();
            let result = self.post(hook, &id, &body).await;
            timer.observe_duration();
            let failure = match result {
                Ok(()) => return Outcome::Delivered { attempts: attempt },
                Err(f) => f,
            };
            if !failure.retryable || attempt >= self.max_attempts {
                return Outcome::Failed { attempts: attempt, error: failure.error };
            }
            metrics.notify_retries.with_label_values(&[&hook.name]).inc();
            let wait = failure.retry_after.unwrap_or_else(|| self.backoff(attempt)).min(self.max_backoff);
            tracing::warn!(webhook = %hook.name, delivery = %id, attempt, error = %failure.error, wait_ms = wait.as_millis() as u64, "webhook delivery failed; retrying");
            if !schemas::runtime::retry::sleep_unless_shutdown(wait, shutdown).await {
                return Outcome::Interrupted;
            }
        }
    }

    async fn post(&self, hook: &WebhookConfig, id: &str, body: &serde_json::Value) -> Result<(), Failure> {
        let mut request = self.client.post(&hook.url).json(body).header("Idempotency-Key", id);
        for (name, value) in &hook.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| Failure {
            // Without the URL: it may hold a secret (Slack's webhook URLs do).
            error: e.without_url().to_string(),
            retryable: true,
            retry_after: None,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.is_redirection() {
            // Only the host: the rest of the location may carry a token.
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| response.url().join(v).ok())
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "an unknown address".into());
            return Err(Failure {
                error: format!("HTTP {status}: redirect to {to} not followed (it would carry the webhook's headers there); configure the final URL"),
                retryable: false,
                retry_after: None,
            });
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = capped_body(response, ERROR_BODY_CAP).await;
        let snippet: String = text.chars().take(200).collect();
        Err(Failure { error: format!("HTTP {status}: {snippet}"), retryable: retryable(status), retry_after })
    }

    /// `initial × 2^(attempt-1)`, capped, with up to 20 % jitter so that many alerts failing
    /// together do not retry in lockstep.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.initial_backoff.saturating_mul(1 << (attempt - 1).min(20)).min(self.max_backoff);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        base.mul_f64(1.0 + (nanos % 200) as f64 / 1000.0)
    }
}

/// The first `cap` bytes of the body (lossy UTF-8); a read error ends it early. The rest is
/// never read: dropping the response closes the connection.
async fn capped_body(mut response: reqwest::Response, cap: usize) -> String {
    let mut buf = Vec::new();
    while buf.len() < cap {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk[..chunk.len().min(cap - buf.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Server trouble and throttling pass; any other refusal would only repeat.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT
}

#[cfg(test)]
mod tests;
