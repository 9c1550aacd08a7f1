//! The `[notifier]` section: which webhooks get which alert records, and how deliveries are
//! retried (the notifier itself is `crate::notifier`).

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::AggregatorError;

/// The notifier: consumes the alerts topic and POSTs each alert record to every webhook whose
/// route matches it, exactly once per record and webhook (a ledger in ClickHouse remembers what
/// was delivered), retrying failures with exponential backoff before parking the record on
/// `dlq_topic`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NotifierConfig {
    /// Consumer group of the notifier (separate from the aggregator's, so both read every alert).
    pub group_id: String,
    /// Where alert records go that a webhook kept refusing.
    pub dlq_topic: String,
    /// Delivery attempts per alert and webhook before it is parked (1 = no retry).
    pub max_attempts: u32,
    /// Wait before the first retry; doubles per attempt up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    /// The longest wait between two attempts.
    pub max_backoff_ms: u64,
    /// Time limit of one HTTP request.
    pub timeout_ms: u64,
    /// The console's address (`https://uptake.example.com`, http or https, no query). When set,
    /// every delivered record links to its account's page, `<base>/accounts/<account id>`:
    /// `console_url` in the JSON, an "Open in uptake" button in Slack.
    pub console_base_url: Option<String>,
    /// Where alerts are delivered (`[[notifier.webhooks]]` entries); none: the notifier has
    /// nothing to do and `aggregator run` does not start it.
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            group_id: "uptake-notifier".into(),
            dlq_topic: schemas::topics::USAGE_ALERTS_DLQ.into(),
            // 1 + 2 + … + 60 s ≈ 3 minutes of retries: rides out a receiver's deploy or a short
            // outage, while a dead endpoint holds up the alerts behind it for minutes, not hours.
            max_attempts: 8,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            timeout_ms: 10_000,
            console_base_url: None,
            webhooks: Vec::new(),
        }
    }
}

impl NotifierConfig {
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms)
    }
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms)
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    /// The console base URL without a trailing `/`, if configured (validated at load).
    pub fn console_base(&self) -> Option<&str> {
        self.console_base_url.as_deref().map(|u| u.trim_end_matches('/'))
    }
}

/// What a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// `{"delivery_id": …, "webhook": …, "alert": <the alert record>}`.
    Json,
    /// A Slack incoming-webhook message (`text` + `blocks`); also fits Mattermost, Rocket.Chat.
    Slack,
}

/// One webhook and the alerts routed to it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the webhook in the ledger, metrics, logs and dead letters; unique.
    pub name: String,
    /// Where records are POSTed (`http://` or `https://`).
    pub url: String,
    /// What the body is.
    pub format: WebhookFormat,
    /// Only alerts at least this severe (info < warning < critical).
    #[serde(default = "least_severe")]
    pub min_severity: schemas::alert::Severity,
    /// Only alerts of accounts owned by one of these CSMs (their `csm_owner` trait, compared
    /// case-insensitively); empty: every account, owned or not.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Which records, by status: `firing`, `resolved` and the CSM workflow's lifecycle records
    /// (`acknowledged`, `snoozed`, `snooze_ended`, `assigned`, `closed`). Default: all of them.
    #[serde(default = "all_statuses")]
    pub statuses: Vec<schemas::alert::AlertStatus>,
    /// Extra request headers, e.g. `Authorization`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn least_severe() -> schemas::alert::Severity {
    schemas::alert::Severity::Info
}

fn all_statuses() -> Vec<schemas::alert::AlertStatus> {
    schemas::alert::AlertStatus::ALL.to_vec()
}

impl WebhookConfig {
    /// Whether `alert` is routed to this webhook.
    pub fn routes(&self, alert: &schemas::alert::Alert) -> bool {
        let owner_ok = self.owners.is_empty()
            || alert.csm_owner.as_deref().is_some_and(|o| self.owners.iter().any(|w| w.eq_ignore_ascii_case(o.trim())));
        alert.severity >= self.min_severity && self.statuses.contains(&alert.status) && owner_ok
    }
}

