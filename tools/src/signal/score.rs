//! The ground-truth table (docs/SIGNAL.md defines every figure): pure functions of the book's
//! truth, the replayed alert records, the accounts evaluated and the last day's metrics rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Days, NaiveDate};
use schemas::alert::{Alert, AlertStatus};
use serde::Serialize;

use crate::loadgen::{Account, Span};

/// An account's ground truth, as far as scoring needs it: from loadgen's book, or from the
/// `truth.json` of a book written elsewhere (`signal --book`), whose kinds are its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    pub id: String,
    pub kind: String,
    /// Whether a CSM should be told about the account.
    pub at_risk: bool,
    pub onset: Option<NaiveDate>,
    /// Its users' own leave (one person at a time).
    pub leave: Vec<Span>,
}

impl From<&Account> for Truth {
    fn from(a: &Account) -> Self {
        let leave = a.vacations().into_iter().map(|(_, s)| s).collect();
        Self {
            id: a.id.clone(),
            kind: a.kind.as_str().to_owned(),
            at_risk: a.kind.at_risk(),
            onset: a.decline_onset,
            leave,
        }
    }
}

/// The row of every per-kind table that counts all kinds together.
pub const OVERALL: &str = "overall";

/// A firing this many days after a user's leave ended still counts as "on their leave": the
/// statistics look back over the days just gone.
pub const LEAVE_ECHO_DAYS: u64 = 3;

/// An account's state at the end of the replay (from its last metrics row).
#[derive(Debug, Clone, PartialEq)]
pub struct EndState {
    pub band: String,
    /// Days since any activity; `None` = never.
    pub idle_days: Option<u32>,
}

/// The replayed window, both ends inclusive.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Window {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// Onset to first alert, in days, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum Lead {
    Days(i64),
    #[serde(serialize_with = "missed")]
    Missed,
}

fn missed<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("missed")
}

impl std::fmt::Display for Lead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lead::Days(d) => write!(f, "{d}"),
            Lead::Missed => f.write_str("missed"),
        }
    }
}

/// The lead times of one group of at-risk accounts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leads {
    pub accounts: usize,
    pub caught: usize,
    pub missed: usize,
    pub median: Option<Lead>,
    pub p90: Option<Lead>,
}

/// A count out of a total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Share {
    pub count: usize,
    pub of: usize,
}

impl Share {
    pub fn ratio(&self) -> Option<f64> {
        (self.of > 0).then(|| self.count as f64 / self.of as f64)
    }
}

/// Everything the signal command prints.
#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    pub window: Window,
    pub book_accounts: usize,
    pub accounts_per_kind: BTreeMap<String, usize>,
    pub at_risk: usize,
    pub healthy: usize,
    /// Book accounts the replay evaluated, and evaluated accounts the book does not know.
    pub evaluated: usize,
    pub unknown_evaluated: Vec<String>,
    pub not_evaluated: Vec<String>,
    /// At the end: at-risk accounts (onset ≤ end − 10 days) with an open alert.
    pub recall: Share,
    /// At the end: accounts with an open alert that are at risk.
    pub precision: Share,
    /// Onset → first alert per at-risk kind and `overall`, onsets inside the window and at least
    /// [`LEAD_MIN_OBSERVED_DAYS`] before its end.
    pub lead_days: BTreeMap<String, Leads>,
    /// Healthy accounts with any firing in the window, per healthy kind and `overall`.
    pub healthy_alerted: BTreeMap<String, Share>,
    /// Of the healthy accounts alerted, those with a firing while one of their users was on
    /// leave (or within [`LEAVE_ECHO_DAYS`] after): one person's holiday read as a decline.
    pub healthy_alerted_on_leave: Share,
    /// Accounts idle for ≥ 14 days at the end that are red.
    pub idle_red: Share,
    /// Healthy accounts red at the end (`count`), with their ids.
    pub healthy_red: Share,
    pub healthy_red_ids: Vec<String>,
    /// Red accounts at the end with an open alert (issue 21: health and alerts agree), and the
    /// ids of those without one.
    pub red_alerted: Share,
    pub red_silent_ids: Vec<String>,
    /// Firing records per rule, and in all.
    pub firings_per_rule: BTreeMap<String, usize>,
    pub firings: usize,
    pub resolutions: usize,
}

/// Recall counts only declines at least this old at the end: younger ones may fairly be unseen.
pub const RECALL_MIN_AGE_DAYS: i64 = 10;

