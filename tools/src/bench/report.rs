//! The bench's result: absolute figures, the limit each is compared with (measured in the same
//! run), the ratio, and the target from the issue — printed as one table.

use std::fmt::Write;
use std::time::Duration;

use super::load::{quantile, Latency};
use super::procs::Usage;
use super::Rate;

#[derive(Debug, Default)]
pub struct Report {
    /// A smoke run: the checks count, the figures do not.
    pub smoke: bool,
    pub raw_produce: Option<Rate>,
    pub raw_consume: Option<Rate>,
    pub raw_insert: Option<Rate>,
    pub ingest_batches: Option<Rate>,
    /// 503/429 answers during the batch phase (retried, so every event still counted once).
    pub ingest_refusals: u64,
    /// (CPU seconds, events) of ingest during the batch phase.
    pub ingest_cpu: Option<(f64, usize)>,
    pub aggregator: Option<Rate>,
    pub aggregator_cpu: Option<(f64, usize)>,
    pub latency: Vec<Latency>,
    /// The raw producer on the same single-event schedule, at the listed rates.
    pub raw_latency: Vec<Latency>,
    /// Per probe: ingest's 200 → row in account_metrics (Duration::MAX: never seen).
    pub e2e: Vec<Duration>,
    /// Per probe: ingest's 200 → its event stored in `events` (consumed, batched, inserted).
    pub e2e_stored: Vec<Duration>,
    /// The aggregator's evaluation passes and event inserts during the end-to-end phase:
    /// (seconds in total, how many), from its `/metrics` histograms.
    pub e2e_passes: Option<(f64, u64)>,
    pub e2e_inserts: Option<(f64, u64)>,
    /// Per book size: the pass's duration and its phases.
    pub evaluation: Vec<(usize, Duration, aggregator::PassTimings)>,
    /// The history cases, in order (`bench/history.rs`).
    pub history: Vec<super::history::Measured>,
    /// The console's pages on the largest evaluation book (`bench/console.rs`).
    pub console: Vec<super::console::PageTimes>,
    pub ingest_usage: Usage,
    pub aggregator_usage: Usage,
}

struct Line {
    figure: String,
    value: String,
    limit: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

fn rate(r: &Rate) -> String {
    format!("{:.0}/s", r.per_sec())
}

fn ms(d: Duration) -> String {
    if d == Duration::MAX {
        "never".into()
    } else if d < Duration::from_millis(10) {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.0} ms", d.as_secs_f64() * 1e3)
    }
}