impl NotifierConfig {
    /// Checks what types alone cannot; each error names the key (`notifier.webhooks[0] (name).url`).
    pub(super) fn validate(&self) -> Result<(), AggregatorError> {
        let bad = |key: String, reason: &str| Err(AggregatorError::Config { key, reason: reason.into() });
        let n = self;
        if n.group_id.trim().is_empty() || n.dlq_topic.trim().is_empty() {
            return bad("notifier.group_id / notifier.dlq_topic".into(), "must not be empty");
        }
        if n.max_attempts == 0 {
            return bad("notifier.max_attempts".into(), "must be at least 1");
        }
        if n.initial_backoff_ms == 0 || n.initial_backoff_ms > n.max_backoff_ms {
            return bad("notifier.initial_backoff_ms".into(), "need 0 < initial_backoff_ms <= max_backoff_ms");
        }
        if n.timeout_ms == 0 {
            return bad("notifier.timeout_ms".into(), "must be above 0");
        }
        if let Some(base) = &n.console_base_url {
            let parsed = reqwest::Url::parse(base);
            let usable = parsed.is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
            });
            if !usable {
                // Each record's link is `<base>/accounts/<id>`: a query or fragment would swallow it.
                return bad(
                    "notifier.console_base_url".into(),
                    "must be an http:// or https:// URL without ?query or #fragment",
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, w) in n.webhooks.iter().enumerate() {
            let key = |field: &str| format!("notifier.webhooks[{i}] ({}).{field}", w.name);
            if w.name.is_empty() || !w.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return bad(key("name"), "must be letters, digits, _ or -");
            }
            if !names.insert(w.name.as_str()) {
                return bad(key("name"), "is used by another webhook");
            }
            if !w.url.starts_with("http://") && !w.url.starts_with("https://") || reqwest::Url::parse(&w.url).is_err() {
                return bad(key("url"), "must be an http:// or https:// URL");
            }
            // Else every request would fail in the client and each alert be retried, then parked.
            for (name, value) in &w.headers {
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                    || reqwest::header::HeaderValue::from_str(value).is_err()
                {
                    // The value is not quoted: it is often a secret.
                    return bad(key(&format!("headers.{name}")), "must be a valid HTTP header name and value");
                }
            }
            if w.statuses.is_empty() {
                return bad(
                    key("statuses"),
                    "must name at least one of firing, resolved, acknowledged, snoozed, snooze_ended, assigned, closed (or be left out: all of them)",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::RawAggregatorConfig;
    use super::*;

    /// The error `c` is refused with.
    fn refused(c: &RawAggregatorConfig) -> String {
        c.clone().build_and_validate().unwrap_err().to_string()
    }

    #[test]
    fn webhooks_are_validated_and_route_by_severity_status_and_owner() {
        let cfg: RawAggregatorConfig = toml::from_str(
            r#"
            [[notifier.webhooks]]
            name = "dana-slack"
            url = "https://hooks.example/T1"
            format = "slack"
            min_severity = "warning"
            owners = ["Dana@vendor.example"]
            statuses = ["firing"]
            "#,
        )
        .unwrap();
        cfg.clone().build_and_validate().unwrap();
        let hook = &cfg.notifier.webhooks[0];
        let mut alert: schemas::alert::Alert = serde_json::from_value(serde_json::json!({
            "alert_id": "a1", "account_id": "acme", "rule_id": "r", "severity": "critical", "status": "firing",
            "fired_at": "2026-01-01T00:00:00Z", "metrics": {}, "csm_owner": "dana@vendor.example", "reason": "x"
        }))
        .unwrap();
        assert!(hook.routes(&alert));
        alert.severity = schemas::alert::Severity::Info;
        assert!(!hook.routes(&alert), "below min_severity");
        alert.severity = schemas::alert::Severity::Warning;
        alert.csm_owner = Some("sam@vendor.example".into());
        assert!(!hook.routes(&alert), "another CSM's account");
        alert.csm_owner = Some("dana@vendor.example".into());
        alert.status = schemas::alert::AlertStatus::Resolved;
        assert!(!hook.routes(&alert), "resolved records not routed here");

        alert.status = schemas::alert::AlertStatus::Snoozed;
        assert!(!hook.routes(&alert), "lifecycle records not routed here");
        let every: WebhookConfig =
            toml::from_str("name = \"all\"\nurl = \"https://hooks.example/all\"\nformat = \"json\"").unwrap();
        assert_eq!(every.statuses, schemas::alert::AlertStatus::ALL, "by default every status, lifecycle ones too");
        assert!(every.routes(&alert));
        let mut none = cfg.clone();
        none.notifier.webhooks[0].statuses.clear();
        assert!(refused(&none).contains("acknowledged, snoozed"));

        let mut twice = cfg.clone();
        twice.notifier.webhooks.push(hook.clone());
        let err = refused(&twice);
        assert!(err.contains("notifier.webhooks[1] (dana-slack).name"), "{err}");
        let mut bad_url = cfg.clone();
        bad_url.notifier.webhooks[0].url = "hooks.example".into();
        assert!(refused(&bad_url).contains("notifier.webhooks[0] (dana-slack).url"));
        bad_url.notifier.webhooks[0].url = "https://exa mple.com:99999/".into();
        assert!(refused(&bad_url).contains("notifier.webhooks[0] (dana-slack).url"));
        let mut console = cfg.clone();
        console.notifier.console_base_url = Some("https://uptake.example.com/cs/".into());
        console.clone().build_and_validate().unwrap();
        assert_eq!(console.notifier.console_base(), Some("https://uptake.example.com/cs"));
        for wrong in
            ["uptake.example.com", "ftp://uptake.example.com", "https://uptake.example.com/?a=1", "https://x/#f"]
        {
            console.notifier.console_base_url = Some(wrong.into());
            let err = refused(&console);
            assert!(err.contains("notifier.console_base_url"), "{wrong}: {err}");
        }
        let mut bad_header = cfg.clone();
        bad_header.notifier.webhooks[0].headers.insert("Authorization".into(), "Bearer s3cret\n".into());
        let err = refused(&bad_header);
        assert!(
            err.contains("notifier.webhooks[0] (dana-slack).headers.Authorization") && !err.contains("s3cret"),
            "{err}"
        );
    }
}
