//! Events and stored rows for tests that write straight to the topic or to ClickHouse, so every
//! test builds a login the same way (eight tests once had a `login()` of their own).

use chrono::{DateTime, Utc};
use schemas::event::{Event, EventKind};
use warehouse::rows::EventRow;

/// An RFC 3339 instant, e.g. `"2026-03-02T09:00:00Z"`; panics on a typo, as a test should.
pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("{s:?} is not an RFC 3339 instant: {e}"))
}

/// A login by `user` of `account` at `at`, received then, from `source`.
pub fn login(message_id: impl Into<String>, account: &str, user: &str, at: DateTime<Utc>, source: &str) -> Event {
    Event::new(EventKind::Login, message_id.into(), account.into(), user.into(), at, at, source.into())
}

/// `event` received at `received` (late, or early with a skewed client clock).
pub fn received_at(event: Event, received: DateTime<Utc>) -> Event {
    Event { received_at: received, ..event }
}

/// `event` as the consumer stores it, read from `topic` partition 0 at `offset`.
pub fn stored(event: Event, topic: &str, offset: i64) -> EventRow {
    EventRow::new(event, topic, 0, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_received_when_it_happened() {
        let e = login("m1", "acme", "u1", at("2026-03-02T09:00:00Z"), "t");
        assert_eq!((e.kind, e.timestamp, e.received_at), (EventKind::Login, at("2026-03-02T09:00:00Z"), e.timestamp));
        assert_eq!((e.account_id.as_str(), e.user_id.as_str(), e.message_id.as_str()), ("acme", "u1", "m1"));
    }
}
