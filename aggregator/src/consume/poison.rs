//! Poison never blocks: which ClickHouse errors are worth retrying, and how a chunk that fails
//! for good is split until the rows that cannot be stored are isolated.
//!
//! A *transient* error (connection refused or reset, timeout, overload, an unknown error) is
//! retried with backoff until it passes or the service stops — nothing is lost. A *permanent*
//! one (a value the column refuses, a type mismatch, too many partitions, a syntax error, too
//! large) fails the same way on every retry: retrying it would stall the partition forever. The
//! chunk is then bisected: halves that succeed are stored, and a single row that still fails is
//! handed back to be dead-lettered with the server's error.
//!
//! Errors that are the same for every row and that an operator can fix (unknown table or
//! database, authentication, read-only) count as transient on purpose: dead-lettering the whole
//! stream while someone restores a table would be far worse than waiting.

use std::future::Future;
use std::ops::Range;

use crate::AggregatorError;

/// What a failed insert means for its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// May succeed later: retry the same rows.
    Transient,
    /// Will fail again: some row of the insert is poison.
    Permanent,
}

/// ClickHouse error codes a retry cannot fix, because they come from the data sent.
const DATA_ERRORS: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,  // ATTEMPT_TO_READ_AFTER_EOF
    33,  // CANNOT_READ_ALL_DATA
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    43,  // ILLEGAL_TYPE_OF_ARGUMENT
    53,  // TYPE_MISMATCH
    62,  // SYNTAX_ERROR
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
    321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    469, // VIOLATED_CONSTRAINT
];

/// 252 is TOO_MANY_PARTS: "too many partitions for single INSERT block" is permanent for these
/// rows, while "too many parts" (merges behind) is overload and passes.
const TOO_MANY_PARTS: u32 = 252;

/// The `Code: N` of a ClickHouse error text (`Code: 53. DB::Exception: …` on current servers,
/// `Code: 53, e.displayText() = DB::Exception: …` on 18.16).
pub fn server_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Code: ")? + "Code: ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whether retrying the insert that failed with `e` can succeed.
pub fn classify(e: &AggregatorError) -> Failure {
    use clickhouse::error::Error as Ch;
    let AggregatorError::ClickHouse(e) = e else { return Failure::Transient };
    match e {
        Ch::BadResponse(text) => classify_response(text),
        // A row the client library cannot encode fails the same way every time.
        Ch::Custom(_) | Ch::DataFormat(_) | Ch::InvalidUtf8Encoding(_) => Failure::Permanent,
        _ => Failure::Transient, // network, timeout, and anything unknown: retry
    }
}

fn classify_response(text: &str) -> Failure {
    match server_code(text) {
        Some(TOO_MANY_PARTS) if text.to_ascii_lowercase().contains("partitions") => Failure::Permanent,
        Some(code) if DATA_ERRORS.contains(&code) => Failure::Permanent,
        Some(_) => Failure::Transient,
        // No server code: an HTTP status from the server or a proxy. Only "too large" is final.
        None if text.starts_with("413") => Failure::Permanent,
        None => Failure::Transient,
    }
}

/// Where a chunk's rows go.
pub(crate) trait Sink<T> {
    /// Inserts `rows` as one INSERT.
    fn insert(&mut self, rows: &[T]) -> impl Future<Output = Result<(), AggregatorError>> + Send;
    /// Called after a transient failure: waits before the retry. False: shut down instead.
    fn pause(&mut self, error: &AggregatorError) -> impl Future<Output = bool> + Send;
}

/// What [`store_isolating`] did with a chunk.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Rows stored.
    pub stored: usize,
    /// Rows that cannot be stored, by index into the chunk, with the server's error.
    pub poison: Vec<(usize, String)>,
}

