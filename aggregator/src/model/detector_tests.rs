use super::*;

/// Daily active users: `weekday` users on weekdays (d % 7 > 1), `weekend` on the other two,
/// then `story(d, usual)` for the days it names.
fn book(weekday: u64, weekend: u64, story: impl Fn(u32, u64) -> Option<u64>) -> [u64; 64] {
    book_with_weekend(weekday, weekend, |d| d % 7 <= 1, story)
}

/// As [`book`], with the weekend on the days `is_weekend` says.
fn book_with_weekend(
    weekday: u64,
    weekend: u64,
    is_weekend: impl Fn(u32) -> bool,
    story: impl Fn(u32, u64) -> Option<u64>,
) -> [u64; 64] {
    let mut out = [0u64; 64];
    for (d, n) in out.iter_mut().enumerate() {
        let d = d as u32;
        let usual = if is_weekend(d) { weekend } else { weekday };
        *n = story(d, usual).unwrap_or(usual);
    }
    out
}

fn statistic(daily: &[u64; 64]) -> f64 {
    evidence(daily, 0, &[], 63, Closures::NONE).unwrap().statistic
}

#[test]
fn a_steady_account_has_no_evidence() {
    // A wobble of ±1 around 10 on weekdays.
    let daily = book(10, 2, |d, u| (d % 7 > 1).then(|| u + (d % 3) as u64 - 1));
    assert!(statistic(&daily) < 2.0, "{}", statistic(&daily));
}

#[test]
fn a_slide_accumulates_day_after_day_from_its_start() {
    // From 14 days ago, weekdays lose a user every two days: 10, 10, 9, 9 … 4.
    let daily = book(10, 2, |d, u| (d <= 14 && d % 7 > 1).then(|| u - (14 - d as u64).div_ceil(2)));
    let e = evidence(&daily, 0, &[], 63, Closures::NONE).unwrap();
    assert!(e.statistic > 5.0, "{e:?}");
    assert!(e.since.is_some_and(|s| (8..=14).contains(&s)), "{e:?}");
    // A week earlier in the same slide, it was already building but weaker.
    let week_ago = book(10, 2, |d, u| (d <= 7 && d % 7 > 1).then(|| u - (7 - d as u64).div_ceil(2)));
    let earlier = statistic(&week_ago);
    assert!(earlier < e.statistic, "{earlier} then {}", e.statistic);
}

#[test]
fn the_usual_is_fixed_while_evidence_accumulates() {
    // A slide longer than the reference weeks: 8 weeks of 10, then 28 days at 6. A reference
    // that followed the slide would count the last weeks as usual; this one does not.
    let daily = book(10, 0, |d, u| (d <= 28 && d % 7 > 1).then_some(6).or(Some(u)));
    let e = evidence(&daily, 0, &[], 63, Closures::NONE).unwrap();
    // Day 28 is a weekend day with no usual: the first weekday of the slide starts it.
    assert!(e.statistic > 15.0 && e.since == Some(27), "{e:?}");
}

#[test]
fn a_public_holiday_is_a_closure() {
    // Nobody in on two weekdays 3 and 4 days ago (a holiday and its bridge day), back since.
    let daily = book(10, 2, |d, _| (3..=4).contains(&d).then_some(0));
    assert!(statistic(&daily) < 1.0, "{}", statistic(&daily));
}

#[test]
fn a_team_away_together_for_a_week_is_not_decline_but_a_stop_is() {
    // Everyone (ten regular users) away together for the last 7 days, last seen on day 8.
    let daily = book(10, 2, |d, _| (1..=7).contains(&d).then_some(0));
    let away: Vec<u64> = (1..=63).map(|d| if d <= 7 { 10 } else { 0 }).collect();
    let with_away = evidence(&daily, 10, &away, 63, Closures::NONE).unwrap().statistic;
    // The same days without a group away: a stop, past its first two days evidence at 2 a day.
    let stopped = evidence(&daily, 10, &[], 63, Closures::NONE).unwrap().statistic;
    assert!(with_away < 1.0 && stopped > 5.0, "{with_away} vs {stopped}");
}

