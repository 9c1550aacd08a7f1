//! Lifecycle stage from contract dates (docs/architecture.md#the-customer-success-model).

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// onboarding = first `onboarding_days` after contract start; renewal = last `renewal_days`
/// before the renewal date (or past it); growth = in between. Stored and sent as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Stage {
    Onboarding,
    /// Also the stage of a row not yet computed.
    #[default]
    Growth,
    Renewal,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Self::Onboarding, Self::Growth, Self::Renewal];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Onboarding => "onboarding",
            Self::Growth => "growth",
            Self::Renewal => "renewal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl From<Stage> for &'static str {
    fn from(s: Stage) -> Self {
        s.as_str()
    }
}

impl TryFrom<String> for Stage {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("unknown stage {s:?}; expected onboarding, growth or renewal"))
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// Days from the contract start (else the first day the account was seen) an account is
    /// in onboarding.
    pub onboarding_days: i64,
    /// Days before the renewal date from which an account is in renewal (wins over onboarding).
    pub renewal_days: i64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self { onboarding_days: 90, renewal_days: 90 }
    }
}

/// The stage on `today`. Without a contract start, the first day the account was seen stands in
/// for it (a new account is onboarding whether or not its contract was sent).
pub fn stage(cfg: &LifecycleConfig, today: NaiveDate, start: Option<NaiveDate>, renewal: Option<NaiveDate>) -> Stage {
    if let Some(renewal) = renewal {
        if (renewal - today).num_days() <= cfg.renewal_days {
            return Stage::Renewal;
        }
    }
    match start {
        Some(start) if (today - start).num_days() < cfg.onboarding_days => Stage::Onboarding,
        _ => Stage::Growth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn stages_follow_the_contract_dates() {
        let cfg = LifecycleConfig::default();
        let today = d("2026-11-22");
        assert_eq!(stage(&cfg, today, Some(d("2026-10-01")), Some(d("2027-10-01"))), Stage::Onboarding);
        assert_eq!(stage(&cfg, today, Some(d("2026-08-24")), Some(d("2027-08-24"))), Stage::Growth, "day 90");
        assert_eq!(stage(&cfg, today, Some(d("2025-12-01")), Some(d("2027-02-20"))), Stage::Renewal, "90 days left");
        assert_eq!(stage(&cfg, today, Some(d("2025-12-01")), Some(d("2027-02-21"))), Stage::Growth, "91 days left");
        assert_eq!(stage(&cfg, today, None, Some(d("2026-11-01"))), Stage::Renewal, "past renewal");
        assert_eq!(stage(&cfg, today, None, None), Stage::Growth);
    }

    #[test]
    fn a_stage_is_its_name_in_json() {
        assert_eq!(serde_json::to_string(&Stage::Renewal).unwrap(), "\"renewal\"");
        assert_eq!(serde_json::from_str::<Stage>("\"onboarding\"").unwrap(), Stage::Onboarding);
        assert!(serde_json::from_str::<Stage>("\"trial\"")
            .unwrap_err()
            .to_string()
            .contains("unknown stage \"trial\""));
    }
}
