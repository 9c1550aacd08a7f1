//! A book written elsewhere (`signal --book DIR`): somebody's own labelled history, or a
//! generator uptake's authors did not write, scored exactly as loadgen's book is. The figures
//! uptake is judged by come from books it was not tuned on; this makes such a check one command.
//!
//! `DIR/truth.json` says what happened to each account; `DIR/events.jsonl` is the history, one
//! event per line, oldest first, in the shape of the API it is posted to (`--format segment`:
//! Segment messages for `/v1/batch`; `native`: uptake's events for `/v1/events`). Both are what
//! `loadgen --format segment --dry-run --truth DIR/truth.json > DIR/events.jsonl` writes, so
//! loadgen's own book can go through this path too.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;

use super::score::{Truth, OVERALL};
use crate::loadgen::send::{Progress, Sender};
use crate::loadgen::Span;
use crate::ToolsError;

/// `truth.json` as written (loadgen's truth JSON has these fields and more; the rest is ignored).
#[derive(Debug, Deserialize)]
struct RawTruth {
    /// The book's last day: the day the run must happen on, since the live evaluator judges
    /// today.
    today: NaiveDate,
    first_day: NaiveDate,
    accounts: Vec<RawAccount>,
}

#[derive(Debug, Deserialize)]
struct RawAccount {
    id: String,
    /// The book's own name for what happens to the account; tables are per kind.
    kind: String,
    at_risk: bool,
    /// The first day the decline shows in use (at-risk accounts; null for healthy ones).
    decline_onset: Option<NaiveDate>,
    /// Its users' own leave, for "healthy alerted while someone was on leave".
    #[serde(default)]
    vacations: Vec<RawLeave>,
}

#[derive(Debug, Deserialize)]
struct RawLeave {
    from: NaiveDate,
    to: NaiveDate,
}

/// Lines of `events.jsonl` read, parsed and sent at a time.
const CHUNK: usize = 20_000;

/// A book on disk, its truth read and checked.
#[derive(Debug, Clone)]
pub struct ExternalBook {
    pub events: PathBuf,
    pub first_day: NaiveDate,
    pub today: NaiveDate,
    pub truth: Vec<Truth>,
}

fn book_error(path: &Path, why: impl Into<String>) -> ToolsError {
    ToolsError::Book { path: path.to_owned(), why: why.into() }
}

impl ExternalBook {
    /// Reads `dir/truth.json` and checks it: unique ids, an onset only on at-risk accounts and
    /// inside the book, leave that ends after it starts. The events are read when sent.
    pub fn load(dir: &Path) -> Result<Self, ToolsError> {
        let path = dir.join("truth.json");
        let text = std::fs::read_to_string(&path).map_err(|e| book_error(&path, e.to_string()))?;
        Self::parse(&path, &text, dir.join("events.jsonl"))
    }

    fn parse(path: &Path, text: &str, events: PathBuf) -> Result<Self, ToolsError> {
        let raw: RawTruth = serde_json::from_str(text).map_err(|e| book_error(path, e.to_string()))?;
        if raw.first_day > raw.today {
            return Err(book_error(path, format!("first_day {} is after today {}", raw.first_day, raw.today)));
        }
        let mut seen = HashSet::new();
        let mut truth = Vec::with_capacity(raw.accounts.len());
        for (i, a) in raw.accounts.into_iter().enumerate() {
            let at = |why: String| book_error(path, format!("accounts[{i}] ({}): {why}", a.id));
            if !seen.insert(a.id.clone()) {
                return Err(at("the id is there twice".into()));
            }
            if a.kind.is_empty() || a.kind == OVERALL {
                return Err(at(format!("kind {:?} is not a name a table can use", a.kind)));
            }
            match a.decline_onset {
                Some(_) if !a.at_risk => return Err(at("a decline_onset on an account not at_risk".into())),
                Some(o) if o > raw.today => return Err(at(format!("decline_onset {o} is after today"))),
                _ => {}
            }
            if let Some(l) = a.vacations.iter().find(|l| l.to < l.from) {
                return Err(at(format!("leave from {} to {} ends before it starts", l.from, l.to)));
            }
            let leave = a.vacations.iter().map(|l| Span { from: l.from, to: l.to }).collect();
            truth.push(Truth { id: a.id, kind: a.kind, at_risk: a.at_risk, onset: a.decline_onset, leave });
        }
        if truth.is_empty() {
            return Err(book_error(path, "no accounts"));
        }
        Ok(Self { events, first_day: raw.first_day, today: raw.today, truth })
    }

    /// Days in the book, both ends counted.
    pub fn days(&self) -> u32 {
        (self.today - self.first_day).num_days() as u32 + 1
    }