impl Report {
    fn lines(&self) -> Vec<Line> {
        let mut out = Vec::new();
        let mut push =
            |figure: &str, value: String, limit: String, ratio: Option<f64>, target: &str, met: Option<bool>| {
                out.push(Line {
                    figure: figure.into(),
                    value,
                    limit,
                    ratio: ratio.map_or(String::new(), |r| format!("{r:.2}")),
                    target: target.into(),
                    met,
                })
            };
        if let (Some(p), Some(c), Some(i)) = (&self.raw_produce, &self.raw_consume, &self.raw_insert) {
            push("raw producer (rdkafka → broker)", rate(p), "limit".into(), None, "", None);
            push("raw consumer (broker → rdkafka)", rate(c), "limit".into(), None, "", None);
            push("raw ClickHouse insert (RowBinary)", rate(i), "limit".into(), None, "", None);
            if let Some(b) = &self.ingest_batches {
                let ratio = b.per_sec() / p.per_sec();
                push(
                    "ingest batches (500/request)",
                    rate(b),
                    format!("{} raw producer", rate(p)),
                    Some(ratio),
                    "≥ 0.90",
                    Some(ratio >= 0.9),
                );
            }
            if let Some(a) = &self.aggregator {
                let limit = c.per_sec().min(i.per_sec());
                let ratio = a.per_sec() / limit;
                push(
                    "aggregator Kafka → ClickHouse",
                    rate(a),
                    format!("{limit:.0}/s min(consumer, insert)"),
                    Some(ratio),
                    "≥ 0.90",
                    Some(ratio >= 0.9),
                );
            }
        }
        for (name, cpu, target) in
            [("ingest CPU per event", self.ingest_cpu, 3.0), ("aggregator CPU per event", self.aggregator_cpu, 3.0)]
        {
            if let Some((secs, events)) = cpu {
                let us = secs * 1e6 / events.max(1) as f64;
                push(
                    name,
                    format!("{us:.1} µs"),
                    format!("{secs:.1} CPU s / {events} events"),
                    None,
                    &format!("≤ {target} µs"),
                    Some(us <= target),
                );
            }
        }
        for l in &self.latency {
            let met = (l.target == 5_000).then(|| l.p99 < Duration::from_millis(10));
            let raw = self.raw_latency.iter().find(|raw| raw.target == l.target);
            if let Some(raw) = raw {
                push(
                    &format!("raw producer, one event per send @ {}/s p50 / p99", raw.target),
                    format!("{} / {}", ms(raw.p50), ms(raw.p99)),
                    format!("{:.0}/s acknowledged, {} errors", raw.achieved, raw.errors),
                    None,
                    "",
                    None,
                );
            }
            push(
                &format!("single event @ {} req/s p50 / p99", l.target),
                format!("{} / {}", ms(l.p50), ms(l.p99)),
                match raw {
                    Some(_) => format!("{:.0} req/s achieved, {} errors; p99 vs raw producer", l.achieved, l.errors),
                    None => format!("{:.0} req/s achieved, {} errors", l.achieved, l.errors),
                },
                raw.map(|raw| l.p99.as_secs_f64() / raw.p99.as_secs_f64().max(1e-9)),
                if l.target == 5_000 { "p99 < 10 ms" } else { "" },
                met,
            );
        }
        if let Some(best) = self.latency.iter().filter(|l| l.sustained()).max_by_key(|l| l.target) {
            push(
                "max sustained single-event rate",
                format!("{} req/s", best.target),
                format!("≥ 95 % on schedule, no errors, p99 {} (< 1 s)", ms(best.p99)),
                None,
                "",
                None,
            );
        }
        if !self.e2e.is_empty() {
            let (p50, p99) = (quantile(&self.e2e, 0.5), quantile(&self.e2e, 0.99));
            push(
                "end to end (200 → account_metrics) p50 / p99",
                format!("{} / {}", ms(p50), ms(p99)),
                format!("{} probes", self.e2e.len()),
                None,
                "p99 < 1 s",
                Some(p99 < Duration::from_secs(1)),
            );
        }
        if !self.e2e_stored.is_empty() {
            let (p50, p99) = (quantile(&self.e2e_stored, 0.5), quantile(&self.e2e_stored, 0.99));
            let mean = |t: Option<(f64, u64)>| {
                t.map_or("?".into(), |(secs, n)| {
                    format!("{n} × {}", ms(Duration::from_secs_f64(secs / n.max(1) as f64)))
                })
            };
            push(
                "  of which 200 → events row p50 / p99",
                format!("{} / {}", ms(p50), ms(p99)),
                format!("inserts {}, evaluation passes {} (mean)", mean(self.e2e_inserts), mean(self.e2e_passes)),
                None,
                "",
                None,
            );
        }
        for (accounts, took, t) in &self.evaluation {
            let met = (*accounts == 100_000).then(|| *took < Duration::from_secs(10));
            push(
                &format!("evaluation pass, {accounts} accounts"),
                ms(*took),
                format!(
                    "queries {}, metrics {}, insert {}, rules + alerts {}",
                    ms(t.queries),
                    ms(t.compute),
                    ms(t.insert),
                    ms(t.rules)
                ),
                None,
                if *accounts == 100_000 { "< 10 s" } else { "" },
                met,
            );
        }
        self.history_lines(&mut push);
        for (i, p) in self.console.iter().enumerate() {
            // The figure is the first page (the book) on 10,000 accounts.
            let target = i == 0 && p.accounts == 10_000;
            push(
                &format!("console: {}, {} accounts, p50 / p95", p.page, p.accounts),
                format!("{} / {}", ms(p.p50()), ms(p.p95())),
                format!("{} requests, {} KB of HTML, loopback HTTP", p.times.len(), p.bytes / 1024),
                None,
                if target { "p95 < 300 ms" } else { "" },
                target.then(|| p.p95() < Duration::from_millis(300)),
            );
        }
        let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
        let (i, a) = (mb(self.ingest_usage.peak_rss), mb(self.aggregator_usage.peak_rss));
        // Zero when the service did not run (`--only-evaluation`; `--latency` starts no aggregator).
        if i > 0.0 {
            push("peak RSS ingest", format!("{i:.0} MB"), String::new(), None, "≤ 64 MB", Some(i <= 64.0));
        }
        if a > 0.0 {
            push("peak RSS aggregator", format!("{a:.0} MB"), String::new(), None, "≤ 256 MB", Some(a <= 256.0));
        }
        out
    }

