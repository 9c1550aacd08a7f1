//! Server-rendered SVG charts: a sparkline per book row, line charts on the account page. Plain
//! SVG with CSS classes (colours live in the stylesheet), readable without JavaScript, scaled
//! by the browser to any screen width (`viewBox`).

use chrono::{Datelike, NaiveDate};
use maud::{html, Markup};

/// A day as ClickHouse's `toUInt16(day)` gives it: days since 1970-01-01.
pub fn date_of(day: u16) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(719_163 + i32::from(day)).unwrap_or_default()
}

pub fn day_number(date: NaiveDate) -> u16 {
    (date.num_days_from_ce() - 719_163).clamp(0, i32::from(u16::MAX)) as u16
}

/// One line of a chart.
pub struct Series<'a> {
    pub label: &'a str,
    /// CSS class of the line (`line-score`, `line-users`…).
    pub class: &'a str,
    /// (day, value); days without a value are gaps.
    pub points: Vec<(u16, f64)>,
}

/// What a chart draws besides its lines.
#[derive(Default)]
pub struct Frame<'a> {
    /// Element id (tests and anchors).
    pub id: &'a str,
    pub title: &'a str,
    pub first_day: u16,
    pub last_day: u16,
    /// The top of the y axis; `None`: the largest value (at least 1).
    pub y_max: Option<f64>,
    /// Health band thresholds (red below, green from), drawn as shaded bands.
    pub bands: Option<(f64, f64)>,
    /// A dashed horizontal reference (the account's usual), with its label.
    pub reference: Option<(f64, &'a str)>,
    /// Mark every point of the first series (`circle.point` with `data-day`, `data-score`).
    pub marks: bool,
}

const W: f64 = 640.0;
const H: f64 = 200.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// A line chart of `series` over the frame's days.
pub fn line_chart(frame: &Frame<'_>, series: &[Series<'_>]) -> Markup {
    let span = f64::from(frame.last_day.saturating_sub(frame.first_day).max(1));
    let data_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0_f64, f64::max);
    let y_max = frame.y_max.unwrap_or_else(|| data_max.max(frame.reference.map_or(0.0, |r| r.0)).max(1.0) * 1.1);
    let x = |day: u16| LEFT + f64::from(day.saturating_sub(frame.first_day)) / span * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - (v / y_max).clamp(0.0, 1.0)) * (H - TOP - BOTTOM);
    let ticks = [0.0, y_max / 2.0, y_max];
    html! {
        figure.chart {
            figcaption { (frame.title) }
            svg id=(frame.id) viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(frame.title) {
                @if let Some((red_below, green_from)) = frame.bands {
                    rect.band-red x=(LEFT) y=(y(red_below)) width=(W - LEFT - RIGHT) height=(y(0.0) - y(red_below)) {}
                    rect.band-yellow x=(LEFT) y=(y(green_from)) width=(W - LEFT - RIGHT) height=(y(red_below) - y(green_from)) {}
                    rect.band-green x=(LEFT) y=(y(y_max)) width=(W - LEFT - RIGHT) height=(y(green_from) - y(y_max)) {}
                }
                @for t in ticks {
                    line.grid x1=(LEFT) x2=(W - RIGHT) y1=(y(t)) y2=(y(t)) {}
                    text.tick x=(LEFT - 4.0) y=(y(t) + 4.0) text-anchor="end" { (short(t)) }
                }
                text.tick x=(LEFT) y=(H - 6.0) { (date_of(frame.first_day).format("%b %-d")) }
                text.tick x=(W - RIGHT) y=(H - 6.0) text-anchor="end" { (date_of(frame.last_day).format("%b %-d")) }
                @if let Some((value, label)) = frame.reference {
                    line.reference x1=(LEFT) x2=(W - RIGHT) y1=(y(value)) y2=(y(value)) {}
                    text.reference-label x=(W - RIGHT - 2.0) y=(y(value) - 4.0) text-anchor="end" { (label) " " (short(value)) }
                }
                @for s in series {
                    @for run in runs(&s.points) {
                        polyline class=(s.class) points=(run.iter().map(|(d, v)| format!("{:.1},{:.1}", x(*d), y(*v))).collect::<Vec<_>>().join(" ")) {}
                    }
                }
                @if frame.marks {
                    @if let Some(s) = series.first() {
                        @for (d, v) in &s.points {
                            circle.point cx=(format!("{:.1}", x(*d))) cy=(format!("{:.1}", y(*v))) r="2.5"
                                data-day=(date_of(*d)) data-score=(format!("{v:.1}")) {
                                title { (date_of(*d)) ": " (format!("{v:.0}")) }
                            }
                        }
                    }
                }
            }
            @if series.len() > 1 || frame.reference.is_some() {
                p.legend {
                    @for s in series { span class=(format!("key {}", s.class)) { (s.label) } " " }
                }
            }
        }
    }
}

