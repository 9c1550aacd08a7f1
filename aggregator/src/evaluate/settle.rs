//! Imported history is judged once it has arrived (docs/architecture.md#one-timeline): an
//! account whose past is still being stored (a history import, the backlog of an outage) is
//! held back from its rules until nothing arrived for `evaluation.settle_ms`, then replayed
//! ([`super::timeline`]). Judged on half a history it would look idle and alert.
//!
//! The whole import settles together, not account by account: while any account of a pass is
//! still importing, every account with imported history stored lately waits too. An account
//! whose partition lagged behind the rest of an import otherwise settled on half its history,
//! its episodes opened on what was missing (signal, seed 11: 35 healthy accounts alerted live
//! and never in the backtest), and the book's closures were read from totals still arriving.
//! Across the whole book, not an instance's partitions: on a cluster the partitions another
//! instance owns may lag behind this one's.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::sink::AlertSink;
use super::Evaluator;
use crate::store::{History, LifetimeRow};
use crate::AggregatorError;

/// The longest an account is held back as still importing (`settling_of`): then it is judged
/// on what arrived, and held back again only from scratch.
const MAX_SETTLING_SECS: u32 = 6 * 3_600;

impl<S: AlertSink> Evaluator<S> {
    /// The accounts of `chunk` whose history is still arriving at `clock` (ClickHouse's): their
    /// metrics are written, their rules not judged yet (`evaluation.settle_ms`). Remembered, so
    /// incremental passes look at them again until they settle. Only a live pass asks: the past
    /// a replay reads has arrived. And those that were settling and no longer are: judged for
    /// the first time on their whole history, after a replay of its last days (`warm_up`).
    pub(super) fn settling_of(
        &mut self,
        chunk: &[LifetimeRow],
        clock: u32,
        now: DateTime<Utc>,
        importing: bool,
    ) -> (HashSet<String>, HashSet<String>) {
        // Live traffic is stored within minutes of happening; an import's events are hours or
        // days older than the time they are stored (`account_backfills`, over an hour), whether
        // or not the account's SDK sends live traffic beside them.
        let live = History::of(now) == History::Live;
        // Never held back longer than MAX_SETTLING_SECS: a source that always delivers hours
        // late (a lagging export, a clock set wrong) looks like an import that never ends, and
        // would otherwise never be judged.
        let overdue = |account: &str| {
            self.settling.get(account).is_some_and(|since| clock.saturating_sub(*since) >= MAX_SETTLING_SECS)
        };
        let settling: HashSet<String> = chunk
            .iter()
            .filter(|life| {
                let held = life.settling(clock, self.settle_secs)
                    || (importing && life.imported_within(clock, MAX_SETTLING_SECS));
                live && held && !overdue(&life.account_id)
            })
            .map(|life| life.account_id.clone())
            .collect();
        let mut settled = HashSet::new();
        for life in chunk {
            if settling.contains(&life.account_id) {
                self.settling.entry(life.account_id.clone()).or_insert(clock);
            } else if self.settling.remove(&life.account_id).is_some() {
                settled.insert(life.account_id.clone());
            }
        }
        (settling, settled)
    }

    /// Whether the import is still running (see [`Self::settling_of`]): then every account with
    /// imported history stored within [`MAX_SETTLING_SECS`] waits too. Any of the pass's
    /// `accounts` still importing says so; otherwise, while some of them were imported lately,
    /// the rest of the book is asked — an instance is not the whole import: the partitions other
    /// instances own may lag behind its own, and the book's closures are read from their totals.
    pub(super) async fn importing(
        &self,
        accounts: &[LifetimeRow],
        clock: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, AggregatorError> {
        if History::of(now) != History::Live || self.settle_secs == 0 {
            return Ok(false);
        }
        if accounts.iter().any(|life| life.settling(clock, self.settle_secs)) {
            return Ok(true);
        }
        // Only an instance with imported accounts of its own can judge part of an import early:
        // the book is read (one row per account ever backfilled) only in the hours after such an
        // import.
        if !accounts.iter().any(|life| life.imported_within(clock, MAX_SETTLING_SECS)) {
            return Ok(false);
        }
        self.store.book_importing(clock, self.settle_secs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use warehouse::Warehouse;

    use crate::config::RawAggregatorConfig;
    use crate::consume::ownership::Ownership;
    use crate::evaluate::rules::RuleSet;
    use crate::evaluate::sink::CollectingSink;
    use crate::model::to_datetime;
    use crate::telemetry::Telemetry;

    #[tokio::test]
    async fn an_importing_account_is_held_back_then_judged_and_never_held_back_for_ever() {
        let cfg = RawAggregatorConfig::default().build_and_validate().unwrap();
        let evaluator = || {
            Evaluator::new(
                &cfg,
                RuleSet::default(),
                Warehouse::new(&cfg.clickhouse),
                CollectingSink::default(),
                Arc::new(Telemetry::new()),
                Arc::new(Ownership::fixed([0])),
            )
        };
        let mut ev = evaluator();
        let now = Utc::now();
        let clock = to_datetime(now);
        // Events a day old stored just now: an import.
        let importing = |stored| vec![LifetimeRow::backfilled("imp", stored)];
        let (held, settled) = ev.settling_of(&importing(clock), clock, now, false);
        assert!(held.contains("imp") && settled.is_empty());
        // Nothing stored for longer than settle_ms: judged, after the replay of its last days.
        let later = clock + ev.settle_secs + 1;
        let (held, settled) = ev.settling_of(&importing(clock), later, now, false);
        assert!(held.is_empty() && settled.contains("imp"));
        // A source that always delivers a day late: held back, but not beyond MAX_SETTLING_SECS.
        let (held, _) = ev.settling_of(&importing(later), later, now, false);
        assert!(held.contains("imp"));
        let much_later = later + MAX_SETTLING_SECS;
        let (held, settled) = ev.settling_of(&importing(much_later), much_later, now, false);
        assert!(held.is_empty() && settled.contains("imp"), "judged after {MAX_SETTLING_SECS} s at most");
        // Live traffic (nothing over an hour old ever stored) is never held back.
        let (held, settled) = ev.settling_of(&[LifetimeRow::backfilled("live", 0)], clock, now, false);
        assert!(held.is_empty() && settled.is_empty());
        // While another account of the pass is still importing, one whose own history went
        // quiet (its partition lagged behind the rest) waits for the whole import; a live
        // account and one stored long ago do not.
        let lagging = vec![
            LifetimeRow::backfilled("lagged", clock),
            LifetimeRow::backfilled("busy", later),
            LifetimeRow::backfilled("live", 0),
            LifetimeRow::backfilled("old", later - MAX_SETTLING_SECS),
        ];
        let mut fresh = evaluator();
        // Neither asks ClickHouse: an account of the pass still settling says so, and none
        // imported within MAX_SETTLING_SECS has nothing of the import to hold back.
        assert!(fresh.importing(&lagging, later, now).await.unwrap());
        let (held, _) = fresh.settling_of(&lagging, later, now, true);
        assert_eq!(held, ["lagged", "busy"].map(String::from).into_iter().collect());
        assert!(!fresh.importing(&lagging[2..], later, now).await.unwrap(), "nobody importing");
        let (held, settled) = fresh.settling_of(&lagging, later + ev.settle_secs, now, false);
        assert!(held.is_empty() && settled.len() == 2, "the whole import settles together");
        // A replay of today judges the import stored this second.
        let mut replay = ev.replaying();
        let (held, _) = replay.settling_of(&importing(clock), clock, now, false);
        assert!(held.is_empty(), "a replay holds nothing back");
    }
}
