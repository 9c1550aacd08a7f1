//! The simulated book of business: accounts with contracts, seats and users, each following a
//! profile a CSM would recognise — onboarding, steady, growing, declining towards a churn date,
//! gone dormant. Deterministic: the same seed always gives the same book and the same events.

use chrono::{Days, NaiveDate};
use serde::Serialize;

/// SplitMix64: tiny, fast and reproducible everywhere — all a traffic simulation needs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi] (inclusive).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// A derived generator: independent streams per account and day, so changing the number
    /// of days or accounts does not reshuffle everyone else.
    pub fn fork(&self, salt: u64) -> Self {
        let mut r = Self(self.0 ^ salt.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        r.next_u64();
        r
    }
}

/// How an account's use develops over the simulated window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Contract started inside the window; users join over the first weeks.
    Onboarding,
    /// Same users, same habits.
    Steady,
    /// New users keep joining.
    Growing,
    /// Users drop away over the weeks before a churn date.
    Declining,
    /// Everyone stopped using the product a few weeks ago.
    Dormant,
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
const CSMS: [&str; 4] = ["dana@vendor.example", "sam@vendor.example", "lee@vendor.example", "ana@vendor.example"];
const NAMES: [&str; 12] = [
    "acme",
    "globex",
    "initech",
    "hooli",
    "umbrella",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "massive",
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
}

/// One simulated account and, for the ground truth, what the simulation does to it.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: String,
    pub profile: Profile,
    pub plan: &'static str,
    pub seats: u32,
    pub csm: &'static str,
    pub contract_start: NaiveDate,
    pub renewal_date: NaiveDate,
    /// Declining accounts: when use starts to fall and the day the last user leaves.
    pub decline_start: Option<NaiveDate>,
    pub churn_date: Option<NaiveDate>,
    /// How many distinct features the account's users reach for.
    pub feature_breadth: usize,
    #[serde(skip)]
    pub users: Vec<User>,
}

/// The book: `accounts` accounts over the `days` days ending `today` (inclusive).
#[derive(Debug, Clone)]
pub struct Book {
    pub accounts: Vec<Account>,
    pub first_day: NaiveDate,
    pub today: NaiveDate,
    pub seed: u64,
}

fn day(d: NaiveDate, offset: i64) -> NaiveDate {
    if offset >= 0 {
        d + Days::new(offset as u64)
    } else {
        d - Days::new((-offset) as u64)
    }
}

impl Book {
    pub fn new(accounts: usize, days: u32, seed: u64, today: NaiveDate) -> Self {
        let root = Rng::new(seed);
        let first_day = day(today, 1 - days as i64);
        let accounts = (0..accounts).map(|i| account(i, &mut root.fork(i as u64 + 1), first_day, today)).collect();
        Self { accounts, first_day, today, seed }
    }

    /// Every day of the window, oldest first.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + Clone + '_ {
        self.first_day.iter_days().take_while(move |d| *d <= self.today)
    }
}