#[test]
fn half_the_team_away_together_lowers_the_expectation() {
    // Ten regular users, five away together for the last 6 days.
    let daily = book(10, 2, |d, u| (d <= 6).then_some(u / 2));
    let away: Vec<u64> = (1..=63).map(|d| if d <= 6 { 5 } else { 0 }).collect();
    let read_as_decline = evidence(&daily, 10, &[], 63, Closures::NONE).unwrap().statistic;
    let with_away = evidence(&daily, 10, &away, 63, Closures::NONE).unwrap().statistic;
    assert!(read_as_decline > 5.0 && with_away < 1.0, "{read_as_decline} vs {with_away}");
}

#[test]
fn a_tiny_account_needs_weeks_of_evidence_not_one_quiet_day() {
    // Two users on weekdays; one quiet week of one user is weak evidence …
    let week = book(2, 0, |d, u| (d <= 7 && d % 7 > 1).then(|| u - 1));
    assert!(statistic(&week) < 2.0, "{}", statistic(&week));
    // … four weeks of one user gone is not.
    let month = book(2, 0, |d, u| (d <= 28 && d % 7 > 1).then(|| u - 1));
    assert!(statistic(&month) > 4.0, "{}", statistic(&month));
}

#[test]
fn a_small_account_fading_is_seen_in_its_empty_days() {
    // Two users on a usual weekday; for three weeks every other weekday nobody, the rest one.
    let fading = book(2, 0, |d, _| (d <= 21 && d % 7 > 1).then_some(u64::from(d % 2)));
    assert!(statistic(&fading) > 5.0, "{}", statistic(&fading));
    // On a large account a day with nobody is still a closure.
    let holiday = book(10, 2, |d, _| (d == 3).then_some(0));
    assert!(statistic(&holiday) < 1.0, "{}", statistic(&holiday));
}

#[test]
fn a_small_accounts_deep_fall_is_read_as_a_fall_to_half() {
    // Three users on weekdays; for the last two weeks one of them. Read as a fall to 70 % each
    // day adds 0.9 − 0.36 = 0.54: 5.4 in two weeks, under `usage_declining`'s 6. Read as a fall
    // to half, 1.5 − 0.69 = 0.81: 8.1.
    let deep = book(3, 0, |d, _| (d <= 14 && d % 7 > 1).then_some(1));
    let e = evidence(&deep, 0, &[], 63, Closures::NONE).unwrap();
    assert!(e.statistic > 8.0 && e.since == Some(13), "{e:?}");
    // One user missing on one weekday a week says nothing much under either.
    let wobble = book(3, 0, |d, u| (d <= 14 && d % 7 == 3).then(|| u - 1));
    assert!(statistic(&wobble) < 1.0, "{}", statistic(&wobble));
    // A shallow slide starts counting from its first days under the usual, which a fall to half
    // alone would not see: the reading says since when from the earlier start.
    let shallow = book(10, 2, |d, u| (d <= 14 && d % 7 > 1).then(|| u - if d > 7 { 2 } else { 5 }));
    let e = evidence(&shallow, 0, &[], 63, Closures::NONE).unwrap();
    assert_eq!(e.since, Some(13), "{e:?}");
}

