//! What a rejected event looks like on the dead-letter topic: without credentials, and small
//! enough to always fit a Kafka record.

use schemas::runtime::format::truncate_at_char;
use schemas::FieldError;
use serde_json::Value;

use crate::IngestError;

/// Largest dead-letter payload: enough to diagnose any event (Segment's own per-event limit is
/// 32 KB; the head of a bigger one shows what it is), far below any broker's record limit.
pub const DEAD_LETTER_MAX_PAYLOAD: usize = 16 * 1024;
/// Longest `error` header: the reasons of one event, which echo client-chosen field names.
const DEAD_LETTER_MAX_REASON: usize = 4 * 1024;
/// Kafka header on a truncated dead letter: the size in bytes of the event as it was sent.
pub const HEADER_TRUNCATED: &str = "truncated";
/// Keys whose values are credentials, removed at any depth from what is dead-lettered
/// (compared case-insensitively, ignoring `_` and `-`).
const SECRET_KEYS: &[&str] = &["writekey", "authorization", "apikey", "password", "secret", "token"];

/// A rejected event as it goes to the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub key: String,
    pub payload: Vec<u8>,
    /// The reasons (`field: reason; …`), at most 4 KiB.
    pub reason: String,
    /// The original size in bytes when the payload was truncated.
    pub truncated_from: Option<String>,
}

/// What is dead-lettered for one rejected event: the event without credentials (a body that
/// authenticated with `writeKey` must not hand the key to everyone who reads the topic) and,
/// when its JSON is over [`DEAD_LETTER_MAX_PAYLOAD`], a JSON object
/// `{"uptake_truncated": {"original_bytes": N}, "head": "<first bytes of the event's JSON>"}`
/// so consumers still read JSON. The key is the event's account (or user) id when it is a
/// valid id, else empty.
pub fn dead_letter_record(raw: &Value, errors: &[FieldError]) -> Result<DeadLetter, IngestError> {
    let mut clean = raw.clone();
    strip_secrets(&mut clean);
    let mut payload = serde_json::to_vec(&clean).map_err(schemas::SchemaError::from)?;
    let mut truncated_from = None;
    if payload.len() > DEAD_LETTER_MAX_PAYLOAD {
        let text = String::from_utf8_lossy(&payload);
        // Room for the wrapper and for JSON escapes of the head (at most 6 bytes per byte for
        // control characters, far less in practice; the loop below makes sure).
        let mut head_len = DEAD_LETTER_MAX_PAYLOAD - 256;
        loop {
            let head = truncate_at_char(&text, head_len);
            let wrapped = serde_json::json!({"uptake_truncated": {"original_bytes": payload.len()}, "head": head});
            let bytes = serde_json::to_vec(&wrapped).map_err(schemas::SchemaError::from)?;
            if bytes.len() <= DEAD_LETTER_MAX_PAYLOAD || head_len == 0 {
                truncated_from = Some(payload.len().to_string());
                payload = bytes;
                break;
            }
            head_len /= 2;
        }
    }
    let reason = errors.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect::<Vec<_>>().join("; ");
    let key = ["account_id", "userId", "anonymousId"]
        .iter()
        .find_map(|k| raw.get(*k).and_then(Value::as_str).filter(|id| schemas::limits::check_id(id).is_ok()))
        .unwrap_or_default();
    Ok(DeadLetter {
        key: key.to_owned(),
        payload,
        reason: truncate_at_char(&reason, DEAD_LETTER_MAX_REASON).to_owned(),
        truncated_from,
    })
}

/// Removes credential-like keys from every object in `value`, however deep.
fn strip_secrets(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| {
                let k: String = k.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_ascii_lowercase();
                !SECRET_KEYS.contains(&k.as_str())
            });
            map.values_mut().for_each(strip_secrets);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_secrets),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dead_letters_lose_their_keys_and_fit_a_record() {
        let errors = vec![FieldError::new("event", "is 2000000 bytes; at most 32768 per event")];
        let raw = json!({"writeKey": "secret-key-123", "kind": "login", "account_id": "acme",
                         "properties": {"Authorization": "Bearer x", "nested": [{"api_key": "k", "keep": 1}], "note": "é".repeat(1_000_000)}});
        let dead = dead_letter_record(&raw, &errors).unwrap();
        assert!(dead.payload.len() <= DEAD_LETTER_MAX_PAYLOAD, "{}", dead.payload.len());
        let text = String::from_utf8(dead.payload.clone()).unwrap();
        assert!(
            !text.contains("secret-key-123") && !text.contains("Bearer") && !text.contains("api_key"),
            "{text:.300}"
        );
        let value: Value = serde_json::from_slice(&dead.payload).unwrap();
        let original: usize = dead.truncated_from.as_deref().unwrap().parse().unwrap();
        assert!(original > 2_000_000);
        assert_eq!(value["uptake_truncated"]["original_bytes"], original);
        assert!(value["head"].as_str().unwrap().starts_with("{\"account_id\":\"acme\""));
        assert_eq!(dead.key, "acme");

        // A small one is kept whole, less its key; a long id is no Kafka key.
        let raw = json!({"writeKey": "secret-key-123", "kind": "login", "account_id": "a".repeat(5000)});
        let dead = dead_letter_record(&raw, &errors).unwrap();
        assert_eq!(dead.truncated_from, None);
        assert_eq!(
            serde_json::from_slice::<Value>(&dead.payload).unwrap(),
            json!({"kind": "login", "account_id": "a".repeat(5000)})
        );
        assert_eq!(dead.key, "");
        let many = vec![FieldError::new("x".repeat(10_000), "unknown field"); 3];
        assert!(dead_letter_record(&raw, &many).unwrap().reason.len() <= DEAD_LETTER_MAX_REASON);
    }
}