    /// One row per history case: the pass (the slowest owner's when split), its phases, and for
    /// longer histories the ratio to the 30-day pass over as many accounts (flat = 1).
    fn history_lines(&self, push: &mut impl FnMut(&str, String, String, Option<f64>, &str, Option<bool>)) {
        let base = |accounts: usize| {
            self.history.iter().find(|m| m.case.accounts == accounts && m.case.days == 30 && m.case.owners == 1)
        };
        for m in &self.history {
            let c = m.case;
            let took = m.slowest();
            let (_, evaluated, t) = m.passes.iter().max_by_key(|p| p.0).cloned().unwrap_or_default();
            let book = match m.fill {
                d if d.is_zero() => "the book above".to_owned(),
                d => format!("book written in {:.0} s", d.as_secs_f64()),
            };
            let phases = format!(
                "{evaluated} accounts: queries {}, metrics {}, insert {}, rules + alerts {}{}; {book}",
                ms(t.queries),
                ms(t.compute),
                ms(t.insert),
                ms(t.rules),
                // The bench's own peak is the pass's only in a process that ran nothing before
                // (`--only-evaluation`): the allocator keeps what earlier phases freed.
                match self.ingest_usage.peak_rss {
                    0 => format!("; peak RSS {:.0} MB", m.peak_rss as f64 / (1024.0 * 1024.0)),
                    _ => String::new(),
                },
            );
            let ratio = base(c.accounts)
                .filter(|b| b.case.days != c.days)
                .map(|b| took.as_secs_f64() / b.slowest().as_secs_f64());
            let (figure, target, met) = if c.owners > 1 {
                let each: Vec<String> = m.passes.iter().map(|p| ms(p.0)).collect();
                (
                    format!(
                        "evaluation pass, {} accounts × {} days, {} owners (slowest; {})",
                        c.accounts,
                        c.days,
                        c.owners,
                        each.join(" / ")
                    ),
                    "each < 30 s",
                    (c.accounts >= 1_000_000).then(|| took < Duration::from_secs(30)),
                )
            } else if c.accounts >= 100_000 && c.days >= 365 {
                (
                    format!("evaluation pass, {} accounts × {} days", c.accounts, c.days),
                    "< 10 s, ≤ 1.5× 30 days",
                    Some(took < Duration::from_secs(10) && ratio.is_some_and(|r| r <= 1.5)),
                )
            } else {
                (format!("evaluation pass, {} accounts × {} days", c.accounts, c.days), "", None)
            };
            push(&figure, ms(took), phases, ratio, target, met);
            if let Some((took, accounts, _)) = m.incremental {
                push(
                    &format!("  next pass (incremental), {} accounts × {} days", c.accounts, c.days),
                    ms(took),
                    format!("{accounts} accounts: 1 % sent events since the last pass, plus those with a rule's clock running"),
                    None,
                    "",
                    None,
                );
            }
        }
    }

    /// The table, as printed by `bench` and pasted into docs/BENCHMARKS.md (Markdown).
    pub fn table(&self) -> String {
        let mut s = String::new();
        if self.smoke {
            s.push_str(
                "(smoke run: every phase ran and every event arrived; the figures of so small a run mean nothing)\n\n",
            );
        }
        s.push_str("| figure | value | limit / context | ratio | target | |\n|---|---:|---|---:|---|---|\n");
        for l in self.lines() {
            let verdict = match l.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "",
            };
            let _ =
                writeln!(s, "| {} | {} | {} | {} | {} | {} |", l.figure, l.value, l.limit, l.ratio, l.target, verdict);
        }
        if self.ingest_refusals > 0 {
            let _ = writeln!(s, "\n{} batch requests were refused (503/429) and retried.", self.ingest_refusals);
        }
        s
    }
}
