//! Calibration instead of hand tuning (docs/SIGNAL.md#calibration): for a statistic the rules
//! can name (the decline detector's `decline_evidence`, the share of regular users lapsed …),
//! what each threshold would cost in false alarms on the book's healthy accounts and buy in
//! detection delay on its declining ones — read from the replay's own daily metrics, so a
//! threshold is picked from the book's history to meet a stated budget, not by eye.
//!
//! A threshold "alarms" on an account on each day the statistic goes from below it to at or
//! above it (an upcrossing: one alert episode, before any `for`, cooldown or resolve). False
//! alarms are counted per healthy account-year; detection is the first day at or after the
//! onset with the statistic at or above the threshold.

use std::collections::BTreeMap;
use std::fmt::Write;

use aggregator::model::{Metric, MetricsRow};
use chrono::NaiveDate;
use serde::Serialize;

use super::score::{percentile, Lead, Truth, LEAD_MIN_OBSERVED_DAYS};

/// Each account's daily values of one statistic, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub metric: String,
    pub days: BTreeMap<String, Vec<(NaiveDate, Option<f64>)>>,
}

impl Series {
    pub fn new(metric: &str) -> Self {
        Self { metric: metric.to_owned(), days: BTreeMap::new() }
    }

    /// Takes in one replayed day's metrics rows. A name led by `-` reads the metric negated, for
    /// statistics where lower is worse (`-health_score`): an alarm is still an upcrossing.
    pub fn add(&mut self, day: NaiveDate, rows: &[MetricsRow]) {
        let (name, sign) = match self.metric.strip_prefix('-') {
            Some(name) => (name, -1.0),
            None => (self.metric.as_str(), 1.0),
        };
        let Some(metric) = Metric::named(name) else { return };
        for r in rows {
            self.days.entry(r.account_id.clone()).or_default().push((day, metric.read(r).map(|v| v * sign)));
        }
    }
}

/// One threshold's cost and yield.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub threshold: f64,
    /// Upcrossings on healthy accounts per healthy account-year.
    pub false_alarms_per_year: f64,
    /// Healthy accounts with at least one upcrossing, in %.
    pub healthy_alarmed_pct: f64,
    /// Declines (onset inside the window, at least 14 days before its end) caught, and of how many.
    pub caught: usize,
    pub declines: usize,
    pub median_delay: Option<Lead>,
    pub p90_delay: Option<Lead>,
}

/// The curve over `thresholds` for `series` against the book's `truth`.
pub fn curve(series: &Series, truth: &[Truth], thresholds: &[f64], end: NaiveDate) -> Vec<Point> {
    let by_id: BTreeMap<&str, &Truth> = truth.iter().map(|t| (t.id.as_str(), t)).collect();
    thresholds
        .iter()
        .map(|&h| {
            let (mut crossings, mut healthy_days, mut alarmed, mut healthy) = (0usize, 0usize, 0usize, 0usize);
            let mut delays = Vec::new();
            for (account, days) in &series.days {
                let Some(t) = by_id.get(account.as_str()) else { continue };
                let above = |v: &Option<f64>| v.is_some_and(|v| v >= h);
                if !t.at_risk {
                    healthy += 1;
                    healthy_days += days.len();
                    let ups =
                        days.iter().enumerate().filter(|(i, (_, v))| above(v) && (*i == 0 || !above(&days[i - 1].1)));
                    let n = ups.count();
                    crossings += n;
                    alarmed += usize::from(n > 0);
                    continue;
                }
                let Some(onset) = t.onset else { continue };
                let first = days.first().map(|(d, _)| *d);
                if first.is_none_or(|f| onset < f) || (end - onset).num_days() < LEAD_MIN_OBSERVED_DAYS {
                    continue;
                }
                let hit = days.iter().find(|(d, v)| *d >= onset && above(v));
                delays.push(hit.map_or(Lead::Missed, |(d, _)| Lead::Days((*d - onset).num_days())));
            }
            delays.sort();
            let caught = delays.iter().filter(|l| **l != Lead::Missed).count();
            Point {
                threshold: h,
                false_alarms_per_year: if healthy_days == 0 {
                    0.0
                } else {
                    crossings as f64 * 365.0 / healthy_days as f64
                },
                healthy_alarmed_pct: if healthy == 0 { 0.0 } else { alarmed as f64 * 100.0 / healthy as f64 },
                caught,
                declines: delays.len(),
                median_delay: percentile(&delays, 50),
                p90_delay: percentile(&delays, 90),
            }
        })
        .collect()
}

/// The lowest threshold whose false alarms stay within `budget` per healthy account-year.
pub fn pick(points: &[Point], budget: f64) -> Option<&Point> {
    points.iter().filter(|p| p.false_alarms_per_year <= budget).min_by(|a, b| a.threshold.total_cmp(&b.threshold))
}