    /// Posts every event of `events.jsonl` in file order, [`CHUNK`] lines read at a time (a book
    /// can be larger than memory should hold), each chunk in batches of `batch` with
    /// `concurrency` requests in flight. Returns the events accepted. A line that is not a JSON
    /// object stops the run before anything of its chunk is sent, naming the line.
    pub async fn send(&self, sender: &Sender, batch: usize, concurrency: usize) -> Result<u64, ToolsError> {
        let file = std::fs::File::open(&self.events).map_err(|e| book_error(&self.events, e.to_string()))?;
        let (mut progress, mut chunk) = (Progress::default(), Vec::with_capacity(CHUNK));
        let accepted = || sender.accepted.load(Ordering::Relaxed);
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| book_error(&self.events, e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            chunk.push(parse_event(&self.events, i + 1, &line)?);
            if chunk.len() == CHUNK {
                sender.send_all(&chunk, batch, concurrency).await?;
                chunk.clear();
                progress.tick(accepted(), &format!("line {}", i + 1), false);
            }
        }
        sender.send_all(&chunk, batch, concurrency).await?;
        progress.tick(accepted(), "all lines", true);
        Ok(accepted())
    }
}

fn parse_event(path: &Path, line_no: usize, line: &str) -> Result<Value, ToolsError> {
    match serde_json::from_str::<Value>(line) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(book_error(path, format!("line {line_no}: not a JSON object"))),
        Err(e) => Err(book_error(path, format!("line {line_no}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::{self, Book};

    fn parse(text: &str) -> Result<ExternalBook, ToolsError> {
        ExternalBook::parse(Path::new("truth.json"), text, PathBuf::from("events.jsonl"))
    }

    #[test]
    fn loadgens_truth_json_reads_back_as_the_truth_it_scores_by() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let book = Book::new(40, 60, 3, today);
        let written = loadgen::truth(&book).to_string();
        let read = parse(&written).unwrap();
        let expected: Vec<Truth> = book.accounts.iter().map(Truth::from).collect();
        assert_eq!(read.truth, expected);
        assert_eq!((read.first_day, read.today, read.days()), (book.first_day, today, 60));
        assert!(read.truth.iter().any(|t| t.at_risk && t.onset.is_some()));
        assert!(read.truth.iter().any(|t| !t.leave.is_empty()));
    }

    #[test]
    fn a_wrong_truth_says_which_account_and_why() {
        let book = |accounts: &str| {
            format!(r#"{{"first_day": "2026-10-01", "today": "2026-12-05", "accounts": [{accounts}]}}"#)
        };
        let ok = r#"{"id": "a", "kind": "steady", "at_risk": false, "decline_onset": null}"#;
        assert_eq!(parse(&book(ok)).unwrap().truth[0].kind, "steady");
        let cases = [
            (format!("{ok}, {ok}"), "accounts[1] (a): the id is there twice"),
            (
                r#"{"id": "b", "kind": "steady", "at_risk": false, "decline_onset": "2026-11-01"}"#.into(),
                "accounts[0] (b): a decline_onset on an account not at_risk",
            ),
            (
                r#"{"id": "c", "kind": "fade", "at_risk": true, "decline_onset": "2026-12-09"}"#.into(),
                "accounts[0] (c): decline_onset 2026-12-09 is after today",
            ),
            (
                r#"{"id": "d", "kind": "overall", "at_risk": false, "decline_onset": null}"#.into(),
                r#"accounts[0] (d): kind "overall" is not a name a table can use"#,
            ),
            (
                r#"{"id": "e", "kind": "dip", "at_risk": false, "decline_onset": null,
                    "vacations": [{"user": "u", "from": "2026-11-10", "to": "2026-11-03"}]}"#
                    .into(),
                "accounts[0] (e): leave from 2026-11-10 to 2026-11-03 ends before it starts",
            ),
        ];
        for (accounts, why) in cases {
            let err = parse(&book(&accounts)).unwrap_err().to_string();
            assert_eq!(err, format!("truth.json: {why}"));
        }
        let err = parse(r#"{"today": "2026-12-05", "accounts": []}"#).unwrap_err().to_string();
        assert!(err.starts_with("truth.json: missing field `first_day`"), "{err}");
    }

    #[test]
    fn a_bad_event_line_is_named() {
        let path = Path::new("events.jsonl");
        assert!(parse_event(path, 3, r#"{"type": "track"}"#).is_ok());
        assert_eq!(parse_event(path, 7, "[1]").unwrap_err().to_string(), "events.jsonl: line 7: not a JSON object");
        assert!(parse_event(path, 9, "{").unwrap_err().to_string().starts_with("events.jsonl: line 9: "));
    }
}
