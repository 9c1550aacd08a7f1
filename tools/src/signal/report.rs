//! The ground-truth table for people (the JSON is [`Scores`] serialised).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::score::{Leads, Live, Scores, Share, IDLE_DAYS, OVERALL, RECALL_MIN_AGE_DAYS};

fn share(s: &Share) -> String {
    match s.ratio() {
        Some(r) => format!("{:>4} / {:<4} {:>6.1} %", s.count, s.of, r * 100.0),
        None => format!("{:>4} / {:<4}      –", s.count, s.of),
    }
}

fn lead(l: &Leads) -> String {
    let show = |x: &Option<super::score::Lead>| x.map_or("–".to_owned(), |v| v.to_string());
    format!(
        "{:>4} accounts  caught {:>4}  missed {:>4}  median {:>6}  p90 {:>6}",
        l.accounts,
        l.caught,
        l.missed,
        show(&l.median),
        show(&l.p90)
    )
}

/// The rows of a per-kind map with `overall` moved to the end.
fn overall_last<V>(m: &BTreeMap<String, V>) -> impl Iterator<Item = (&String, &V)> {
    m.iter().filter(|(k, _)| **k != OVERALL).chain(m.iter().filter(|(k, _)| **k == OVERALL))
}

/// The table `signal` prints.
pub fn table(s: &Scores) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "Signal quality: replay {} .. {} ({} accounts)", s.window.from, s.window.to, s.book_accounts);
    let kinds: Vec<String> = s.accounts_per_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(w, "  book: {}  (at risk {}, healthy {})", kinds.join(", "), s.at_risk, s.healthy);
    let _ = writeln!(w, "  evaluated: {} of {}", s.evaluated, s.book_accounts);
    let _ = writeln!(w, "\nFiring at the end");
    let _ =
        writeln!(w, "  recall    {}  (at risk, onset ≥ {RECALL_MIN_AGE_DAYS} days before the end)", share(&s.recall));
    let _ = writeln!(w, "  precision {}  (open alerts on at-risk accounts)", share(&s.precision));
    let _ = writeln!(
        w,
        "\nOnset → first alert, days (onsets inside the window, ≥ 14 days before the end; missed counts as never)"
    );
    for (kind, l) in overall_last(&s.lead_days) {
        let _ = writeln!(w, "  {kind:<12} {}", lead(l));
    }
    let _ = writeln!(w, "\nHealthy accounts with any firing in the window");
    for (kind, sh) in overall_last(&s.healthy_alerted) {
        let _ = writeln!(w, "  {kind:<12} {}", share(sh));
    }
    let _ = writeln!(w, "  of them, fired on a user's own leave  {}", share(&s.healthy_alerted_on_leave));
    let _ = writeln!(w, "\nHealth at the end");
    let _ = writeln!(w, "  idle ≥ {IDLE_DAYS} days and red   {}", share(&s.idle_red));
    let _ = writeln!(w, "  healthy and red          {}", share(&s.healthy_red));
    if !s.healthy_red_ids.is_empty() {
        let shown: Vec<&str> = s.healthy_red_ids.iter().take(10).map(String::as_str).collect();
        let _ = writeln!(w, "    e.g. {}", shown.join(", "));
    }
    let _ = writeln!(w, "  red with an open alert   {}", share(&s.red_alerted));
    if !s.red_silent_ids.is_empty() {
        let shown: Vec<&str> = s.red_silent_ids.iter().take(10).map(String::as_str).collect();
        let _ = writeln!(w, "    without: {}", shown.join(", "));
    }
    let _ = writeln!(w, "\nFiring records per rule ({} in all, {} resolutions)", s.firings, s.resolutions);
    for (rule, n) in &s.firings_per_rule {
        let _ = writeln!(w, "  {rule:<28} {n:>6}");
    }
    out
}

/// The live evaluator's open episodes right after the import, as `signal` prints them.
pub fn live_table(l: &Live) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "Live, right after the import (the running aggregator's open episodes)");
    let _ = writeln!(w, "  recall    {}", share(&l.recall));
    let _ = writeln!(w, "  precision {}", share(&l.precision));
    let _ = writeln!(
        w,
        "  vs the replay's open episodes at its end: {} in both, {} live only, {} replay only",
        l.both,
        l.live_only.len(),
        l.replay_only.len()
    );
    for (what, ids) in [("live only", &l.live_only), ("replay only", &l.replay_only)] {
        if !ids.is_empty() {
            let shown: Vec<&str> = ids.iter().take(10).map(String::as_str).collect();
            let _ = writeln!(w, "    {what}: {}", shown.join(", "));
        }
    }
    out
}