/// The curve as a table for people.
pub fn table(metric: &str, points: &[Point], budget: f64) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "Calibration of `{metric}` (alarm = the statistic crosses the threshold)");
    let _ =
        writeln!(w, "  threshold  false alarms/healthy account-year  healthy alarmed  caught      delay median  p90");
    let show = |x: Option<Lead>| x.map_or("–".to_owned(), |v| v.to_string());
    for p in points {
        let _ = writeln!(
            w,
            "  {:>9}  {:>33.2}  {:>13.1} %  {:>4} / {:<4}  {:>12}  {:>4}",
            p.threshold,
            p.false_alarms_per_year,
            p.healthy_alarmed_pct,
            p.caught,
            p.declines,
            show(p.median_delay),
            show(p.p90_delay)
        );
    }
    match pick(points, budget) {
        Some(p) => {
            let _ = writeln!(
                w,
                "  picked: {} (the lowest within {budget} false alarm per healthy account-year)",
                p.threshold
            );
        }
        None => {
            let _ = writeln!(w, "  no threshold stays within {budget} false alarm per healthy account-year");
        }
    }
    out
}

/// The curve as an SVG plot: median delay (days) against false alarms per healthy account-year,
/// one labelled point per threshold.
pub fn svg(metric: &str, points: &[Point]) -> String {
    let (w, h, pad) = (640.0, 400.0, 56.0);
    let delay = |p: &Point| match p.median_delay {
        Some(Lead::Days(d)) => Some(d as f64),
        _ => None,
    };
    let max_x = points.iter().map(|p| p.false_alarms_per_year).fold(1.0f64, f64::max);
    let max_y = points.iter().filter_map(delay).fold(7.0f64, f64::max);
    let x = |v: f64| pad + v / max_x * (w - 2.0 * pad);
    let y = |v: f64| h - pad - v / max_y * (h - 2.0 * pad);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{pad}\" y=\"20\" font-size=\"14\">{metric}: detection delay against false alarms</text>\n\
         <line x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\n\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{0}\" stroke=\"black\"/>\n\
         <text x=\"{2}\" y=\"{3}\" text-anchor=\"middle\">false alarms per healthy account-year (0 – {max_x:.1})</text>\n\
         <text x=\"14\" y=\"{4}\" transform=\"rotate(-90 14 {4})\" text-anchor=\"middle\">median delay, days (0 – {max_y:.0})</text>\n",
        h - pad,
        w - pad,
        w / 2.0,
        h - 16.0,
        h / 2.0
    );
    let dots: Vec<(f64, f64, f64)> =
        points.iter().filter_map(|p| delay(p).map(|d| (x(p.false_alarms_per_year), y(d), p.threshold))).collect();
    let path: Vec<String> = dots.iter().map(|(px, py, _)| format!("{px:.1},{py:.1}")).collect();
    let _ = writeln!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"#3366cc\"/>", path.join(" "));
    for (px, py, t) in dots {
        let _ = writeln!(
            s,
            "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"#3366cc\"/><text x=\"{:.1}\" y=\"{:.1}\">{t}</text>",
            px + 5.0,
            py - 5.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(n as u64)
    }

    fn series(values: &[(&str, &[f64])]) -> Series {
        let mut s = Series::new("decline_evidence");
        for (account, vs) in values {
            s.days.insert((*account).into(), vs.iter().enumerate().map(|(i, v)| (day(i as i64), Some(*v))).collect());
        }
        s
    }

    #[test]
    fn thresholds_trade_false_alarms_for_delay() {
        // A healthy account that wobbles up to 3 twice, a slide from day 2 that reaches 4 on day 5
        // and 8 on day 8, over 20 days.
        let healthy: Vec<f64> = (0..20).map(|i| if i == 3 || i == 12 { 3.0 } else { 0.0 }).collect();
        let slide: Vec<f64> = (0..20).map(|i| if i < 2 { 0.0 } else { (i - 1) as f64 }).collect();
        let s = series(&[("ok", &healthy), ("down", &slide)]);
        let truth = vec![
            Truth { id: "ok".into(), kind: "steady".into(), at_risk: false, onset: None, leave: vec![] },
            Truth { id: "down".into(), kind: "slide".into(), at_risk: true, onset: Some(day(2)), leave: vec![] },
        ];
        let points = curve(&s, &truth, &[2.0, 4.0, 8.0], day(19));
        assert_eq!(points[0].false_alarms_per_year, 2.0 * 365.0 / 20.0);
        assert_eq!((points[0].median_delay, points[0].healthy_alarmed_pct), (Some(Lead::Days(1)), 100.0));
        assert_eq!((points[1].false_alarms_per_year, points[1].median_delay), (0.0, Some(Lead::Days(3))));
        assert_eq!(points[2].median_delay, Some(Lead::Days(7)));
        assert_eq!(pick(&points, 1.0).map(|p| p.threshold), Some(4.0), "the lowest within budget");
        assert!(svg("decline_evidence", &points).contains("<polyline"));
        assert!(table("decline_evidence", &points, 1.0).contains("picked: 4"));
    }

    #[test]
    fn a_decline_never_reaching_the_threshold_is_missed() {
        let s = series(&[("down", &[0.0; 20])]);
        let truth =
            vec![Truth { id: "down".into(), kind: "slide".into(), at_risk: true, onset: Some(day(1)), leave: vec![] }];
        let p = &curve(&s, &truth, &[1.0], day(19))[0];
        assert_eq!((p.caught, p.declines, p.median_delay), (0, 1, Some(Lead::Missed)));
    }
}
