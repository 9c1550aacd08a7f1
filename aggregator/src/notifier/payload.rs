//! What a webhook receives: the generic JSON envelope or a Slack message.
//!
//! Both carry the delivery id ([`Alert::record_id`]: `alert_id:status`, plus the action id of a
//! lifecycle record), also sent as the `Idempotency-Key` header, so a receiver can drop the one
//! duplicate the notifier cannot rule out (a crash between the receiver's 2xx and the ledger write).

use schemas::alert::{Alert, AlertStatus, Severity};
use schemas::runtime::format::number;
use serde_json::{json, Value};

use crate::config::WebhookFormat;

/// Identifies one alert record: the firing and the resolved record of an episode share the
/// alert id, and each is delivered once per webhook; an episode's lifecycle records (it may be
/// assigned or snoozed more than once) also differ by their action id.
pub fn delivery_id(alert: &Alert) -> String {
    alert.record_id()
}

/// The account's page in the console under `base` (no trailing `/`). The account id is
/// customer-supplied: every byte but the unreserved ones (RFC 3986) is percent-encoded, so it
/// stays one path segment and carries no `<`, `>` or `|` into a Slack link.
pub fn console_url(base: &str, account_id: &str) -> String {
    let mut out = format!("{base}/accounts/");
    for b in account_id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The request body for `format`.
pub fn render(format: WebhookFormat, webhook: &str, alert: &Alert) -> Value {
    match format {
        WebhookFormat::Json => json!({ "delivery_id": delivery_id(alert), "webhook": webhook, "alert": alert }),
        WebhookFormat::Slack => slack(alert),
    }
}

/// A Slack incoming-webhook message: `text` is the notification line (and the fallback for
/// clients without blocks); the blocks add the metric values, the CSM's note, the context a CSM
/// needs to act without opening a dashboard and, with a console configured, an "Open in uptake"
/// button to the account's page.
///
/// Every string that comes from outside uptake's code — account id, reason, rule id, stage, CSM
/// owner, metric names, and a lifecycle record's actor, note and assignee — is escaped ([`esc`]):
/// an account id `<!channel>` would otherwise ping a whole channel, and
/// `<https://evil.example|Open dashboard>` would show as a disguised link. Each is also clipped,
/// since Slack refuses (400, final) a section over 3000 characters, which would park the alert
/// instead of delivering it.
fn slack(alert: &Alert) -> Value {
    let headline = headline(alert);
    let mut context = vec![format!("rule `{}`", esc(&alert.rule_id, 200))];
    if let Some(stage) = &alert.lifecycle_stage {
        context.push(format!("stage {}", esc(stage, 50)));
    }
    if let Some(score) = alert.health_score {
        context.push(format!("health {score:.0}/100"));
    }
    let owner = alert.csm_owner.as_deref().unwrap_or("unassigned");
    context.push(format!("CSM {}", esc(owner, 200)));
    context.push(format!("fired {}", alert.fired_at.format("%Y-%m-%d %H:%M UTC")));
    if let Some(at) = alert.resolved_at {
        context.push(format!("resolved {}", at.format("%Y-%m-%d %H:%M UTC")));
    }
    // Slack allows at most 10 fields in a section.
    let fields: Vec<Value> = alert
        .metrics
        .iter()
        .take(10)
        .map(|(name, value)| json!({ "type": "mrkdwn", "text": format!("*{}*\n{}", esc(name, 100), number(*value)) }))
        .collect();
    let mut blocks = vec![json!({ "type": "section", "text": { "type": "mrkdwn", "text": headline } })];
    if let Some(note) = alert.action.as_ref().and_then(|a| a.note.as_deref()).filter(|n| !n.trim().is_empty()) {
        blocks.push(
            json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("> {}", esc(note, 1_500)) } }),
        );
    }
    if !fields.is_empty() {
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": context.join(" · ") }] }));
    if let Some(url) = &alert.console_url {
        blocks.push(json!({ "type": "actions", "elements": [{
            "type": "button", "text": { "type": "plain_text", "text": "Open in uptake" }, "url": url
        }] }));
    }
    json!({ "text": headline, "blocks": blocks })
}