/// The first accounts have fixed profiles, so a small book (the demo) always shows each kind
/// of story; the rest are drawn at realistic shares.
fn account(i: usize, rng: &mut Rng, first_day: NaiveDate, today: NaiveDate) -> Account {
    let profile = match i {
        0 | 6 => Profile::Declining,
        1 | 7 => Profile::Steady,
        2 => Profile::Onboarding,
        3 => Profile::Growing,
        4 => Profile::Dormant,
        5 => Profile::Steady, // in the renewal window with few seats used (below)
        _ => match rng.range(0, 99) {
            0..=44 => Profile::Steady,
            45..=59 => Profile::Growing,
            60..=74 => Profile::Onboarding,
            75..=91 => Profile::Declining,
            _ => Profile::Dormant,
        },
    };
    let id = NAMES.get(i).map_or_else(|| format!("acct-{i:05}"), |n| (*n).to_owned());
    let (plan, seats) = match rng.range(0, 9) {
        0..=3 => ("starter", rng.range(3, 10) as u32),
        4..=7 => ("pro", rng.range(10, 40) as u32),
        _ => ("enterprise", rng.range(40, 120) as u32),
    };
    let contract_start = match profile {
        Profile::Onboarding => day(today, -(rng.range(10, 60) as i64)),
        _ => day(today, -(rng.range(100, 300) as i64)),
    };
    let mut renewal_date = day(contract_start, 365);
    // Adoption: the share of seats that ever get a user.
    let mut adoption = 0.5 + 0.45 * rng.unit();
    if i == 5 {
        renewal_date = day(today, 30);
        adoption = 0.3;
    }
    let (decline_start, churn_date) = if profile == Profile::Declining {
        // The demo's first account fades inside the last two weeks, so its weekly active users
        // halve week over week; the others anywhere in the window's second half.
        let churn = if i == 0 { day(today, 3) } else { day(today, rng.range(0, 30) as i64 - 10) };
        let start = day(churn, -(rng.range(18, 24) as i64));
        (Some(start.max(first_day)), Some(churn))
    } else {
        (None, None)
    };
    let user_count = ((seats as f64 * adoption).round() as u32).max(2);
    let users = (0..user_count)
        .map(|u| {
            let (from, until) = match profile {
                Profile::Steady | Profile::Declining => (day(first_day, -1), None),
                Profile::Growing => {
                    let late = rng.chance(0.4);
                    (
                        if late {
                            day(first_day, rng.range(0, (today - first_day).num_days() as u64) as i64)
                        } else {
                            day(first_day, -1)
                        },
                        None,
                    )
                }
                Profile::Onboarding => (day(contract_start, rng.range(0, 30) as i64), None),
                Profile::Dormant => (day(first_day, -1), Some(day(today, -(rng.range(16, 25) as i64)))),
            };
            // Declining: each user leaves on a day between the decline start and the churn date;
            // one champion holds on until the end.
            let until = match (decline_start, churn_date) {
                (Some(s), Some(c)) if u > 0 => Some(day(s, rng.range(0, (c - s).num_days().max(0) as u64) as i64)),
                (Some(_), Some(c)) => Some(c),
                _ => until,
            };
            User { id: format!("{id}-user{:03}", u + 1), daily: 0.35 + 0.55 * rng.unit(), from, until }
        })
        .collect();
    Account {
        feature_breadth: rng.range(3, FEATURES.len() as u64) as usize,
        csm: CSMS[i % CSMS.len()],
        id,
        profile,
        plan,
        seats,
        contract_start,
        renewal_date,
        decline_start,
        churn_date,
        users,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_book() {
        let today = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
        let (a, b) = (Book::new(50, 35, 7, today), Book::new(50, 35, 7, today));
        let ids =
            |b: &Book| b.accounts.iter().map(|a| (a.id.clone(), a.profile, a.seats, a.users.len())).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        assert_ne!(ids(&a), ids(&Book::new(50, 35, 8, today)));
        assert_eq!(a.days().count(), 35);
        assert_eq!(a.accounts[0].id, "acme");
        assert_eq!(a.accounts[20].id, "acct-00020");
    }

    #[test]
    fn every_profile_appears_and_decliners_have_dates_in_order() {
        let today = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
        let book = Book::new(200, 60, 1, today);
        for p in [Profile::Onboarding, Profile::Steady, Profile::Growing, Profile::Declining, Profile::Dormant] {
            assert!(book.accounts.iter().any(|a| a.profile == p), "{p:?}");
        }
        for a in book.accounts.iter().filter(|a| a.profile == Profile::Declining) {
            assert!(a.decline_start.unwrap() <= a.churn_date.unwrap(), "{}", a.id);
            assert!(a.users.iter().all(|u| u.until.is_some_and(|d| d <= a.churn_date.unwrap())));
        }
    }
}