#[test]
fn a_seasonal_accounts_quiet_week_weighs_less_than_a_steady_ones() {
    // Weekdays alternate week by week between 14 and 6 users (usual: 10), the last week quiet.
    let quiet_week = |d: u32| ((d - 1) / 7).is_multiple_of(2);
    let seasonal = book(10, 0, |d, _| (d >= 1 && d % 7 > 1).then(|| if quiet_week(d) { 6 } else { 14 }));
    // A steady account at 10 with the same quiet last week: 5 days at 0.86 each.
    let steady = book(10, 0, |d, _| ((1..=7).contains(&d) && d % 7 > 1).then_some(6));
    assert!(statistic(&steady) > 4.0, "{}", statistic(&steady));
    // Its weeks swing eight times as much as chance (400 / 50 a week): the same week is a blip.
    assert!(statistic(&seasonal) < 1.0, "{}", statistic(&seasonal));
    // A fall to under a third of its usual for four weeks still reads as one.
    let falls = book(10, 0, |d, _| {
        (d >= 1 && d % 7 > 1).then(|| {
            if d <= 28 {
                3
            } else if quiet_week(d) {
                6
            } else {
                14
            }
        })
    });
    assert!(statistic(&falls) > 6.0, "{}", statistic(&falls));
    // A wobble within chance in the reference weeks changes nothing (dispersion under 1.5).
    let wobbly = book(10, 0, |d, u| {
        (d % 7 > 1).then(|| {
            if d > 28 {
                u + (d % 3) as u64 - 1
            } else if d <= 7 {
                6
            } else {
                u
            }
        })
    });
    let phi = |daily: &[u64; 64]| dispersion(daily, &usual_before(daily, RUN_DAYS), RUN_DAYS, Closures::NONE);
    assert_eq!(phi(&wobbly), 1.0);
    assert_eq!(phi(&seasonal), 8.0);
}

#[test]
fn too_little_history_has_no_reading() {
    let daily = book(10, 2, |_, _| None);
    assert_eq!(evidence(&daily, 0, &[], 28, Closures::NONE), None);
    assert!(evidence(&daily, 0, &[], 29, Closures::NONE).is_some());
    assert_eq!(daily_users(&[u64::MAX, 1 << 63])[0], 2);
    assert_eq!(daily_users(&[u64::MAX, 1 << 63])[1], 1);
}

#[test]
fn a_good_day_inside_a_slide_does_not_move_its_reference() {
    // Weekdays at 10, then at 6 for the last 21 days but for one very busy day (40) 9 days ago,
    // which brings the statistic back to 0. What follows is still measured against 10: a
    // reference taken afresh then would be half slide (a median of 8) and see little.
    let daily = book(10, 2, |d, u| match d {
        9 => Some(40),
        _ if d <= 21 && d % 7 > 1 => Some(6),
        _ => Some(u),
    });
    let e = evidence(&daily, 0, &[], 63, Closures::NONE).unwrap();
    assert!(e.statistic > 3.5 && e.since.is_some_and(|s| s < 9), "{e:?}");
}

#[test]
fn a_book_wide_holiday_is_no_evidence_even_on_a_small_account() {
    // Three users on weekdays; a public holiday 4 days ago and its bridge day (3 days ago) with
    // nobody in: on an account this small two empty days are ordinary absences, not a
    // closure, and they count …
    let holiday = book(3, 0, |d, _| (d == 3 || d == 4).then_some(0));
    let alone = evidence(&holiday, 0, &[], 63, Closures::NONE).unwrap().statistic;
    assert!(alone >= 1.5, "{alone}");
    // … unless the whole book was away on those days.
    let book_closed = evidence(&holiday, 0, &[], 63, Closures::on(&[3, 4])).unwrap();
    assert_eq!((book_closed.statistic, book_closed.since), (0.0, None));
    // A closure elsewhere does not hide a real shortfall.
    let slide = book(3, 0, |d, u| (d <= 14 && d % 7 > 1).then(|| u - 1 - u64::from(d % 2)));
    let with_other = evidence(&slide, 0, &[], 63, Closures::on(&[20])).unwrap().statistic;
    assert_eq!(with_other, evidence(&slide, 0, &[], 63, Closures::NONE).unwrap().statistic);
    assert!(with_other > 3.0, "{with_other}");
}