/// The notification line: what happened to the episode, on which account, and why it exists.
fn headline(alert: &Alert) -> String {
    let account = esc(&alert.account_id, 200);
    let reason = esc(&alert.reason, 1_500);
    let when = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    // A lifecycle record without its action (another producer's) still gets a sentence.
    let action = alert.action.as_ref();
    let by = esc(action.map_or("someone", |a| a.by.as_str()), 200);
    match alert.status {
        AlertStatus::Firing => {
            let icon = match alert.severity {
                Severity::Critical => ":rotating_light:",
                Severity::Warning => ":warning:",
                Severity::Info => ":information_source:",
            };
            format!("{icon} *{}* churn risk for *{account}*: {reason}", alert.severity.as_str())
        }
        AlertStatus::Resolved => format!(":white_check_mark: Resolved for *{account}*: {reason}"),
        AlertStatus::Acknowledged => format!(":eyes: *{by}* acknowledged the alert for *{account}*: {reason}"),
        AlertStatus::Snoozed => {
            let until = action.and_then(|a| a.snoozed_until).map_or_else(|| "further notice".into(), when);
            format!(":zzz: *{by}* snoozed the alert for *{account}* until {until}: {reason}")
        }
        AlertStatus::SnoozeEnded => {
            format!(":alarm_clock: The snooze ended and the alert for *{account}* is still open: {reason}")
        }
        AlertStatus::Assigned => {
            let to = action.and_then(|a| a.assignee.as_deref()).map_or_else(|| "nobody".into(), |a| esc(a, 200));
            format!(":bust_in_silhouette: *{by}* assigned the alert for *{account}* to *{to}*: {reason}")
        }
        AlertStatus::Closed => {
            let why = action.and_then(|a| a.close_reason).map_or("no reason given", |r| r.label());
            format!(":lock: *{by}* closed the alert for *{account}* ({why}): {reason}")
        }
    }
}

