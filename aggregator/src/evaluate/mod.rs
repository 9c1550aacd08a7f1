//! The periodic evaluator: recomputes every account's rolling metrics from the daily rollup,
//! hands them to its [`AlertSink`], runs the rules through the episode state machine
//! ([`Episodes`]) and publishes the alert state changes.
//!
//! Before every pass the CSM workflow of the open episodes is read: a closure ends an episode,
//! a snooze holds it (docs/architecture.md#alert-workflow).
//!
//! Open episodes and pending conditions are read back from the sink (the `alerts` and
//! `alert_pending` tables) at start and after every rebalance, so a restart or a partition
//! moving to another instance neither re-fires an open episode, forgets it, nor restarts the
//! clock of a rule's `for`. Only the accounts of the partitions this instance consumes are
//! evaluated ([`Ownership`]), so two instances in one consumer group never compute or alert on
//! the same account. A row that failed to store after its record was published is kept and
//! stored before the next pass ([`Evaluator::record_unrecorded`]) instead of publishing the
//! record again.

pub mod episode;
mod names;
pub mod rules;
mod settle;
pub mod sink;
pub mod timeline;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rdkafka::producer::FutureProducer;
use schemas::alert::{Alert, AlertStatus};
use schemas::runtime::Clock;
use tokio::sync::watch;
use warehouse::rows::{ActionRow, AlertRow};
use warehouse::Warehouse;

use crate::config::AggregatorConfig;
use crate::consume::ownership::Ownership;
use crate::evaluate::episode::Episodes;
use crate::evaluate::rules::RuleSet;
use crate::evaluate::sink::{AlertSink, LiveSink};
use crate::evaluate::timeline::Unsupported;
use crate::model::book::{Book, Closures};
use crate::model::{metrics_row, AccountInputs, HealthConfig, LifecycleConfig, MetricsRow, Model};
use crate::store::{Changed, History, Store};
use crate::telemetry::Telemetry;
use crate::AggregatorError;

/// How long before the last pass's start an incremental pass looks for stored events: an insert
/// whose rows got their `last_stored` time before that start may have become visible only after
/// the pass read. An insert slower than this is still evaluated, by the next full pass.
pub const STORE_SLACK_SECS: u32 = 10;

/// What one evaluation pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PassReport {
    pub accounts: usize,
    /// Whether the pass covered every account (else only the changed ones).
    pub full: bool,
    pub fired: Vec<Alert>,
    pub resolved: Vec<Alert>,
    /// Open episodes a CSM closed since the last pass (dropped without a `resolved` record).
    pub closed: usize,
    /// `snooze_ended` records: open episodes whose snooze ran out.
    pub snooze_ended: Vec<Alert>,
    /// Conditions that started or stopped holding (rows stored in `alert_pending`).
    pub pending_changes: usize,
    /// Of those, the ones the stored history showed in their new state since an earlier day
    /// (`timeline`): their `for` or `resolve_after` counted from there.
    pub backdated: usize,
    /// Accounts whose imported history settled, judged after a replay of their last days.
    pub warmed_up: usize,
    /// Where the pass's time went (logged per pass; `bench` prints it).
    pub timings: PassTimings,
}

/// The phases of one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct PassTimings {
    /// Open episodes (when ownership changed) and the rolling-window queries in ClickHouse.
    pub queries: Duration,
    /// Metrics and health of every account, in Rust.
    pub compute: Duration,
    /// The `account_metrics` insert.
    pub insert: Duration,
    /// Every rule over every account, storing the pass's pending changes, and publishing and
    /// recording its alerts.
    pub rules: Duration,
}

