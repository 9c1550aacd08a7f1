//! The published JSON Schemas must describe exactly what the Rust types serialise.

use std::collections::{BTreeMap, BTreeSet};

use schemas::alert::{Alert, AlertAction, AlertStatus, CloseReason, Severity};
use serde_json::Value;

fn schema(name: &str) -> Value {
    let path = format!("{}/json/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn alert_schema_matches_the_alert_type() {
    let alert = Alert {
        alert_id: Alert::episode_id("acme", "active_users_drop", None),
        account_id: "acme".into(),
        rule_id: "active_users_drop".into(),
        severity: Severity::Warning,
        status: AlertStatus::Resolved,
        fired_at: "2026-11-22T10:00:00Z".parse().unwrap(),
        resolved_at: Some("2026-11-23T10:00:00Z".parse().unwrap()),
        lifecycle_stage: Some("growth".into()),
        health_score: Some(41.5),
        metrics: BTreeMap::from([("active_users_7d".into(), 11.0)]),
        csm_owner: Some("dana@vendor.example".into()),
        reason: "Weekly active users fell 52 % (23 → 11) vs the previous 7 days".into(),
        action: Some(AlertAction {
            action_id: "0192f7a0-0000-7000-8000-000000000001".into(),
            by: "dana".into(),
            at: "2026-11-23T11:00:00Z".parse().unwrap(),
            note: Some("Called the champion".into()),
            snoozed_until: Some("2026-11-30T00:00:00Z".parse().unwrap()),
            assignee: Some("sam".into()),
            close_reason: Some(CloseReason::FalseAlarm),
        }),
        console_url: Some("https://console.example/accounts/acme".into()),
    };
    let json = serde_json::to_value(&alert).unwrap();
    let schema = schema("alert.schema.json");
    let declared: BTreeSet<&str> = schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    let emitted: BTreeSet<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(declared, emitted, "schema properties vs serialised fields");
    for required in schema["required"].as_array().unwrap() {
        assert!(!json[required.as_str().unwrap()].is_null(), "{required} is required");
    }
    for (field, value) in [("severity", "warning"), ("status", "resolved")] {
        assert!(schema["properties"][field]["enum"].as_array().unwrap().contains(&Value::from(value)));
    }
    let statuses: BTreeSet<&str> =
        schema["properties"]["status"]["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(statuses, AlertStatus::ALL.iter().map(|s| s.as_str()).collect(), "status enum");
    let action = &schema["properties"]["action"];
    let declared: BTreeSet<&str> = action["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    let emitted: BTreeSet<&str> = json["action"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(declared, emitted, "action properties vs serialised fields");
    let reasons: BTreeSet<&str> =
        action["properties"]["close_reason"]["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(reasons, CloseReason::ALL.iter().map(|r| r.as_str()).collect(), "close reasons");
    // The same episode always gets the same id: receivers deduplicate on it.
    assert_eq!(alert.alert_id, Alert::episode_id("acme", "active_users_drop", None));
    assert_ne!(alert.alert_id, Alert::episode_id("acme", "other_rule", None));
    let back: Alert = serde_json::from_value(json).unwrap();
    assert_eq!(back, alert);
}
