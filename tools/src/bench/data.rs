//! The bench's events: one fixed mix (logins, feature use, data imports) over a book of
//! accounts and users in the last week, as native JSON (what clients send to ingest) and as the
//! canonical events ingest writes to Kafka and the aggregator stores — the same events for every
//! path, so the ratios compare like with like.

use chrono::{Duration, Utc};
use schemas::event::Event;
use serde_json::{json, Value};

use crate::ToolsError;

/// The first eight of the load generator's features.
const FEATURES: &[&str] = crate::loadgen::book::FEATURES.split_at(8).0;

/// `n` native events over `accounts` accounts (20 users each), ids unique to `run`.
pub fn native_events(run: &str, n: usize, accounts: usize) -> Vec<Value> {
    let now = Utc::now();
    (0..n)
        .map(|i| {
            let account = format!("bench-{:06}", i % accounts);
            let user = format!("{account}-u{}", (i / accounts) % 20);
            // Spread over the last 7 days, oldest first, as a day of traffic replays would.
            let ts = now - Duration::seconds(((n - i) * 7 * 86_400 / n.max(1)) as i64);
            let mut e = json!({
                "account_id": account, "user_id": user, "message_id": format!("{run}-{i}"),
                "timestamp": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            });
            let fields = match i % 8 {
                0 => json!({ "kind": "login" }),
                7 => json!({ "kind": "data_volume", "records": 100 + i % 900, "bytes": 4096 * (1 + i % 64), "object": "contacts" }),
                k => json!({ "kind": "feature_used", "feature": FEATURES[(i / 8 + k) % 8], "count": 1 + i % 5,
                             "properties": { "plan": "pro", "client": "web" } }),
            };
            e.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
            e
        })
        .collect()
}

/// The canonical events ingest would make of `native` (validated by the same parser).
pub fn canonical(native: &[Value]) -> Result<Vec<Event>, ToolsError> {
    let ctx = schemas::native::Context {
        received_at: Utc::now(),
        source: "bench",
        max_future: Duration::seconds(600),
        max_age: Duration::days(schemas::limits::DEFAULT_MAX_AGE_DAYS),
    };
    native
        .iter()
        .map(|v| {
            schemas::native::parse_event(v, &ctx).map_err(|e| ToolsError::Setup(format!("bench event invalid: {e:?}")))
        })
        .collect()
}

/// `{"batch":[…]}` request bodies of `size` events each, serialised once up front so the
/// client's own work stays out of the measurement.
pub fn batch_bodies(native: &[Value], size: usize) -> Vec<bytes::Bytes> {
    native.chunks(size).map(|c| bytes::Bytes::from(json!({ "batch": c }).to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bench_event_is_valid_and_the_mix_is_as_documented() {
        let native = native_events("t", 800, 10);
        let events = canonical(&native).unwrap();
        let count = |k: &str| events.iter().filter(|e| e.kind.as_str() == k).count();
        assert_eq!((count("login"), count("feature_used"), count("data_volume")), (100, 600, 100));
        let accounts: std::collections::HashSet<_> = events.iter().map(|e| e.account_id.as_str()).collect();
        assert_eq!(accounts.len(), 10);
        assert_eq!(batch_bodies(&native, 500).len(), 2);
    }
}