pub struct Evaluator<S: AlertSink = LiveSink> {
    store: Store,
    sink: S,
    metrics: Arc<Telemetry>,
    rules: RuleSet,
    episodes: Episodes,
    /// `alerts` rows whose records were published but whose INSERT failed: stored before the
    /// next pass, so the pass neither re-publishes them nor forgets the state they changed.
    unrecorded: Vec<AlertRow>,
    lifecycle: LifecycleConfig,
    health: HealthConfig,
    /// The configured feature catalogue's size; 0 = use the features seen in 64 days.
    feature_catalogue: u64,
    events_topic: String,
    ownership: Arc<Ownership>,
    /// The ownership generation the episodes were loaded for; `None` until loaded.
    loaded_for: Option<u64>,
    /// The health scores of the day `health_change_14d` looks back to, as read for it.
    past_health: Option<(NaiveDate, HashMap<String, f64>)>,
    /// The book's closures (public holidays) before the day of the pass it was read for, and how
    /// far back its history reaches.
    book: Option<(NaiveDate, Book)>,
    /// How often a pass covers every account (`evaluation.full_every_ms`; zero: always).
    full_every: Duration,
    /// What the last full pass covered, and when the last pass started (the server's clock).
    covered: Option<Covered>,
    /// Accounts per chunk of a pass (`evaluation.chunk_accounts`).
    chunk: usize,
    /// What the stored history says about earlier days, as read today (`timeline`).
    answers: timeline::Answers,
    /// `evaluation.settle_ms`, in seconds.
    settle_secs: u32,
    /// Accounts whose history was still arriving at their last pass, and since when
    /// (ClickHouse's clock; `settling_of`).
    settling: BTreeMap<String, u32>,
    /// The day whose end-of-day full pass this evaluator ran last (a replay's): the state of every
    /// condition at that day's end is known, so the next day's pass reads no history for it.
    day_end_known: Option<NaiveDate>,
    /// Whether the episodes were (re)loaded from the records since the last live pass (a start,
    /// a rebalance): the cooldowns a warm-up took over were in memory only, so the next live
    /// pass replays the accounts it would fire on before firing (`apply_rules`).
    reloaded: bool,
}

/// The last full pass's day and ownership generation and when it ran; when the last pass of
/// any kind started, in ClickHouse's clock (`account_lifetime.last_stored` is in it).
#[derive(Debug, Clone, Copy)]
struct Covered {
    day: NaiveDate,
    generation: u64,
    full_at: std::time::Instant,
    pass_clock: u32,
}

impl Evaluator<LiveSink> {
    /// The production evaluator: alerts to `kafka.alerts_topic` through `producer`, rows to `store`.
    pub fn live(
        cfg: &AggregatorConfig,
        rules: RuleSet,
        warehouse: Warehouse,
        producer: FutureProducer,
        metrics: Arc<Telemetry>,
        ownership: Arc<Ownership>,
    ) -> Self {
        let store = Store::new(warehouse.clone());
        let sink = LiveSink::new(store, producer, cfg.kafka.alerts_topic.clone(), metrics.clone());
        Self::new(cfg, rules, warehouse, sink, metrics, ownership)
    }
}

impl<S: AlertSink> Evaluator<S> {
    /// Reads its inputs from `warehouse`, sends its output to `sink`.
    pub fn new(
        cfg: &AggregatorConfig,
        rules: RuleSet,
        warehouse: Warehouse,
        sink: S,
        metrics: Arc<Telemetry>,
        ownership: Arc<Ownership>,
    ) -> Self {
        Self {
            store: Store::new(warehouse),
            sink,
            metrics,
            rules,
            episodes: Episodes::default(),
            unrecorded: Vec::new(),
            lifecycle: cfg.lifecycle.clone(),
            health: cfg.health.clone(),
            feature_catalogue: cfg.metrics.feature_catalogue.len() as u64,
            events_topic: cfg.kafka.events_topic.clone(),
            ownership,
            loaded_for: None,
            past_health: None,
            book: None,
            full_every: cfg.evaluation.full_every(),
            covered: None,
            chunk: cfg.evaluation.chunk_accounts.max(1),
            answers: timeline::Answers::default(),
            settle_secs: cfg.evaluation.settle_secs(),
            settling: BTreeMap::new(),
            day_end_known: None,
            reloaded: false,
        }
    }

