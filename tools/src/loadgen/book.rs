//! The simulated book of business: accounts with contracts, seats and users, each following a
//! story a CSM would recognise (docs/SIGNAL.md lists them) — healthy ones (steady, growing,
//! onboarding, tiny, seasonal, a week half the team is away together) and at-risk ones (a slide, a cliff, a promoter
//! whose use fades, gone dormant) — with the ground truth of what the simulation does to each.
//! Deterministic: the same seed always gives the same book and the same events.

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::Serialize;

pub use super::rng::Rng;

/// What the simulation does to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Same users, same habits.
    Steady,
    /// New users keep joining.
    Growing,
    /// Contract started recently; users join over 4–8 weeks.
    Onboarding,
    /// 2–3 users, steady: small numbers swing by chance alone.
    Tiny,
    /// Weekends near zero and one busy week a month.
    Seasonal,
    /// Half of the team (50–70 % of the users) away together for one week; the rest as usual.
    Dip,
    /// Use falls over 14–42 days until the churn date.
    Slide,
    /// Use drops to ≤ 10 % within 1–3 days; churn 14–30 days later.
    Cliff,
    /// A slide while the surveys keep saying NPS 9–10, CSAT 5.
    HappyFader,
    /// Nobody active for the last 16–25 days.
    Dormant,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Steady,
        Kind::Growing,
        Kind::Onboarding,
        Kind::Tiny,
        Kind::Seasonal,
        Kind::Dip,
        Kind::Slide,
        Kind::Cliff,
        Kind::HappyFader,
        Kind::Dormant,
    ];

    /// Whether a CSM should be told about the account.
    pub fn at_risk(self) -> bool {
        matches!(self, Kind::Slide | Kind::Cliff | Kind::HappyFader | Kind::Dormant)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Steady => "steady",
            Kind::Growing => "growing",
            Kind::Onboarding => "onboarding",
            Kind::Tiny => "tiny",
            Kind::Seasonal => "seasonal",
            Kind::Dip => "dip",
            Kind::Slide => "slide",
            Kind::Cliff => "cliff",
            Kind::HappyFader => "happy_fader",
            Kind::Dormant => "dormant",
        }
    }
}

/// How a slide (or a happy fader) loses its use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlideStyle {
    /// Every user's daily chance shrinks linearly towards ~0 by the churn date.
    Fade,
    /// Users leave one by one; a champion holds on until the churn date.
    Leave,
    /// The champion (the heaviest user) leaves at the onset; the rest use it less and less,
    /// down to a fifth by the churn date.
    Champion,
}

/// A span of days, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Span {
    pub fn contains(&self, d: NaiveDate) -> bool {
        self.from <= d && d <= self.to
    }
}

pub const FEATURES: [&str; 12] = [
    "dashboards",
    "reports",
    "exports",
    "alerts",
    "api",
    "sso",
    "workflows",
    "comments",
    "integrations",
    "forecasts",
    "audit_log",
    "custom_fields",
];

/// One user of an account.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    /// Chance of being active on a weekday while active at all.
    pub daily: f64,
    /// First and last day (inclusive) the user is active at all.
    pub from: NaiveDate,
    pub until: Option<NaiveDate>,
    /// Dip: one of the group away together during the quiet week (an offsite, a team's
    /// holiday); the others carry on as usual.
    pub away: bool,
    /// A week or two of this user's own leave, on any account: nobody else goes with them.
    pub vacation: Option<Span>,
}

/// One simulated account and its ground truth (serialised into the truth JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: String,
    pub kind: Kind,
    pub plan: &'static str,
    pub seats: u32,
    pub csm: &'static str,
    pub contract_start: NaiveDate,
    /// The next renewal on or after the book's first day (a healthy account renews on it when
    /// it falls inside the book).
    pub renewal_date: NaiveDate,
    /// At-risk kinds: the first day of the decline (a dormant account: its first day without use).
    pub decline_onset: Option<NaiveDate>,
    /// Slide, cliff, happy fader: the day the account cancels (may lie after today).
    pub churn_date: Option<NaiveDate>,
    /// Dip: the week half or more of the team is away together.
    pub dip: Option<Span>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slide_style: Option<SlideStyle>,
    /// The multiplier of every user's chance after a cliff.
    #[serde(skip)]
    pub level: f64,
    /// Seasonal: the busy week starts on this day of each month.
    #[serde(skip)]
    pub busy_day: u32,
    /// Cliff: the days the drop takes (1–3).
    #[serde(skip)]
    pub drop_days: u32,
    /// How many distinct features the account's users reach for.
    pub feature_breadth: usize,
    #[serde(skip)]
    pub users: Vec<User>,
}

impl Account {
    pub fn at_risk(&self) -> bool {
        self.kind.at_risk()
    }