/// A 30-day health sparkline for a book row; `band` colours it.
pub fn sparkline(points: &[(u16, f64)], first_day: u16, last_day: u16, band: &str) -> Markup {
    const SW: f64 = 100.0;
    const SH: f64 = 24.0;
    let span = f64::from(last_day.saturating_sub(first_day).max(1));
    let x = |d: u16| f64::from(d.saturating_sub(first_day)) / span * SW;
    let y = |v: f64| 1.0 + (1.0 - (v / 100.0).clamp(0.0, 1.0)) * (SH - 2.0);
    html! {
        svg.spark viewBox=(format!("0 0 {SW} {SH}")) preserveAspectRatio="none" role="img"
            aria-label=(format!("health over 30 days, {} points", points.len())) {
            @for run in runs(points) {
                polyline class=(format!("spark-{}", if band.is_empty() { "none" } else { band }))
                    points=(run.iter().map(|(d, v)| format!("{:.1},{:.1}", x(*d), y(*v))).collect::<Vec<_>>().join(" ")) {}
            }
        }
    }
}

/// Consecutive-day runs of points: a missing day breaks the line rather than bridging it.
fn runs(points: &[(u16, f64)]) -> Vec<Vec<(u16, f64)>> {
    let mut out: Vec<Vec<(u16, f64)>> = Vec::new();
    for &(d, v) in points {
        match out.last_mut() {
            Some(run) if run.last().is_some_and(|(pd, _)| d == pd + 1) => run.push((d, v)),
            _ => out.push(vec![(d, v)]),
        }
    }
    // A single point draws nothing as a polyline: widen it to a short stub.
    out.into_iter().map(|r| if r.len() == 1 { vec![r[0], r[0]] } else { r }).collect()
}

/// 1234 → "1.2k": axis labels stay narrow.
pub fn short(v: f64) -> String {
    match v.abs() {
        a if a >= 1e6 => format!("{:.1}M", v / 1e6),
        a if a >= 1e3 => format!("{:.1}k", v / 1e3),
        a if a >= 10.0 || a == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.1}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        let d: NaiveDate = "2026-11-24".parse().unwrap();
        assert_eq!(date_of(day_number(d)), d);
        assert_eq!(date_of(0), "1970-01-01".parse::<NaiveDate>().unwrap());
    }

    #[test]
    fn a_gap_breaks_the_line_and_every_point_is_marked() {
        let frame = Frame {
            id: "h",
            title: "Health",
            first_day: 100,
            last_day: 110,
            y_max: Some(100.0),
            marks: true,
            ..Default::default()
        };
        let svg = line_chart(
            &frame,
            &[Series {
                label: "score",
                class: "line-score",
                points: vec![(100, 50.0), (101, 60.0), (105, 40.0), (106, 45.0)],
            }],
        )
        .into_string();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("class=\"point\"").count(), 4);
        assert!(svg.contains("data-day=\"1970-04-16\""), "{svg}");
        assert!(svg.contains("data-score=\"40.0\""));
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(short(1234.0), "1.2k");
        assert_eq!(short(5.25), "5.2");
        assert_eq!(short(42.0), "42");
    }
}
