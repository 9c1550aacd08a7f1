//! What an event may contain, in one place for both input formats: the id rule, the caps on
//! counts and the age limit. The native and the Segment parsers both call these, so an id
//! refused by one API is refused by the other with the same words.

use chrono::{DateTime, Duration, Utc};

/// Longest accepted id or name, in bytes (UTF-8). Real ids are UUIDs (36), e-mail addresses
/// (RFC 5321 caps them at 254) or database keys; 256 covers them all. Bytes, not characters,
/// because bytes are what ingest's memory, Kafka keys and ClickHouse pay for: 256 bytes is the
/// worst case whatever the script.
pub const MAX_ID_BYTES: usize = 256;

/// Largest `records` or `bytes` one event may report: 10^12 (a trillion records, a terabyte).
/// ClickHouse sums them as UInt64 (max 1.8 × 10^19): 1.8 × 10^7 events at the cap are needed to
/// wrap one sum — one such event per minute for 35 years. Bigger transfers are reported in parts.
pub const MAX_VOLUME: u64 = 1_000_000_000_000;

/// Largest feature-use `count` of one event: a million uses (a batch job's calls). Summed as
/// UInt64, 1.8 × 10^13 such events would be needed to wrap.
pub const MAX_USES: u64 = 1_000_000;

/// Default oldest event accepted: two years, the longest history a health trend looks back on
/// plus a customer's back-fill of its previous year.
pub const DEFAULT_MAX_AGE_DAYS: i64 = 730;

/// Checks one id or name against the rule: 1 to [`MAX_ID_BYTES`] bytes; not blank; no
/// leading or trailing whitespace (`"acme "` would silently become a second account beside
/// `"acme"`, splitting its metrics); no control characters and no invisible formatting
/// characters (zero-width, bidi overrides), which make two ids look alike or disguise an id
/// where a CSM reads it. Returns the reason, for a [`crate::FieldError`] naming the field.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.len() > MAX_ID_BYTES {
        return Err(format!("is {} bytes; ids are at most {MAX_ID_BYTES}", id.len()));
    }
    if id.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if id.trim() != id {
        return Err("must not start or end with whitespace".into());
    }
    if let Some((at, c)) = id.char_indices().find(|(_, c)| c.is_control() || is_invisible(*c)) {
        return Err(format!("contains the invisible character U+{:04X} at byte {at}; ids must be printable", c as u32));
    }
    Ok(())
}

/// Unicode format characters that render as nothing but change what a string compares equal
/// to or how it displays: zero-width spaces and joiners, bidi embeddings and overrides, the
/// word joiner family and the byte-order mark.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{00AD}')
}

/// The reason an event time older than `max_age` before `received_at` is refused, or `None`.
pub fn check_age(timestamp: DateTime<Utc>, received_at: DateTime<Utc>, max_age: Duration) -> Option<String> {
    let age = received_at.signed_duration_since(timestamp);
    (age > max_age).then(|| {
        format!(
            "is {} days old; events may be at most {} days old (limits.max_age_days)",
            age.num_days(),
            max_age.num_days()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_rule() {
        for ok in ["acme", "u-1", "dana@vendor.example", "Zürich AG", "東京", &"x".repeat(MAX_ID_BYTES)] {
            assert_eq!(check_id(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(check_id(&"x".repeat(32768)).unwrap_err(), "is 32768 bytes; ids are at most 256");
        // Bytes, not characters: 86 three-byte characters are 258 bytes.
        assert!(check_id(&"東".repeat(86)).unwrap_err().contains("258 bytes"));
        assert_eq!(check_id("").unwrap_err(), "must not be empty");
        assert_eq!(check_id("  ").unwrap_err(), "must not be empty");
        assert_eq!(check_id("acme ").unwrap_err(), "must not start or end with whitespace");
        assert!(check_id("ac\nme").unwrap_err().contains("U+000A at byte 2"));
        assert!(check_id("ac\u{200B}me").unwrap_err().contains("U+200B"));
        assert!(check_id("\u{202E}emca").unwrap_err().contains("U+202E"));
        assert!(check_id("a\u{7F}").is_err() && check_id("a\u{85}").is_err());
    }

    #[test]
    fn the_age_rule() {
        let now: DateTime<Utc> = "2026-11-22T12:00:00Z".parse().unwrap();
        let max = Duration::days(730);
        assert_eq!(check_age(now - Duration::days(729), now, max), None);
        assert_eq!(
            check_age(now - Duration::days(1096), now, max).unwrap(),
            "is 1096 days old; events may be at most 730 days old (limits.max_age_days)"
        );
    }
}
