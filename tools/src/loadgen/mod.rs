//! `loadgen`: simulates a book of accounts and sends their usage to ingest — historical days as
//! fast as ingest takes them, or live at a target rate — and can write the ground truth (each
//! account's kind, decline onset, churn date, dip) for checking what uptake alerted.

pub mod book;
mod draw;
pub mod generate;
mod rng;
pub mod send;
#[cfg(test)]
mod truth_tests;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::ToolsError;
use chrono::{NaiveDate, Utc};
use serde_json::{json, Value};

pub use book::{Account, Book, Kind, SlideStyle, Span};
pub use draw::LEAVE_SHARE;
pub use generate::{day_events, to_segment, Format};

/// The ground truth of a book, as JSON (docs/SIGNAL.md): per account its kind, `at_risk`,
/// `decline_onset`, `churn_date`, `dip` {from, to}, renewal date, users and seats, each user's
/// own leave (`vacations`: user, from, to); the book's public `holidays` and the share of users
/// with leave it was drawn with (`leave_share`).
pub fn truth(book: &Book) -> Value {
    let kinds: serde_json::Map<String, Value> =
        book.kinds().into_iter().map(|(k, n)| (k.as_str().to_owned(), json!(n))).collect();
    json!({
        "seed": book.seed,
        "leave_share": book.leave_share,
        "first_day": book.first_day,
        "today": book.today,
        "outcomes": book.outcomes,
        "holidays": book.holidays,
        "kinds": kinds,
        "accounts": book.accounts.iter().map(|a| {
            let mut v = serde_json::to_value(a).expect("account serialises");
            v["users"] = json!(a.users.len());
            v["at_risk"] = json!(a.at_risk());
            v["vacations"] = json!(a.vacations().into_iter().map(|(user, s)| json!({"user": user, "from": s.from, "to": s.to})).collect::<Vec<_>>());
            v
        }).collect::<Vec<_>>(),
    })
}

/// Sends every day of `book`, oldest first; returns the events accepted.
pub async fn history(book: &Book, sender: &send::Sender, batch: usize, concurrency: usize) -> Result<u64, ToolsError> {
    let mut progress = send::Progress::default();
    let days = book.days().count();
    for (k, day) in book.days().enumerate() {
        let events = day_events(book, day);
        sender.send_all(&events, batch, concurrency).await?;
        progress.tick(sender.accepted.load(Ordering::Relaxed), &format!("day {}/{days} ({day})", k + 1), k + 1 == days);
    }
    Ok(sender.accepted.load(Ordering::Relaxed))
}

/// Live traffic: today's behaviour of the book, stamped with the current time, at `rate`
/// events/s for `duration`; returns the events accepted.
pub async fn live(
    book: &Book,
    sender: &send::Sender,
    rate: u32,
    duration: Duration,
    batch: usize,
) -> Result<u64, ToolsError> {
    let mut progress = send::Progress::default();
    let started = tokio::time::Instant::now();
    let batch = batch.min(rate.max(1) as usize);
    let mut sent = 0usize;
    let mut pending = Vec::new();
    // Cycle through simulated days so the mix stays realistic however long the run.
    for day in book.days().cycle() {
        for mut e in day_events(book, day) {
            if started.elapsed() >= duration {
                break;
            }
            e["timestamp"] = json!(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            e["message_id"] = json!(format!("live-{}-{sent}", started.elapsed().as_nanos()));
            pending.push(e);
            sent += 1;
            if pending.len() == batch {
                // Pace: the batch ending at event `sent` is due at sent / rate seconds.
                tokio::time::sleep_until(started + Duration::from_secs_f64(sent as f64 / rate as f64)).await;
                let (worker, chunk) = (sender.clone(), std::mem::take(&mut pending));
                tokio::spawn(async move { worker.send(&chunk).await });
                progress.tick(sender.accepted.load(Ordering::Relaxed), "live", false);
            }
        }
        if started.elapsed() >= duration {
            break;
        }
    }
    sender.send_all(&pending, batch, 1).await?;
    // Let the requests in flight finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted = sender.accepted.load(Ordering::Relaxed);
    progress.tick(accepted, "live, done", true);
    Ok(accepted)
}

/// Today in UTC.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Writes the ground truth of `book` to `path`.
pub fn write_truth(book: &Book, path: &PathBuf) -> Result<(), ToolsError> {
    std::fs::write(path, serde_json::to_string_pretty(&truth(book)).expect("JSON") + "\n")?;
    Ok(())
}