/// Lead times count only declines that began at least this long before the end: the target
/// (p90 ≤ 10 days) and some margin can be observed for each of them.
pub const LEAD_MIN_OBSERVED_DAYS: i64 = 14;
/// "Nobody used it for two weeks."
pub const IDLE_DAYS: u32 = 14;

/// Nearest-rank percentile `p` (0–100) of sorted values (leads, shortfalls).
pub fn percentile<T: Copy>(sorted: &[T], p: usize) -> Option<T> {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn leads(mut all: Vec<Lead>) -> Leads {
    all.sort();
    let missed = all.iter().filter(|l| **l == Lead::Missed).count();
    Leads {
        accounts: all.len(),
        caught: all.len() - missed,
        missed,
        median: percentile(&all, 50),
        p90: percentile(&all, 90),
    }
}

/// The accounts with an episode open after `alerts` (records in order): the last record of one
/// of its (account, rule) pairs is a firing.
pub fn open_at_end(alerts: &[Alert]) -> BTreeSet<String> {
    let mut last: HashMap<(&str, &str), AlertStatus> = HashMap::new();
    for a in alerts {
        last.insert((&a.account_id, &a.rule_id), a.status);
    }
    last.iter().filter(|(_, s)| **s == AlertStatus::Firing).map(|((acc, _), _)| (*acc).to_owned()).collect()
}

/// Recall (at-risk accounts whose decline began ≥ [`RECALL_MIN_AGE_DAYS`] before `to` with an
/// open episode) and precision (open episodes on at-risk accounts) of the accounts `open`.
fn recall_precision(truth: &[Truth], to: NaiveDate, open: &BTreeSet<String>) -> (Share, Share) {
    let known: HashMap<&str, &Truth> = truth.iter().map(|t| (t.id.as_str(), t)).collect();
    let pool: Vec<&Truth> = truth
        .iter()
        .filter(|t| t.at_risk && t.onset.is_some_and(|o| (to - o).num_days() >= RECALL_MIN_AGE_DAYS))
        .collect();
    let recall = Share { count: pool.iter().filter(|t| open.contains(&t.id)).count(), of: pool.len() };
    let precision = Share {
        count: open.iter().filter(|id| known.get(id.as_str()).is_some_and(|t| t.at_risk)).count(),
        of: open.len(),
    };
    (recall, precision)
}

/// What the live evaluator had open right after the import, scored like the replay's end, and
/// account by account against the replay's open episodes at its end (the same history).
#[derive(Debug, Clone, Serialize)]
pub struct Live {
    pub recall: Share,
    pub precision: Share,
    /// Accounts open in both, live only, replay only.
    pub both: usize,
    pub live_only: Vec<String>,
    pub replay_only: Vec<String>,
}

/// Scores the live evaluator's `open` accounts at `today` against the truth and `replay_open`.
pub fn live(truth: &[Truth], today: NaiveDate, open: &BTreeSet<String>, replay_open: &BTreeSet<String>) -> Live {
    let (recall, precision) = recall_precision(truth, today, open);
    Live {
        recall,
        precision,
        both: open.intersection(replay_open).count(),
        live_only: open.difference(replay_open).cloned().collect(),
        replay_only: replay_open.difference(open).cloned().collect(),
    }
}

/// Scores a replay against the truth. `alerts` are the replay's records in order.
pub fn score(
    truth: &[Truth],
    window: Window,
    alerts: &[Alert],
    evaluated: &[String],
    end: &HashMap<String, EndState>,
) -> Scores {
    let firing: Vec<&Alert> = alerts.iter().filter(|a| a.status == AlertStatus::Firing).collect();
    let open = open_at_end(alerts);
    let known: HashMap<&str, &Truth> = truth.iter().map(|t| (t.id.as_str(), t)).collect();
    let evaluated_set: BTreeSet<&str> = evaluated.iter().map(String::as_str).collect();
    let (recall, precision) = recall_precision(truth, window.to, &open);

    let mut by_kind: BTreeMap<String, Vec<Lead>> = BTreeMap::new();
    for t in truth.iter().filter(|t| t.at_risk) {
        // A decline that began within the last LEAD_MIN_OBSERVED_DAYS is censored, not missed:
        // nobody can say yet whether its first alert comes on time.
        let observed = |o: &NaiveDate| (window.to - *o).num_days() >= LEAD_MIN_OBSERVED_DAYS;
        let Some(onset) = t.onset.filter(|o| window.from <= *o && observed(o)) else { continue };
        let first = firing
            .iter()
            .filter(|a| a.account_id == t.id && a.fired_at.date_naive() >= onset)
            .map(|a| a.fired_at.date_naive())
            .min();
        let lead = first.map_or(Lead::Missed, |d| Lead::Days((d - onset).num_days()));
        by_kind.entry(t.kind.clone()).or_default().push(lead);
        by_kind.entry(OVERALL.to_owned()).or_default().push(lead);
    }
    let lead_days = by_kind.into_iter().map(|(k, v)| (k, leads(v))).collect();

    let alerted: BTreeSet<&str> = firing
        .iter()
        .filter(|a| (window.from..=window.to).contains(&a.fired_at.date_naive()))
        .map(|a| a.account_id.as_str())
        .collect();
    let mut healthy_alerted: BTreeMap<String, Share> = BTreeMap::new();
    for t in truth.iter().filter(|t| !t.at_risk) {
        let hit = alerted.contains(t.id.as_str()) as usize;
        for key in [t.kind.as_str(), OVERALL] {
            let s = healthy_alerted.entry(key.to_owned()).or_insert(Share { count: 0, of: 0 });
            s.count += hit;
            s.of += 1;
        }
    }

    let on_leave = |t: &Truth| {
        firing.iter().filter(|a| a.account_id == t.id).any(|a| {
            let d = a.fired_at.date_naive();
            window.from <= d && t.leave.iter().any(|l| l.from <= d && d <= l.to + Days::new(LEAVE_ECHO_DAYS))
        })
    };
    let healthy_alerted_on_leave = Share {
        count: truth.iter().filter(|t| !t.at_risk && on_leave(t)).count(),
        of: healthy_alerted.get(OVERALL).map_or(0, |s| s.count),
    };

    let red = |id: &str| end.get(id).is_some_and(|e| e.band == "red");
    let idle: Vec<&str> = truth
        .iter()
        .map(|t| t.id.as_str())
        .filter(|id| end.get(*id).is_some_and(|e| e.idle_days.is_none_or(|d| d >= IDLE_DAYS)))
        .collect();
    let healthy_red_ids: Vec<String> =
        truth.iter().filter(|t| !t.at_risk && red(&t.id)).map(|t| t.id.clone()).collect();
    let reds: Vec<&str> = truth.iter().map(|t| t.id.as_str()).filter(|id| red(id)).collect();
    let red_silent_ids: Vec<String> =
        reds.iter().filter(|id| !open.contains(**id)).map(|id| (*id).to_owned()).collect();

    let mut firings_per_rule = BTreeMap::new();
    for a in &firing {
        *firings_per_rule.entry(a.rule_id.clone()).or_insert(0) += 1;
    }
    let at_risk = truth.iter().filter(|t| t.at_risk).count();
    Scores {
        window,
        book_accounts: truth.len(),
        accounts_per_kind: truth.iter().fold(BTreeMap::new(), |mut m, t| {
            *m.entry(t.kind.clone()).or_insert(0) += 1;
            m
        }),
        at_risk,
        healthy: truth.len() - at_risk,
        evaluated: truth.iter().filter(|t| evaluated_set.contains(t.id.as_str())).count(),
        unknown_evaluated: evaluated.iter().filter(|id| !known.contains_key(id.as_str())).cloned().collect(),
        not_evaluated: truth.iter().filter(|t| !evaluated_set.contains(t.id.as_str())).map(|t| t.id.clone()).collect(),
        recall,
        precision,
        lead_days,
        healthy_alerted,
        healthy_alerted_on_leave,
        idle_red: Share { count: idle.iter().filter(|id| red(id)).count(), of: idle.len() },
        healthy_red: Share { count: healthy_red_ids.len(), of: truth.len() - at_risk },
        healthy_red_ids,
        red_alerted: Share { count: reds.len() - red_silent_ids.len(), of: reds.len() },
        red_silent_ids,
        firings: firing.len(),
        resolutions: alerts.len() - firing.len(),
        firings_per_rule,
    }
}

impl Scores {
    /// Every way the counts fail to add up; empty when they are consistent. The smoke run
    /// asserts this, never a threshold.
    pub fn inconsistencies(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |ok: bool, what: String| {
            if !ok {
                out.push(what);
            }
        };
        let per_kind: usize = self.accounts_per_kind.values().sum();
        check(per_kind == self.book_accounts, format!("accounts per kind {per_kind} ≠ book {}", self.book_accounts));
        check(
            self.at_risk + self.healthy == self.book_accounts,
            format!("at risk {} + healthy {} ≠ book {}", self.at_risk, self.healthy, self.book_accounts),
        );
        check(
            self.evaluated == self.book_accounts && self.not_evaluated.is_empty(),
            format!(
                "{} of {} accounts evaluated; missing {:?}",
                self.evaluated, self.book_accounts, self.not_evaluated
            ),
        );
        check(
            self.unknown_evaluated.is_empty(),
            format!("evaluated accounts not in the book: {:?}", self.unknown_evaluated),
        );
        for (name, s) in [
            ("recall", self.recall),
            ("precision", self.precision),
            ("idle red", self.idle_red),
            ("red alerted", self.red_alerted),
            ("healthy alerted on leave", self.healthy_alerted_on_leave),
        ] {
            check(s.count <= s.of, format!("{name}: {} of {}", s.count, s.of));
        }
        check(self.recall.of <= self.at_risk, format!("recall pool {} > at risk {}", self.recall.of, self.at_risk));
        for (kind, l) in &self.lead_days {
            check(
                l.caught + l.missed == l.accounts,
                format!("{kind}: caught {} + missed {} ≠ {}", l.caught, l.missed, l.accounts),
            );
        }
        let by_kind: usize = self.lead_days.iter().filter(|(k, _)| **k != OVERALL).map(|(_, l)| l.accounts).sum();
        let overall = self.lead_days.get(OVERALL).map_or(0, |l| l.accounts);
        check(by_kind == overall, format!("at-risk kinds in the window {by_kind} ≠ overall {overall}"));
        let healthy_kinds: usize = self.healthy_alerted.iter().filter(|(k, _)| **k != OVERALL).map(|(_, s)| s.of).sum();
        let healthy_all = self.healthy_alerted.get(OVERALL).map_or(0, |s| s.of);
        check(
            healthy_kinds == self.healthy && healthy_all == self.healthy,
            format!("healthy per kind {healthy_kinds}, overall {healthy_all}, book {}", self.healthy),
        );
        let per_rule: usize = self.firings_per_rule.values().sum();
        check(per_rule == self.firings, format!("firings per rule {per_rule} ≠ firings {}", self.firings));
        check(self.resolutions <= self.firings, format!("{} resolutions > {} firings", self.resolutions, self.firings));
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{TimeZone, Utc};
    use schemas::alert::Severity;

    use super::*;
    use crate::loadgen::Kind;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    fn t(id: &str, kind: Kind, onset: Option<u32>) -> Truth {
        Truth { id: id.into(), kind: kind.as_str().into(), at_risk: kind.at_risk(), onset: onset.map(d), leave: vec![] }
    }

    /// An alert record of `account` on `day` November 2026, at the replay's evaluation time.
    pub(crate) fn alert(account: &str, rule: &str, status: AlertStatus, day: u32) -> Alert {
        let at = Utc.with_ymd_and_hms(2026, 11, day, 23, 59, 59).unwrap();
        Alert {
            alert_id: format!("{account}-{rule}-{day}"),
            account_id: account.into(),
            rule_id: rule.into(),
            severity: Severity::Warning,
            status,
            fired_at: at,
            resolved_at: (status == AlertStatus::Resolved).then_some(at),
            lifecycle_stage: None,
            health_score: None,
            metrics: Default::default(),
            csm_owner: None,
            reason: String::new(),
            action: None,
            console_url: None,
        }
    }

    fn end(band: &str, idle: Option<u32>) -> EndState {
        EndState { band: band.into(), idle_days: idle }
    }

    /// A hand-made book of eight accounts and what the rules did to it, 1–24 November.
    fn scored() -> Scores {
        use AlertStatus::*;
        let mut truth = vec![
            t("slide-a", Kind::Slide, Some(3)),    // caught on day 8: 5 days
            t("slide-b", Kind::Slide, Some(10)),   // fired before its onset only: missed
            t("cliff", Kind::Cliff, Some(20)),     // onset 4 days before the end: not in recall nor lead times; red
            t("fader", Kind::HappyFader, Some(1)), // caught on day 1: 0 days, resolved later
            t("dormant", Kind::Dormant, Some(5)),  // never alerted, red
            t("steady", Kind::Steady, None),       // alerted and still open: a false positive
            t("dip", Kind::Dip, None),             // alerted, resolved
            t("tiny", Kind::Tiny, None),           // quiet, red at the end
        ];
        // The steady account's firing on day 21 comes three days after a user's leave ended
        // (on leave); the dip's on day 9 four days after another's (not).
        truth[5].leave = vec![Span { from: d(11), to: d(18) }];
        truth[6].leave = vec![Span { from: d(1), to: d(5) }];
        let alerts = vec![
            alert("fader", "r1", Firing, 1),
            alert("slide-b", "r1", Firing, 5),
            alert("slide-b", "r1", Resolved, 7),
            alert("slide-a", "r2", Firing, 8),
            alert("dip", "r1", Firing, 9),
            alert("dip", "r1", Resolved, 16),
            alert("fader", "r1", Resolved, 20),
            alert("steady", "r2", Firing, 21),
            alert("cliff", "r2", Firing, 22),
        ];
        let evaluated: Vec<String> = truth.iter().map(|t| t.id.clone()).chain(["stranger".to_owned()]).collect();
        let end: HashMap<String, EndState> = [
            ("dormant", end("red", Some(20))),
            ("slide-b", end("yellow", Some(15))),
            ("tiny", end("red", Some(2))),
            ("cliff", end("red", Some(3))),
            ("steady", end("green", Some(0))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        score(&truth, Window { from: d(1), to: d(24) }, &alerts, &evaluated, &end)
    }

    #[test]
    fn firing_at_the_end_gives_recall_and_precision() {
        let s = scored();
        // Onset ≤ 14 Nov: slide-a, slide-b, fader, dormant; open: slide-a only.
        assert_eq!(s.recall, Share { count: 1, of: 4 });
        // Open at the end: slide-a, steady, cliff; at risk: slide-a, cliff.
        assert_eq!(s.precision, Share { count: 2, of: 3 });
    }

    #[test]
    fn lead_times_count_the_first_firing_on_or_after_the_onset_and_missed_as_never() {
        let s = scored();
        let overall = &s.lead_days["overall"];
        // The cliff began 4 days before the end (caught after 2): too recent to count either way.
        assert_eq!((overall.accounts, overall.caught, overall.missed), (4, 2, 2));
        // Sorted: 0, 5, missed, missed → median (2nd, nearest rank) 5, p90 (4th) missed.
        assert_eq!((overall.median, overall.p90), (Some(Lead::Days(5)), Some(Lead::Missed)));
        assert_eq!(s.lead_days["happy_fader"].median, Some(Lead::Days(0)));
        assert!(!s.lead_days.contains_key("cliff"));
        assert_eq!(s.lead_days["slide"].p90, Some(Lead::Missed));
        assert_eq!(s.lead_days["dormant"].missed, 1);
    }

    #[test]
    fn healthy_accounts_alerted_health_at_the_end_and_counts_per_rule() {
        let s = scored();
        assert_eq!(s.healthy_alerted["overall"], Share { count: 2, of: 3 });
        assert_eq!(s.healthy_alerted["dip"], Share { count: 1, of: 1 });
        assert_eq!(s.healthy_alerted["tiny"], Share { count: 0, of: 1 });
        assert_eq!(s.healthy_alerted_on_leave, Share { count: 1, of: 2 });
        assert_eq!(s.idle_red, Share { count: 1, of: 2 });
        assert_eq!((s.healthy_red, s.healthy_red_ids.clone()), (Share { count: 1, of: 3 }, vec!["tiny".to_owned()]));
        // Red: dormant, cliff, tiny; only the cliff has an open alert.
        assert_eq!(s.red_alerted, Share { count: 1, of: 3 });
        assert_eq!(s.red_silent_ids, ["dormant", "tiny"]);
        assert_eq!(s.firings_per_rule, BTreeMap::from([("r1".to_owned(), 3), ("r2".to_owned(), 3)]));
        assert_eq!((s.firings, s.resolutions), (6, 3));
    }

    #[test]
    fn the_counts_add_up_and_a_stranger_or_a_missing_account_is_reported() {
        let s = scored();
        assert_eq!((s.book_accounts, s.at_risk, s.healthy, s.evaluated), (8, 5, 3, 8));
        assert_eq!(s.inconsistencies(), vec![r#"evaluated accounts not in the book: ["stranger"]"#.to_owned()]);
        let mut fixed = s.clone();
        fixed.unknown_evaluated.clear();
        assert!(fixed.inconsistencies().is_empty());
        fixed.not_evaluated = vec!["tiny".into()];
        fixed.evaluated = 7;
        assert_eq!(fixed.inconsistencies().len(), 1);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let leads: Vec<Lead> = (1..=10).map(Lead::Days).collect();
        assert_eq!((percentile(&leads, 50), percentile(&leads, 90)), (Some(Lead::Days(5)), Some(Lead::Days(9))));
        assert_eq!(percentile::<Lead>(&[], 50), None);
        assert_eq!(serde_json::to_string(&[Lead::Days(3), Lead::Missed]).unwrap(), r#"[3,"missed"]"#);
    }
}