/// The silence's evidence alone.
fn evidence_of(daily: &[u64; 64], covered: u32, closures: Closures) -> Option<f64> {
    silence(daily, covered, closures).evidence
}

#[test]
fn a_small_teams_silent_working_week_is_unlikely_by_chance() {
    // Three people who come in on weekdays, nobody since 7 days ago: five weekdays of 3 expected.
    let daily = book(3, 0, |d, _| (d <= 7).then_some(0));
    assert_eq!(silence(&daily, 63, Closures::NONE), Silence { days: 8, evidence: Some(15.0) });
    // Its first days, a weekend day and one weekday, are no evidence yet.
    let two_days = book(3, 0, |d, _| (d <= 3).then_some(0));
    assert_eq!(evidence_of(&two_days, 63, Closures::NONE), Some(0.0));
}

#[test]
fn silence_counts_expected_days_not_calendar_days() {
    // Yesterday, a weekend day, is silent on a weekday team: nothing expected, no evidence. Two
    // silent weekdays of a large team are a closure; three are a stop.
    let weekend = book(20, 0, |d, u| (d > 2).then_some(u));
    assert_eq!(evidence_of(&weekend, 63, Closures::NONE), Some(0.0));
    let closure = book(20, 0, |d, _| (d <= 4).then_some(0));
    // Days 1 (weekend, 0 expected), 2, 3, 4: three weekdays → 60.
    assert_eq!(evidence_of(&closure, 63, Closures::NONE), Some(60.0));
    let two_weekdays = book(20, 0, |d, _| (d <= 3).then_some(0));
    assert_eq!(evidence_of(&two_weekdays, 63, Closures::NONE), Some(0.0));
}

#[test]
fn a_book_wide_closure_in_the_silence_counts_for_nothing() {
    let daily = book(3, 0, |d, _| (d <= 4).then_some(0));
    assert_eq!(evidence_of(&daily, 63, Closures::NONE), Some(9.0));
    assert_eq!(evidence_of(&daily, 63, Closures::on(&[3])), Some(0.0), "two weekdays left: no evidence");
}

#[test]
fn someone_in_yesterday_ends_the_silence_and_history_bounds_it() {
    let back = book(3, 0, |d, _| match d {
        1 => Some(2),
        2..=9 => Some(0),
        _ => None,
    });
    assert_eq!(evidence_of(&back, 63, Closures::NONE), Some(0.0));
    // The usual needs the 4 weeks before the silence (days 1–8, the weekend before included).
    let silent = book(3, 0, |d, _| (d <= 7).then_some(0));
    assert_eq!(evidence_of(&silent, 35, Closures::NONE), None);
    assert_eq!(evidence_of(&silent, 36, Closures::NONE), Some(15.0));
    // A dead account: silent for longer than the window can hold a usual before.
    let dead = book(3, 0, |d, _| (d <= 40).then_some(0));
    assert_eq!(evidence_of(&dead, 63, Closures::NONE), None);
}

/// `busy` users on working days and 4 on weekend days (the days `weekend` says), then
/// `story(d)` for the days it names.
fn weeks(busy: u64, weekend: impl Fn(u32) -> bool, story: impl Fn(u32) -> Option<u64>) -> [u64; 64] {
    book_with_weekend(busy, 4, weekend, |d, _| story(d))
}