/// Stores `rows`, retrying transient failures (see [`Sink::pause`]) and bisecting permanent
/// ones down to the single rows that cause them. Each row is either stored once or returned as
/// poison: a part that was stored is never sent again. `None` if shutdown came first; what was
/// stored until then stays stored (the caller's dedup window must remember it).
pub(crate) async fn store_isolating<T>(rows: &[T], sink: &mut impl Sink<T>) -> Option<Outcome> {
    let mut outcome = Outcome::default();
    // Ranges still to store, the next one last (a stack keeps the rows in order).
    let mut todo: Vec<Range<usize>> = Vec::new();
    if !rows.is_empty() {
        todo.push(0..rows.len());
    }
    while let Some(range) = todo.pop() {
        match sink.insert(&rows[range.clone()]).await {
            Ok(()) => outcome.stored += range.len(),
            Err(e) => match classify(&e) {
                Failure::Transient => {
                    todo.push(range);
                    if !sink.pause(&e).await {
                        return None;
                    }
                }
                Failure::Permanent if range.len() == 1 => outcome.poison.push((range.start, e.to_string())),
                Failure::Permanent => {
                    let mid = range.start + range.len() / 2;
                    tracing::warn!(error = %e, rows = range.len(), "ClickHouse refused a chunk for good; splitting it to isolate the bad rows");
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                }
            },
        }
    }
    Some(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(text: &str) -> AggregatorError {
        AggregatorError::ClickHouse(clickhouse::error::Error::BadResponse(text.into()))
    }

    #[test]
    fn data_errors_are_permanent_and_overload_is_transient() {
        let permanent = [
            "Code: 53. DB::Exception: Type mismatch in IN or VALUES section. (TYPE_MISMATCH) (version 26.9.1)",
            "Code: 252, e.displayText() = DB::Exception: Too many partitions for single INSERT block (more than 100)",
            "Code: 62. DB::Exception: Syntax error: failed at position 1",
            "Code: 131. DB::Exception: Too large string size",
            "413 Payload Too Large",
        ];
        for text in permanent {
            assert_eq!(classify(&response(text)), Failure::Permanent, "{text}");
        }
        let transient = [
            "Code: 202. DB::Exception: Too many simultaneous queries. Maximum: 100",
            "Code: 241. DB::Exception: Memory limit (total) exceeded",
            "Code: 159. DB::Exception: Timeout exceeded",
            "Code: 209. DB::Exception: Timeout: socket timeout",
            "Code: 210. DB::Exception: Connection refused",
            "Code: 252. DB::Exception: Too many parts (300). Merges are processing significantly slower than inserts",
            "Code: 60. DB::Exception: Table uptake.events doesn't exist",
            "Code: 516. DB::Exception: default: Authentication failed",
            "503 Service Unavailable",
            "Code: 99999. something new",
        ];
        for text in transient {
            assert_eq!(classify(&response(text)), Failure::Transient, "{text}");
        }
        assert_eq!(classify(&AggregatorError::ClickHouse(clickhouse::error::Error::TimedOut)), Failure::Transient);
        assert_eq!(server_code("Code: 53, e.displayText() = DB::Exception"), Some(53));
    }

    /// Refuses any insert containing a row `>= 100` for good; fails transiently `flaky` times.
    struct Fake {
        inserts: Vec<Vec<u32>>,
        stored: Vec<u32>,
        flaky: usize,
        pauses: usize,
    }

    impl Sink<u32> for Fake {
        async fn insert(&mut self, rows: &[u32]) -> Result<(), AggregatorError> {
            self.inserts.push(rows.to_vec());
            if self.flaky > 0 {
                self.flaky -= 1;
                return Err(response("Code: 202. DB::Exception: Too many simultaneous queries"));
            }
            if let Some(bad) = rows.iter().find(|r| **r >= 100) {
                return Err(response(&format!("Code: 53. DB::Exception: Type mismatch for value {bad}")));
            }
            self.stored.extend_from_slice(rows);
            Ok(())
        }
        async fn pause(&mut self, _: &AggregatorError) -> bool {
            self.pauses += 1;
            true
        }
    }

    #[tokio::test]
    async fn a_poison_row_is_isolated_and_every_other_row_stored_once() {
        let mut rows: Vec<u32> = (0..64).collect();
        rows[37] = 137;
        rows[5] = 105;
        let mut sink = Fake { inserts: vec![], stored: vec![], flaky: 0, pauses: 0 };
        let out = store_isolating(&rows, &mut sink).await.unwrap();
        assert_eq!(out.stored, 62);
        assert_eq!(out.poison.iter().map(|p| p.0).collect::<Vec<_>>(), vec![5, 37]);
        assert!(out.poison[1].1.contains("Type mismatch for value 137"), "{:?}", out.poison);
        let mut stored = sink.stored.clone();
        stored.sort_unstable();
        stored.dedup();
        assert_eq!(stored.len(), sink.stored.len(), "no row stored twice");
        assert!(sink.inserts.len() < 30, "bisection, not one insert per row: {}", sink.inserts.len());
    }

    #[tokio::test]
    async fn transient_failures_retry_the_same_rows_without_resending_stored_ones() {
        let rows: Vec<u32> = (0..10).chain([150]).collect();
        let mut sink = Fake { inserts: vec![], stored: vec![], flaky: 3, pauses: 0 };
        let out = store_isolating(&rows, &mut sink).await.unwrap();
        assert_eq!((out.stored, out.poison.len(), sink.pauses), (10, 1, 3));
        assert_eq!(sink.stored, (0..10).collect::<Vec<_>>());
    }
}
