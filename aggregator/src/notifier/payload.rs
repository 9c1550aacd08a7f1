//! What a webhook receives: the generic JSON envelope or a Slack message.
//!
//! Both carry the delivery id (`alert_id:status`), also sent as the `Idempotency-Key` header, so
//! a receiver can drop the one duplicate the notifier cannot rule out (a crash between the
//! receiver's 2xx and the ledger write).

use schemas::alert::{Alert, AlertStatus, Severity};
use serde_json::{json, Value};

use crate::config::WebhookFormat;

/// Identifies one alert record: the firing and the resolved record of an episode share the
/// alert id, and each is delivered once per webhook.
pub fn delivery_id(alert: &Alert) -> String {
    format!("{}:{}", alert.alert_id, alert.status.as_str())
}

/// The request body for `format`.
pub fn render(format: WebhookFormat, webhook: &str, alert: &Alert) -> Value {
    match format {
        WebhookFormat::Json => json!({ "delivery_id": delivery_id(alert), "webhook": webhook, "alert": alert }),
        WebhookFormat::Slack => slack(alert),
    }
}

/// A Slack incoming-webhook message: `text` is the notification line (and the fallback for
/// clients without blocks); the blocks add the metric values and the context a CSM needs to act
/// without opening a dashboard.
fn slack(alert: &Alert) -> Value {
    let headline = match alert.status {
        AlertStatus::Firing => {
            let icon = match alert.severity {
                Severity::Critical => ":rotating_light:",
                Severity::Warning => ":warning:",
                Severity::Info => ":information_source:",
            };
            format!("{icon} *{}* churn risk for *{}*: {}", alert.severity.as_str(), alert.account_id, alert.reason)
        }
        AlertStatus::Resolved => {
            format!(":white_check_mark: Resolved for *{}*: {}", alert.account_id, alert.reason)
        }
    };
    let mut context = vec![format!("rule `{}`", alert.rule_id)];
    if let Some(stage) = &alert.lifecycle_stage {
        context.push(format!("stage {stage}"));
    }
    if let Some(score) = alert.health_score {
        context.push(format!("health {score:.0}/100"));
    }
    context.push(format!("CSM {}", alert.csm_owner.as_deref().unwrap_or("unassigned")));
    context.push(format!("fired {}", alert.fired_at.format("%Y-%m-%d %H:%M UTC")));
    if let Some(at) = alert.resolved_at {
        context.push(format!("resolved {}", at.format("%Y-%m-%d %H:%M UTC")));
    }
    // Slack allows at most 10 fields in a section.
    let fields: Vec<Value> = alert
        .metrics
        .iter()
        .take(10)
        .map(|(name, value)| json!({ "type": "mrkdwn", "text": format!("*{name}*\n{}", number(*value)) }))
        .collect();
    let mut blocks = vec![json!({ "type": "section", "text": { "type": "mrkdwn", "text": headline } })];
    if !fields.is_empty() {
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": context.join(" · ") }] }));
    json!({ "text": headline, "blocks": blocks })
}

/// Whole numbers without a fraction, others to two places: "12", "0.35".
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: &str) -> Alert {
        serde_json::from_value(json!({
            "alert_id": "a1", "account_id": "acme", "rule_id": "wau_drop", "severity": "critical",
            "status": status, "fired_at": "2026-03-01T09:30:00Z", "lifecycle_stage": "growth",
            "health_score": 41.4, "metrics": { "active_users_7d": 3.0, "active_users_change_7d": -75.0, "seat_utilisation": 0.15 },
            "csm_owner": "dana@vendor.example", "reason": "Weekly active users fell 75 % (12 → 3) vs the previous 7 days."
        }))
        .unwrap()
    }

    #[test]
    fn the_json_envelope_carries_the_alert_verbatim_and_the_delivery_id() {
        let a = alert("firing");
        let body = render(WebhookFormat::Json, "cs-team", &a);
        assert_eq!(body["delivery_id"], "a1:firing");
        assert_eq!(body["webhook"], "cs-team");
        assert_eq!(serde_json::from_value::<Alert>(body["alert"].clone()).unwrap(), a);
    }

    #[test]
    fn the_slack_message_says_who_what_and_why() {
        let body = render(WebhookFormat::Slack, "s", &alert("firing"));
        let text = body["text"].as_str().unwrap();
        assert!(text.starts_with(":rotating_light: *critical* churn risk for *acme*: Weekly active users fell 75 %"), "{text}");
        let fields = body["blocks"][1]["fields"].as_array().unwrap();
        let shown: Vec<&str> = fields.iter().map(|f| f["text"].as_str().unwrap()).collect();
        assert_eq!(shown, ["*active_users_7d*\n3", "*active_users_change_7d*\n-75", "*seat_utilisation*\n0.15"]);
        let context = body["blocks"][2]["elements"][0]["text"].as_str().unwrap();
        assert_eq!(context, "rule `wau_drop` · stage growth · health 41/100 · CSM dana@vendor.example · fired 2026-03-01 09:30 UTC");

        let resolved = render(WebhookFormat::Slack, "s", &alert("resolved"));
        assert!(resolved["text"].as_str().unwrap().starts_with(":white_check_mark: Resolved for *acme*"));
    }
}
