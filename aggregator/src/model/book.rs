//! Book-wide closures (docs/SIGNAL.md#closures): a public holiday, or the days between Christmas
//! and New Year, empties most accounts on the same day. Read account by account, that day looks
//! like the start of a decline on a small account (where one empty day is ordinary and cannot
//! be told from a closure) and lengthens every regular user's absence; read across the book it
//! is plain: the whole book's active users fall to a fraction of that weekday's usual, which
//! no set of accounts declining independently does.
//!
//! So the pass reads the book's daily totals once (`Store::book_days`), marks the complete days
//! on which the book as a whole was at most [`BOOK_CLOSURE_SHARE`] of its usual, and every
//! account's detector and lapse statistic skip those days; the 7-day-window rules can require
//! that their window holds none (`book_closures_7d`).
//!
//! The same totals say how far back the book's history reaches ([`Book::history_days`]): a
//! 30-day figure read on an import's first weeks, or on a new deployment's, covers a fraction
//! of a month, and reads as a month in which few people came in.

use super::baseline::median;

/// A day is a closure when the book's active users are at most this share of the usual of that
/// weekday. An ordinary day of a book of independent accounts stays within a few per cent of
/// it (a slide or a dip moves one account's share, not the book's); a holiday halves it or
/// more.
pub const BOOK_CLOSURE_SHARE: f64 = 0.5;
/// Below this many accounts active on the weekday usually, the book is small: its totals swing
/// with any one of its accounts, so a closure needs [`SMALL_BOOK_CLOSURE_SHARE`].
pub const BOOK_MIN_ACCOUNTS: f64 = 20.0;
/// A small book's closure: at most this share of the weekday's usual users. A book of 8–19
/// accounts does not lose four fifths of its users in a day unless most of its accounts stayed
/// home (the demo's 12 accounts on their public holiday: 6–18 users against about 150, while its
/// largest account is about a quarter of the book). Read at the large book's half, a big account's
/// team week away, or two small accounts' quiet days, would close the book for every account.
pub const SMALL_BOOK_CLOSURE_SHARE: f64 = 0.2;
/// Below this many accounts active on the weekday usually, the "book" is a few accounts: no day
/// is a book-wide closure.
pub const SMALL_BOOK_MIN_ACCOUNTS: f64 = 8.0;
/// Weeks of the same weekday the usual is the median of (one holiday among them does not move it).
const REF_WEEKS: u32 = 4;

/// The book's complete days that were closures, by days before the pass's day (bit d = d days
/// before, d ≥ 1; the pass's own day is never one: it is still filling in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Closures(u64);

impl Closures {
    /// No closures (a book too small to tell, or a pass without the book's totals).
    pub const NONE: Self = Self(0);

    /// The closures on these days before the pass's day (tests and fixtures).
    pub fn on(days: &[u32]) -> Self {
        Self(days.iter().filter(|&&d| (1..64).contains(&d)).fold(0, |m, &d| m | 1 << d))
    }

    /// Whether the day `d` days before the pass's day was a book-wide closure.
    pub fn contains(self, d: u32) -> bool {
        d < 64 && (self.0 >> d) & 1 == 1
    }

    /// How many of the `days` complete days ending yesterday were closures.
    pub fn in_last(self, days: u32) -> u8 {
        (1..=days.min(63)).filter(|&d| self.contains(d)).count() as u8
    }

    /// The days, oldest first (for logs).
    pub fn days(self) -> Vec<u32> {
        (1..64).rev().filter(|&d| self.contains(d)).collect()
    }
}

/// The book's totals of one day: active users summed over accounts, the accounts with any, and
/// the accounts with any event at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BookDay {
    pub users: u64,
    pub accounts: u64,
    pub seen: u64,
}

/// What a pass reads of the whole book from its daily totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Book {
    /// The book-wide closures before the pass's day.
    pub closures: Closures,
    /// Complete days before the pass's day that the book's history covers: back to the oldest
    /// day with any event (traits, a survey, use), at most 63 (the whole window; a book older
    /// than it).
    pub history_days: u32,
}

impl Book {
    /// A book whose history covers the whole window and has no closures (tests and fixtures).
    pub const ESTABLISHED: Self = Self { closures: Closures::NONE, history_days: 63 };

    /// The book read from its totals of the 64 days ending on the pass's day, and whether it
    /// holds anything older.
    pub fn of(days: &[BookDay; 64], older: bool) -> Self {
        let oldest = (0..64u32).rev().find(|&d| days[d as usize].seen > 0).unwrap_or(0);
        Self { closures: closures(days), history_days: if older { 63 } else { oldest } }
    }

    /// Whether the `days` days ending on the pass's day (it included) all lie inside the book's
    /// history: a window reaching back before it counts days nobody could have been seen on.
    pub fn covers(self, days: u32) -> bool {
        self.history_days + 1 >= days
    }
}

