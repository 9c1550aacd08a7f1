//! The console's Prometheus metrics, served on its admin listener (`admin_listen`), never on the
//! CSM-facing port: sign-ins by outcome, so an operator hears of a password-guessing run
//! (`UptakeConsoleSignInFailures` in deploy/prometheus/uptake-alerts.yml). No user name or
//! address is ever a label.

use prometheus::{IntCounterVec, Opts, Registry};

pub struct Telemetry {
    registry: Registry,
    /// Sign-in attempts by outcome: `ok`, `refused` (wrong name or password), `blocked` (over
    /// the attempts allowed per name or address).
    pub sign_ins: IntCounterVec,
}

impl Telemetry {
    pub fn new() -> Self {
        let registry = Registry::new();
        let sign_ins = IntCounterVec::new(
            Opts::new("uptake_console_sign_ins_total", "Password sign-in attempts, by outcome (ok, refused, blocked)"),
            &["outcome"],
        )
        .expect("a valid metric");
        registry.register(Box::new(sign_ins.clone())).expect("registered once");
        // At 0 from the start: a rate over a series born with the first failure misses it.
        for outcome in ["ok", "refused", "blocked"] {
            sign_ins.with_label_values(&[outcome]);
        }
        Self { registry, sign_ins }
    }

    pub fn render(&self) -> String {
        schemas::runtime::render_metrics(&self.registry)
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_is_exported_from_the_start() {
        let t = Telemetry::new();
        t.sign_ins.with_label_values(&["refused"]).inc();
        let text = t.render();
        assert!(text.contains("uptake_console_sign_ins_total{outcome=\"refused\"} 1"), "{text}");
        assert!(text.contains("uptake_console_sign_ins_total{outcome=\"blocked\"} 0"), "{text}");
    }
}