#[test]
fn a_stop_with_a_trickle_counts_its_working_days_and_skips_the_weekend() {
    // Forty a working day, the weekend on days 0–1, 7–8 …: a cliff from day 6 leaves a trickle
    // of 3 a working day (under a quarter of 40) and nobody at weekends.
    let weekend = |d: u32| d % 7 <= 1;
    let cliff = weeks(40, weekend, |d| (d <= 6).then(|| if weekend(d) { 0 } else { 3 }));
    assert_eq!(stopped_days(&cliff, 63, Closures::NONE), Some(5));
    // Its silence sees nothing: someone came in every working day.
    assert_eq!(silence(&cliff, 63, Closures::NONE).days, 1);
    // A day at half the usual ends the run: three working days since.
    let half = weeks(40, weekend, |d| match d {
        5 => Some(20),
        1..=6 => Some(if weekend(d) { 0 } else { 3 }),
        _ => None,
    });
    assert_eq!(stopped_days(&half, 63, Closures::NONE), Some(3));
    // Half the team away for a week is no stop.
    let away = weeks(40, weekend, |d| (d <= 7 && !weekend(d)).then_some(20));
    assert_eq!(stopped_days(&away, 63, Closures::NONE), Some(0));
}

#[test]
fn an_accounts_own_closure_of_two_working_days_is_no_stop() {
    // The weekend on days 2–3 (yesterday a Monday): nobody on Friday (day 4) nor on Monday
    // (day 1), Good Friday and Easter Monday, and a quiet weekend between. Two, never three.
    let weekend = |d: u32| (d + 5) % 7 <= 1;
    let easter = weeks(40, weekend, |d| (d <= 4).then_some(if weekend(d) { 1 } else { 0 }));
    assert_eq!(stopped_days(&easter, 63, Closures::NONE), Some(2));
    // The same days after a Thursday at nobody too: a stop, three working days.
    let stop = weeks(40, weekend, |d| (d <= 5).then_some(if weekend(d) { 1 } else { 0 }));
    assert_eq!(stopped_days(&stop, 63, Closures::NONE), Some(3));
}

#[test]
fn a_book_wide_closure_counts_only_when_nobody_came_in() {
    let weekend = |d: u32| d % 7 <= 1;
    // A stop on days 2, 3 and 6; days 4 and 5 a public holiday on which 12 came in (30 %).
    let holiday_at_work = weeks(40, weekend, |d| match d {
        4 | 5 => Some(12),
        1..=6 => Some(if weekend(d) { 0 } else { 2 }),
        _ => None,
    });
    // Read alone, the holiday's 30 % ends the run; known as the book's closure, it is skipped.
    assert_eq!(stopped_days(&holiday_at_work, 63, Closures::NONE), Some(2));
    assert_eq!(stopped_days(&holiday_at_work, 63, Closures::on(&[4, 5])), Some(3));
    // Nobody at all on the holiday: the stop's days.
    let nobody = weeks(40, weekend, |d| (d <= 6).then(|| if weekend(d) || d == 4 || d == 5 { 0 } else { 2 }));
    assert_eq!(stopped_days(&nobody, 63, Closures::on(&[4, 5])), Some(5));
}

#[test]
fn a_stop_is_read_against_the_weeks_before_it_and_needs_three_weeks_of_history() {
    let weekend = |d: u32| d % 7 <= 1;
    // Stopped for 20 days: the usual is that of the 4 weeks before the last 14, so the run is
    // the 10 working days of those 14, not a usual made of the stop.
    let long = weeks(40, weekend, |d| (d <= 20).then_some(0));
    assert_eq!(stopped_days(&long, 63, Closures::NONE), Some(10));
    // A stop three weeks into the account's history (nothing before its first day) is read
    // against the 2 weeks of usual it has, not the days before it existed: 5 working days.
    let young = |covered: usize| {
        let mut book = weeks(40, weekend, |d| (d <= 6).then_some(0));
        book[covered + 1..].fill(0);
        book
    };
    assert_eq!(stopped_days(&young(20), 20, Closures::NONE), None, "under 3 weeks");
    assert_eq!(stopped_days(&young(21), 21, Closures::NONE), Some(5));
    assert_eq!(stopped_days(&young(24), 24, Closures::NONE), Some(5));
    // Without the stop, its weeks read as usual.
    let mut steady = weeks(40, weekend, |_| None);
    steady[22..].fill(0);
    assert_eq!(stopped_days(&steady, 21, Closures::NONE), Some(0));
}