/// The closures among `days` (index d = d days before the pass's day): each complete day whose
/// users are at most [`BOOK_CLOSURE_SHARE`] of the median of the same weekday in the 4 weeks
/// before it, where those weeks usually had at least [`BOOK_MIN_ACCOUNTS`] active accounts; at
/// most [`SMALL_BOOK_CLOSURE_SHARE`] where they had [`SMALL_BOOK_MIN_ACCOUNTS`] or more. Only
/// days with 4 earlier weeks inside the 64 days can be judged (d ≤ 35), which covers the
/// detector's 28-day run.
pub fn closures(days: &[BookDay; 64]) -> Closures {
    let mut out = 0u64;
    for d in 1..64 - 7 * REF_WEEKS {
        let mut users: Vec<u64> = (1..=REF_WEEKS).map(|k| days[(d + 7 * k) as usize].users).collect();
        let mut accounts: Vec<u64> = (1..=REF_WEEKS).map(|k| days[(d + 7 * k) as usize].accounts).collect();
        let share = match median(&mut accounts) {
            a if a >= BOOK_MIN_ACCOUNTS => BOOK_CLOSURE_SHARE,
            a if a >= SMALL_BOOK_MIN_ACCOUNTS => SMALL_BOOK_CLOSURE_SHARE,
            _ => continue,
        };
        if days[d as usize].users as f64 <= share * median(&mut users) {
            out |= 1 << d;
        }
    }
    Closures(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A book of `accounts` accounts with `users` active users on weekdays and a fifth of them on
    /// weekends (d % 7 of 0 and 1 taken as the weekend), for 64 days.
    fn book(accounts: u64, users: u64) -> [BookDay; 64] {
        std::array::from_fn(|d| {
            let weekend = d % 7 < 2;
            BookDay {
                users: if weekend { users / 5 } else { users },
                accounts: if weekend { accounts / 3 } else { accounts },
                seen: accounts,
            }
        })
    }

    #[test]
    fn a_public_holiday_is_a_closure_and_a_weekend_is_not() {
        let mut days = book(400, 2_000);
        days[4].users = 150; // a Thursday holiday: most of the book stayed at home
        days[3].users = 400; // its bridge Friday
        let c = closures(&days);
        assert_eq!(c.days(), vec![4, 3]);
        assert_eq!(c.in_last(7), 2);
        assert_eq!(c.in_last(3), 1);
        assert!(
            !c.contains(0) && !c.contains(1) && !c.contains(7),
            "weekends and the pass's own day are never closures"
        );
    }

    #[test]
    fn accounts_declining_on_their_own_do_not_close_the_book() {
        let mut days = book(400, 2_000);
        // A fifth of the book's use gone over the last two weeks (many slides, a few cliffs).
        for (d, day) in days.iter_mut().enumerate().take(15).skip(1) {
            day.users = day.users * (100 - (15 - d as u64) * 20 / 14) / 100;
        }
        assert_eq!(closures(&days), Closures::NONE);
    }

    #[test]
    fn an_earlier_holiday_does_not_hide_a_later_one_and_a_small_book_has_none() {
        let mut days = book(400, 2_000);
        days[9].users = 100;
        days[16].users = 100; // the same weekday a week earlier: one of the 4 reference weeks
        assert_eq!(closures(&days).days(), vec![16, 9]);
        let mut few = book(7, 60);
        few[4].users = 0;
        assert_eq!(closures(&few), Closures::NONE, "7 accounts are not a book to read a holiday from");
    }

    #[test]
    fn a_small_book_closes_only_when_four_fifths_of_it_stay_home() {
        // The demo's 12 accounts, about 150 users a weekday: its public holiday had 6–18 in.
        let mut small = book(12, 150);
        small[4].users = 18;
        small[3].users = 6;
        // A big account's team week away, or a couple of quiet small accounts: a third gone.
        small[9].users = 100;
        // The same dip at a large book's half: not a small book's closure.
        small[10].users = 70;
        assert_eq!(closures(&small).days(), vec![4, 3]);
    }

    #[test]
    fn the_history_reaches_back_to_the_oldest_day_with_any_event() {
        let mut days = book(400, 2_000);
        assert_eq!(Book::of(&days, false).history_days, 63, "an established book: the whole window");
        assert!(Book::of(&days, false).covers(30) && Book::of(&days, false).covers(60));
        // An import of 20 days of history, with a day nobody used it inside them, and the
        // accounts' traits sent the day before the first use.
        for day in days.iter_mut().skip(21) {
            *day = BookDay::default();
        }
        days[5] = BookDay { seen: 3, ..BookDay::default() };
        days[21].seen = 400;
        let b = Book::of(&days, false);
        assert_eq!(b.history_days, 21);
        assert!(b.covers(22) && !b.covers(23), "today and the 21 days before it");
        assert_eq!(Book::of(&days, true).history_days, 63, "older days: the whole window is covered");
        assert_eq!(Book::of(&[BookDay::default(); 64], false).history_days, 0, "nothing yet: today only");
    }

    #[test]
    fn days_without_four_earlier_weeks_are_not_judged() {
        let mut days = book(400, 2_000);
        days[40].users = 0;
        assert!(!closures(&days).contains(40));
        assert_eq!(Closures::on(&[0, 3, 64]).days(), vec![3]);
    }
}