    /// An evaluator for a replay: every account is judged on every day, none held back as
    /// settling. The history a replay reads has arrived; a replay whose last day is today, run
    /// right after an import, held back the accounts imported last and so disagreed with the
    /// live evaluator once they settled (signal: acct-00114's second lapsed user, seen live on
    /// the last day and never in the replay).
    pub fn replaying(mut self) -> Self {
        self.settle_secs = 0;
        self
    }

    /// The sink (a test reads what a [`crate::evaluate::sink::CollectingSink`] collected).
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// (Re)loads the recorded episodes when ownership changed since they were loaded: another
    /// instance may have fired or resolved alerts for the accounts this one now owns.
    async fn refresh_episodes(&mut self) -> Result<(), AggregatorError> {
        let generation = self.ownership.generation();
        if self.loaded_for == Some(generation) {
            return Ok(());
        }
        let recorded = self.sink.recorded_episodes().await?;
        self.episodes.restore(recorded);
        self.loaded_for = Some(generation);
        self.reloaded = true;
        Ok(())
    }

    /// Reads the CSM workflow of the episodes the state machine holds (the open and the snoozed
    /// ones: a key lookup, whatever the history) and applies it before the pass decides
    /// anything, so a closure or a snooze counts from the first pass after it was recorded —
    /// also right after a restart. Returns how many open episodes were closed.
    async fn apply_workflow(&mut self, now: DateTime<Utc>) -> Result<usize, AggregatorError> {
        let ids = self.episodes.workflow_ids();
        if ids.is_empty() {
            return Ok(0);
        }
        let workflows = self.sink.workflow(&ids).await?;
        let closed = self.episodes.apply_workflow(&workflows, now);
        if closed > 0 {
            tracing::info!(closed, "open alert episodes closed by a CSM");
        }
        Ok(closed)
    }

    /// Stores the `alerts` rows a failed INSERT left behind, before anything else reads the
    /// table. Until it succeeds no pass runs: a pass would re-fire episodes the table does not
    /// show yet (the same ids, but a repeat on the topic all the same).
    pub async fn record_unrecorded(&mut self) -> Result<(), AggregatorError> {
        if self.unrecorded.is_empty() {
            return Ok(());
        }
        self.sink.record(&self.unrecorded).await?;
        tracing::info!(rows = self.unrecorded.len(), "stored the alert rows of an earlier pass");
        self.unrecorded.clear();
        Ok(())
    }