/// Slack's escaping for text it would otherwise read as markup: `&`, `<` and `>` (and nothing
/// else — Slack shows other entities literally). `<…>` is how Slack writes mentions (`<!channel>`,
/// `<@U123>`) and links (`<url|label>`), so escaped they show as the characters they are.
/// At most `max` characters come out (escapes counted, never cut), with `…` when clipped.
pub fn esc(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    let mut used = 0;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let piece = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            _ => "",
        };
        let width = if piece.is_empty() { 1 } else { piece.len() };
        // Room for this character and, unless it is the last, the ellipsis.
        let reserve = usize::from(chars.peek().is_some());
        if used + width + reserve > max {
            out.push('…');
            return out;
        }
        if piece.is_empty() {
            out.push(c)
        } else {
            out.push_str(piece)
        }
        used += width;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
        assert!(
            text.starts_with(":rotating_light: *critical* churn risk for *acme*: Weekly active users fell 75 %"),
            "{text}"
        );
        let fields = body["blocks"][1]["fields"].as_array().unwrap();
        let shown: Vec<&str> = fields.iter().map(|f| f["text"].as_str().unwrap()).collect();
        assert_eq!(shown, ["*active_users_7d*\n3", "*active_users_change_7d*\n-75", "*seat_utilisation*\n0.15"]);
        let context = body["blocks"][2]["elements"][0]["text"].as_str().unwrap();
        assert_eq!(
            context,
            "rule `wau_drop` · stage growth · health 41/100 · CSM dana@vendor.example · fired 2026-03-01 09:30 UTC"
        );

        let resolved = render(WebhookFormat::Slack, "s", &alert("resolved"));
        assert!(resolved["text"].as_str().unwrap().starts_with(":white_check_mark: Resolved for *acme*"));
    }

    #[test]
    fn slack_payload_escapes_customer_text() {
        let mut a = alert("firing");
        a.account_id = "<!channel> & co".into();
        a.reason = "Open <https://evil.example/login|the dashboard> now".into();
        a.rule_id = "r<1>".into();
        a.lifecycle_stage = Some("<!here>".into());
        a.csm_owner = Some("<@U0123>".into());
        a.metrics = BTreeMap::from([("<!everyone>".into(), 1.0)]);
        let body = render(WebhookFormat::Slack, "s", &a);
        let text = body["text"].as_str().unwrap();
        assert_eq!(
            text,
            ":rotating_light: *critical* churn risk for *&lt;!channel&gt; &amp; co*: Open &lt;https://evil.example/login|the dashboard&gt; now"
        );
        // Nowhere in the message — text or any block — is there a raw `<`, `>` or unescaped `&`.
        let all = body.to_string();
        assert!(!all.contains('<') && !all.contains('>'), "{all}");
        assert_eq!(body["blocks"][0]["text"]["text"].as_str(), Some(text));
        assert_eq!(body["blocks"][1]["fields"][0]["text"], "*&lt;!everyone&gt;*\n1");
        let context = body["blocks"][2]["elements"][0]["text"].as_str().unwrap();
        assert!(
            context.starts_with("rule `r&lt;1&gt;` · stage &lt;!here&gt; · health 41/100 · CSM &lt;@U0123&gt;"),
            "{context}"
        );
        // The JSON envelope carries the record verbatim: escaping is Slack's concern only.
        assert_eq!(render(WebhookFormat::Json, "j", &a)["alert"]["account_id"], "<!channel> & co");
    }

    fn lifecycle(status: &str, action: Value) -> Alert {
        let mut a = serde_json::to_value(alert(status)).unwrap();
        a["action"] = action;
        serde_json::from_value(a).unwrap()
    }

    #[test]
    fn lifecycle_records_say_who_did_what_and_carry_their_action_id() {
        let at = "2026-03-02T10:00:00Z";
        let cases = [
            (
                "acknowledged",
                json!({"action_id": "x1", "by": "dana", "at": at}),
                ":eyes: *dana* acknowledged the alert for *acme*: Weekly active users fell 75 %",
            ),
            (
                "snoozed",
                json!({"action_id": "x2", "by": "dana", "at": at, "snoozed_until": "2026-03-09T00:00:00Z", "note": "back from <!here> leave"}),
                ":zzz: *dana* snoozed the alert for *acme* until 2026-03-09 00:00 UTC: Weekly",
            ),
            (
                "snooze_ended",
                json!({"action_id": "x3", "by": "uptake", "at": at}),
                ":alarm_clock: The snooze ended and the alert for *acme* is still open: Weekly",
            ),
            (
                "assigned",
                json!({"action_id": "x4", "by": "dana", "at": at, "assignee": "sam <@U1>"}),
                ":bust_in_silhouette: *dana* assigned the alert for *acme* to *sam &lt;@U1&gt;*: Weekly",
            ),
            (
                "closed",
                json!({"action_id": "x5", "by": "<!channel>", "at": at, "close_reason": "false_alarm"}),
                ":lock: *&lt;!channel&gt;* closed the alert for *acme* (false alarm): Weekly",
            ),
        ];
        for (status, action, want) in cases {
            let a = lifecycle(status, action);
            let body = render(WebhookFormat::Slack, "s", &a);
            let text = body["text"].as_str().unwrap();
            assert!(text.starts_with(want), "{status}: {text}");
            assert!(!body.to_string().contains('<'), "{status}: escaped: {body}");
            let id = a.action.as_ref().unwrap().action_id.clone();
            assert_eq!(delivery_id(&a), format!("a1:{status}:{id}"));
            assert_eq!(render(WebhookFormat::Json, "j", &a)["delivery_id"], format!("a1:{status}:{id}"));
        }
        let snoozed =
            lifecycle("snoozed", json!({"action_id": "x2", "by": "dana", "at": at, "note": "back from <!here> leave"}));
        let body = render(WebhookFormat::Slack, "s", &snoozed);
        assert_eq!(body["blocks"][1]["text"]["text"], "> back from &lt;!here&gt; leave", "the note, escaped");
        assert!(body["text"].as_str().unwrap().contains("until further notice"));
        assert_eq!(delivery_id(&alert("firing")), "a1:firing", "rule records keep their id");
    }

    #[test]
    fn the_console_link_escapes_the_account_and_becomes_a_slack_button() {
        let url = console_url("https://uptake.example.com", "acme <co>/ü|x");
        assert_eq!(url, "https://uptake.example.com/accounts/acme%20%3Cco%3E%2F%C3%BC%7Cx");
        let mut a = alert("firing");
        let without = render(WebhookFormat::Slack, "s", &a);
        assert!(!without.to_string().contains("Open in uptake"), "no console: no button");
        a.console_url = Some(url.clone());
        let body = render(WebhookFormat::Slack, "s", &a);
        let last = body["blocks"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["type"], "actions");
        assert_eq!(last["elements"][0]["text"]["text"], "Open in uptake");
        assert_eq!(last["elements"][0]["url"], url.as_str());
        assert_eq!(render(WebhookFormat::Json, "j", &a)["alert"]["console_url"], url.as_str());
    }

    #[test]
    fn slack_text_stays_within_slacks_section_limit() {
        let mut a = alert("firing");
        a.account_id = "<".repeat(5_000);
        a.reason = "&".repeat(10_000);
        let body = render(WebhookFormat::Slack, "s", &a);
        let text = body["text"].as_str().unwrap();
        assert!(text.chars().count() <= 3_000, "{}", text.len());
        assert!(text.contains("&lt;…*") && text.ends_with("&amp;…"), "clipped between escapes, never inside one");
        assert_eq!(esc("a<b", 10), "a&lt;b");
        assert_eq!(esc("a<b", 5), "a…", "no cut entity");
        assert_eq!(esc("abc", 3), "abc");
    }
}
