//! Recorded outcomes: an account churned, renewed or contracted. They are the ground truth the
//! scored backtest measures the rules against (docs/analysts.md#scoring-rules-against-outcomes).
//!
//! An outcome arrives as a native `outcome` event, as a Segment track whose name is in the
//! outcome mapping ("Account Churned", "Subscription Renewed"…), or as an account trait
//! (`churned_at`, `renewed_at`, `contracted_at`) on a `group` call or native `account` event.

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::FieldError;

/// What happened to the account at the end of (part of) its contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Churned,
    Renewed,
    Contracted,
    /// At risk and turned around by its CSM (closing an alert as "saved" in the console).
    Saved,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Self::Churned, Self::Renewed, Self::Contracted, Self::Saved];

    /// The wire name (native API, topic, ClickHouse `outcome` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Churned => "churned",
            Self::Renewed => "renewed",
            Self::Contracted => "contracted",
            Self::Saved => "saved",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The account trait that records this outcome's date.
    pub fn trait_name(self) -> &'static str {
        match self {
            Self::Churned => "churned_at",
            Self::Renewed => "renewed_at",
            Self::Contracted => "contracted_at",
            Self::Saved => "saved_at",
        }
    }

    /// Churned and contracted are what the rules exist to catch: lost or shrunk revenue.
    pub fn is_loss(self) -> bool {
        matches!(self, Self::Churned | Self::Contracted)
    }
}

/// A date as an outcome trait holds it: `YYYY-MM-DD`, or an RFC 3339 date-time (its UTC date).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.naive_utc().date()))
}

/// The outcomes an account's traits record (`churned_at`…), in [`Outcome::ALL`] order. A null
/// or absent trait records nothing; any other value that is not a date is an error naming the
/// trait (`traits.churned_at`), so a typo is refused at ingest rather than silently ignored.
pub fn trait_outcomes(traits: &Map<String, Value>) -> Result<Vec<(Outcome, NaiveDate)>, Vec<FieldError>> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for outcome in Outcome::ALL {
        match traits.get(outcome.trait_name()) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if parse_date(s).is_some() => {
                found.push((outcome, parse_date(s).expect("checked")));
            }
            Some(_) => errors.push(FieldError::new(
                format!("traits.{}", outcome.trait_name()),
                "must be a date: YYYY-MM-DD or an RFC 3339 date-time",
            )),
        }
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn names_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::to_value(o).unwrap(), json!(o.as_str()));
        }
        assert_eq!(Outcome::parse("Churned"), None);
        assert!(Outcome::Churned.is_loss() && Outcome::Contracted.is_loss() && !Outcome::Renewed.is_loss());
    }

    #[test]
    fn traits_record_outcomes_as_dates_or_date_times() {
        let traits = json!({"plan": "pro", "churned_at": "2026-05-01", "renewed_at": null,
                            "contracted_at": "2026-04-30T23:30:00-02:00"});
        assert_eq!(
            trait_outcomes(traits.as_object().unwrap()).unwrap(),
            [(Outcome::Churned, d("2026-05-01")), (Outcome::Contracted, d("2026-05-01"))],
            "a date-time counts on its UTC date"
        );
        assert_eq!(trait_outcomes(json!({"seats": 3}).as_object().unwrap()).unwrap(), []);
    }

    #[test]
    fn a_trait_that_is_not_a_date_names_itself() {
        let errors = trait_outcomes(json!({"churned_at": "last week", "renewed_at": 20260501}).as_object().unwrap())
            .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["traits.churned_at", "traits.renewed_at"]);
        assert!(errors[0].reason.contains("YYYY-MM-DD"));
    }
}