    /// Evaluates every `interval`, each pass at `clock`'s now, until `shutdown`. A failed pass is
    /// logged and retried on the next tick: the state it would have changed is untouched.
    pub async fn run(
        mut self,
        interval: Duration,
        clock: Clock,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), AggregatorError> {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => {
                    // One last try, so a restart need not re-send their records (it would, with
                    // the same ids, and the ledger would drop them).
                    if let Err(e) = self.record_unrecorded().await {
                        tracing::warn!(error = %e, rows = self.unrecorded.len(), "alert rows not stored at shutdown; their records are re-sent after the restart");
                    }
                    return Ok(());
                }
            }
            if let Err(e) = self.evaluate(clock.now()).await {
                self.metrics.evaluation_failures.inc();
                tracing::warn!(error = %e, "evaluation pass failed; retrying next interval");
            }
        }
    }

    /// One pass at time `now` (injectable, so tests can evaluate any day).
    pub async fn evaluate(&mut self, now: DateTime<Utc>) -> Result<PassReport, AggregatorError> {
        let started = std::time::Instant::now();
        let mut timings = PassTimings::default();
        let mut phase = std::time::Instant::now();
        let mut lap = |slot: &mut Duration| {
            *slot += phase.elapsed();
            phase = std::time::Instant::now();
        };
        self.record_unrecorded().await?;
        self.refresh_episodes().await?;
        let closed = self.apply_workflow(now).await?;
        let partitions = self.ownership.partitions();
        let clock = self.store.clock().await?;
        let changed = self.changed(now);
        let accounts = if partitions.is_empty() {
            Vec::new()
        } else {
            self.store.pass_accounts(now, &self.events_topic, &partitions, changed.as_ref()).await?
        };
        let features = match accounts.is_empty() {
            true => self.feature_catalogue,
            false => self.catalogue_size(now).await?,
        };
        // Health history: what each account scored two weeks ago (`health_change_14d`). A past
        // day's scores no longer change, so they are read once per day, not on every pass.
        let day = now.date_naive() - chrono::Days::new(14);
        if self.past_health.as_ref().is_none_or(|(d, _)| *d != day) {
            self.past_health = Some((day, self.sink.health_on(day).await?));
        }
        // The book's closures change only while past days are still arriving (an import, a
        // catch-up): read again on every full pass and while any account is settling.
        if changed.is_none() || !self.settling.is_empty() || self.book.is_none_or(|(d, _)| d != now.date_naive()) {
            self.book = Some((now.date_naive(), self.book_on(now).await?));
        }
        let book = self.book.map(|(_, c)| c).expect("read above");
        // An import is judged when the whole of it has settled, not account by account: an
        // account whose partition lagged behind the rest would settle on half its history
        // (and the book's closures are read from totals still arriving).
        let importing = self.importing(&accounts, clock, now).await?;
        lap(&mut timings.queries);
        let mut report = PassReport { full: changed.is_none(), closed, ..Default::default() };
        // In chunks of accounts, so that what a pass holds does not grow with the accounts an
        // instance owns.
        let mut rest = accounts;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(self.chunk));
            let chunk = std::mem::replace(&mut rest, tail);
            let (settling, settled) = self.settling_of(&chunk, clock, now, importing);
            let mut inputs =
                self.store.inputs_of(now, &self.events_topic, &partitions, changed.as_ref(), chunk).await?;
            lap(&mut timings.queries);
            let past = self.past_health.as_ref().map(|(_, scores)| scores).expect("read above");
            let mut rows = self.metrics_rows(&mut inputs, past, features, book, now);
            self.name_users(&inputs, &mut rows, book.closures, now).await?;
            drop(inputs);
            lap(&mut timings.compute);
            self.sink.write_metrics(&rows).await?;
            lap(&mut timings.insert);
            report.accounts += rows.len();
            let (judged, _): (Vec<MetricsRow>, Vec<MetricsRow>) =
                rows.into_iter().partition(|m| !settling.contains(&m.account_id));
            let (imported, judged): (Vec<MetricsRow>, Vec<MetricsRow>) =
                judged.into_iter().partition(|m| settled.contains(&m.account_id));
            self.apply_rules(&judged, now, &mut report).await?;
            self.warm_up_and_commit(&imported, Unsupported::Resolve, now, &mut report).await?;
            lap(&mut timings.rules);
        }
        if History::of(now) == History::Live {
            self.reloaded = false;
        }
        self.covered = Some(match (self.covered, changed.is_none()) {
            (Some(c), false) => Covered { pass_clock: clock, ..c },
            _ => Covered {
                day: now.date_naive(),
                generation: self.ownership.generation(),
                full_at: std::time::Instant::now(),
                pass_clock: clock,
            },
        });
        // Only the pass right before the next one counts: a pass in between may have changed
        // what the episodes hold.
        self.day_end_known =
            (changed.is_none() && now == timeline::end_of_day(now.date_naive())).then(|| now.date_naive());
        report.timings = timings;
        tracing::debug!(
            accounts = report.accounts,
            full = report.full,
            queries_ms = timings.queries.as_millis() as u64,
            compute_ms = timings.compute.as_millis() as u64,
            insert_ms = timings.insert.as_millis() as u64,
            rules_ms = timings.rules.as_millis() as u64,
            fired = report.fired.len(),
            resolved = report.resolved.len(),
            closed = report.closed,
            snooze_ended = report.snooze_ended.len(),
            "evaluation pass"
        );
        self.metrics.accounts_evaluated.set(report.accounts as i64);
        self.metrics.open_episodes.set(self.episodes.open_count() as i64);
        self.metrics.evaluation_seconds.observe(started.elapsed().as_secs_f64());
        Ok(report)
    }

    /// The size of the feature catalogue at `now`: the configured one's, else the features any
    /// account used in the 64 days ending on `now`'s day.
    async fn catalogue_size(&self, now: DateTime<Utc>) -> Result<u64, AggregatorError> {
        match self.feature_catalogue {
            0 => self.store.features_seen(now).await,
            configured => Ok(configured),
        }
    }

    /// The book at `now`'s day (its closures before it, how far back its history reaches), from
    /// the book's daily totals.
    async fn book_on(&self, now: DateTime<Utc>) -> Result<Book, AggregatorError> {
        let (days, older) = self.store.book_days(now).await?;
        let found = Book::of(&days, older);
        if found.closures != Closures::NONE {
            tracing::debug!(day = %now.date_naive(), days_before = ?found.closures.days(), "book-wide closures");
        }
        Ok(found)
    }

    /// The metrics rows of `inputs` at `now`, with the health scores of 14 days before (`past`),
    /// a catalogue of `features` and the `book`: a pass's and a history lookup's alike.
    fn metrics_rows(
        &self,
        inputs: &mut [AccountInputs],
        past: &HashMap<String, f64>,
        features: u64,
        book: Book,
        now: DateTime<Utc>,
    ) -> Vec<MetricsRow> {
        for i in inputs.iter_mut() {
            i.health_14d_ago = past.get(&i.window.account_id).copied();
        }
        let model = Model { lifecycle: &self.lifecycle, health: &self.health, catalogue: features, book };
        inputs.iter().map(|i| metrics_row(i, now, &model)).collect()
    }

    /// What the pass at `now` evaluates: `None` for every account — the first pass, the first of
    /// a UTC day (every window moved), after a rebalance, a pass as of another day than the
    /// last, or `full_every` after the last full one; else the accounts stored since the last
    /// pass started (a few seconds of slack for inserts in flight then) and those with a rule's
    /// clock running.
    fn changed(&self, now: DateTime<Utc>) -> Option<Changed> {
        let c = self.covered?;
        let due = self.full_every.is_zero() || c.full_at.elapsed() >= self.full_every;
        if due || c.day != now.date_naive() || c.generation != self.ownership.generation() {
            return None;
        }
        if History::of(now) == History::AsOf {
            return None;
        }
        let timed = self.episodes.timed_accounts().into_iter().map(str::to_owned);
        let accounts: Vec<String> =
            timed.chain(self.settling.keys().cloned()).collect::<BTreeSet<_>>().into_iter().collect();
        // Too many to name in a query (an import's settling accounts, a book-wide slide): a full
        // pass reads them all without naming any.
        if accounts.len() > timeline::LISTED_MAX {
            return None;
        }
        Some(Changed { since: c.pass_clock.saturating_sub(STORE_SLACK_SECS), accounts })
    }

    /// Runs every rule over every account through the episode state machine. The pass's pending
    /// changes (conditions that started or stopped holding) are stored first and only then
    /// applied: they are what the pass observed, whatever becomes of its alerts, and an instance
    /// never holds a start the table lacks, so a restart neither restarts a clock nor fires
    /// early. If storing them fails the pass changes nothing (the clock starts on the next pass
    /// that stores it). The pass's alerts are then published together and only then change the
    /// episodes, so a failed publish changes no episode and the next pass tries again (with the
    /// same ids). Once published they change the state even if their rows fail to store: those
    /// are kept for the next pass ([`Self::record_unrecorded`]).
    async fn apply_rules(
        &mut self,
        rows: &[MetricsRow],
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), AggregatorError> {
        let findings = timeline::findings_of(&self.rules, rows, &self.episodes);
        // Conditions first seen in a new state: since when they have been in it (`timeline`).
        let started = self.history_starts(rows, &findings, now).await?;
        report.backdated += started.len();
        let (mut alerts, mut pending) = (Vec::new(), Vec::new());
        for (i, (m, found)) in rows.iter().zip(findings).enumerate() {
            for (r, (rule, finding)) in self.rules.rules().iter().zip(found).enumerate() {
                let decision = self.episodes.decide(rule, m, finding, started.get(&(i, r)).copied(), now);
                alerts.extend(decision.alert);
                pending.extend(decision.pending);
            }
        }
        // Right after the episodes were loaded (a restart, a rebalance), a cooldown a warm-up
        // took over is not known: an episode that opened and resolved in that replay was never
        // recorded. An account about to fire is replayed first, as after an import, and fires
        // only if the backtest would have it open now (the demo's tyrell: resolved on a past day,
        // its condition back inside the cooldown, fired on every restart).
        let replayed: HashSet<String> = match self.reloaded && History::of(now) == History::Live {
            true => alerts.iter().filter(|a| a.status == AlertStatus::Firing).map(|a| a.account_id.clone()).collect(),
            false => HashSet::new(),
        };
        // A snooze that ran out is told all the same: the replay decides what fires and
        // resolves, not the workflow, and announces no `snooze_ended` (a restart's first pass
        // after a snooze, with another rule of the account about to fire, left it untold).
        alerts.retain(|a| a.status == AlertStatus::SnoozeEnded || !replayed.contains(&a.account_id));
        pending.retain(|p| !replayed.contains(&p.account_id));
        self.commit_pass(alerts, pending, now, report).await?;
        let rows: Vec<MetricsRow> = rows.iter().filter(|m| replayed.contains(&m.account_id)).cloned().collect();
        self.warm_up_and_commit(&rows, Unsupported::Keep, now, report).await
    }

    /// Replays `rows`' accounts ([`Self::warm_up`]) and commits what the replay ends with.
    async fn warm_up_and_commit(
        &mut self,
        rows: &[MetricsRow],
        unsupported: Unsupported,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), AggregatorError> {
        for part in rows.chunks(timeline::LISTED_MAX) {
            let warm = self.warm_up(part, now, unsupported).await?;
            report.warmed_up += part.len();
            self.commit_pass(warm.alerts, warm.pending, now, report).await?;
            // Now that their episodes are open, their clears count (`resolve_after`).
            self.episodes.commit_pending(&warm.cleared);
        }
        Ok(())
    }

    /// Stores a pass's pending changes, then publishes its alerts and commits them, then records
    /// them (see [`Self::apply_rules`] for the order).
    async fn commit_pass(
        &mut self,
        alerts: Vec<Alert>,
        pending: Vec<episode::Pending>,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), AggregatorError> {
        // The rules' records go to `alerts`; a `snooze_ended` record is a workflow action and goes
        // to `alert_actions` (which ends the snooze for the next workflow read).
        let records = alerts
            .iter()
            .filter(|a| !a.status.is_lifecycle())
            .map(|a| AlertRow::new(a, now))
            .collect::<Result<Vec<_>, _>>()?;
        let actions: Vec<ActionRow> = alerts.iter().filter_map(|a| ActionRow::of(a, now)).collect();
        self.sink.record_pending(&pending, now).await?;
        self.episodes.commit_pending(&pending);
        report.pending_changes += pending.len();
        self.sink.publish(&alerts).await?;
        for alert in alerts {
            self.episodes.commit(&alert, now);
            match alert.status {
                schemas::alert::AlertStatus::Firing => report.fired.push(alert),
                schemas::alert::AlertStatus::Resolved => report.resolved.push(alert),
                _ => report.snooze_ended.push(alert),
            }
        }
        // Published and committed but not stored: the snooze is read again on the next pass and
        // the record proposed again with the same action id (the notifier's ledger drops it).
        self.sink.record_actions(&actions).await?;
        if records.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.sink.record(&records).await {
            tracing::warn!(error = %e, rows = records.len(), "alert records published but their rows not stored; storing them before the next pass");
            self.unrecorded.extend(records);
            return Err(e);
        }
        Ok(())
    }
}