    /// Whether `user` is away on `day`: with the group (a dip) or on their own leave.
    pub fn away(&self, user: &User, day: NaiveDate) -> bool {
        (user.away && self.dip.is_some_and(|d| d.contains(day))) || user.vacation.is_some_and(|v| v.contains(day))
    }

    /// Each user's own leave inside the book (truth JSON: `vacations`).
    pub fn vacations(&self) -> Vec<(&str, Span)> {
        self.users.iter().filter_map(|u| Some((u.id.as_str(), u.vacation?))).collect()
    }

    /// Whether the account has cancelled by `day`: nothing is sent from then on.
    pub fn gone(&self, day: NaiveDate) -> bool {
        self.churn_date.is_some_and(|c| day > c)
    }

    /// Whether the account is declining on `day` (onset reached, not yet gone).
    pub fn declining(&self, day: NaiveDate) -> bool {
        self.decline_onset.is_some_and(|o| day >= o) && !self.gone(day)
    }

    /// The multiplier of every user's daily chance on `day`: the account's story (weekends,
    /// a dip, a fade, a cliff) on top of each user's own habit.
    pub fn factor(&self, day: NaiveDate) -> f64 {
        let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        if self.gone(day) {
            return 0.0;
        }
        let story = match self.kind {
            Kind::Seasonal if weekend => return 0.02,
            Kind::Seasonal => {
                let busy = (self.busy_day..self.busy_day + 7).contains(&day.day());
                if busy {
                    1.6
                } else {
                    0.75
                }
            }
            Kind::Slide | Kind::HappyFader if self.slide_style == Some(SlideStyle::Fade) => self.fade(day, 0.97),
            Kind::Slide | Kind::HappyFader if self.slide_style == Some(SlideStyle::Champion) => self.fade(day, 0.8),
            Kind::Cliff => self.cliff(day),
            _ => 1.0,
        };
        if weekend {
            story * 0.2
        } else {
            story
        }
    }

    /// 1 until the onset, then linearly down by `depth` (0.97: to 3 %) on the churn date.
    fn fade(&self, day: NaiveDate, depth: f64) -> f64 {
        match (self.decline_onset, self.churn_date) {
            (Some(o), Some(c)) if day >= o => {
                let span = (c - o).num_days().max(1) as f64;
                1.0 - depth * ((day - o).num_days() as f64 / span).min(1.0)
            }
            _ => 1.0,
        }
    }

    /// 1 until the onset, down to `level` (≤ 10 %) over the `drop_days` from the onset, then `level`.
    fn cliff(&self, day: NaiveDate) -> f64 {
        let Some(o) = self.decline_onset.filter(|o| day >= *o) else { return 1.0 };
        let into = (day - o).num_days() as f64 + 1.0;
        let drop = self.drop_days.max(1) as f64;
        if into >= drop {
            self.level
        } else {
            1.0 - (1.0 - self.level) * into / drop
        }
    }
}

/// The book: `accounts` accounts over the `days` days ending `today` (inclusive).
#[derive(Debug, Clone)]
pub struct Book {
    pub accounts: Vec<Account>,
    pub first_day: NaiveDate,
    pub today: NaiveDate,
    pub seed: u64,
    /// The share of users with a block of their own leave inside the book (truth JSON:
    /// `leave_share`).
    pub leave_share: f64,
    /// Whether churn and renewal outcome events are sent (`kind: "outcome"`).
    pub outcomes: bool,
    /// Public holidays: every account's users come in at [`HOLIDAY_SHARE`] of their usual.
    pub holidays: Vec<NaiveDate>,
}

/// On a public holiday each user's chance is this share of their usual: most stay at home, a
/// few work anyway.
pub const HOLIDAY_SHARE: f64 = 0.1;

pub(crate) fn day(d: NaiveDate, offset: i64) -> NaiveDate {
    if offset >= 0 {
        d + Days::new(offset as u64)
    } else {
        d - Days::new((-offset) as u64)
    }
}

// `Book::new` lives with the drawing (`draw.rs`), which reads this module's types: no cycle.
impl Book {
    /// Every day of the window, oldest first.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + Clone + '_ {
        self.first_day.iter_days().take_while(move |d| *d <= self.today)
    }

    /// The multiplier of every account's use on `day`: [`HOLIDAY_SHARE`] on a public holiday.
    pub fn holiday_factor(&self, day: NaiveDate) -> f64 {
        if self.holidays.contains(&day) {
            HOLIDAY_SHARE
        } else {
            1.0
        }
    }

    /// How many accounts of each kind, in [`Kind::ALL`] order.
    pub fn kinds(&self) -> Vec<(Kind, usize)> {
        Kind::ALL.iter().map(|k| (*k, self.accounts.iter().filter(|a| a.kind == *k).count())).collect()
    }
}
