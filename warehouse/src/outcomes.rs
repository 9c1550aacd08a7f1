//! Recorded outcomes (an account churned, renewed or contracted), the ground truth of the scored
//! backtest: `outcome` events through the `account_outcomes` view (migration 008), and the
//! `churned_at` / `renewed_at` / `contracted_at` dates of each account's latest traits.

use chrono::{DateTime, NaiveDate};
use clickhouse::Row;
use schemas::outcome::{trait_outcomes, Outcome};
use serde::{Deserialize, Serialize};

use crate::{Warehouse, WarehouseError};

/// Where an outcome was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeSource {
    /// An `outcome` event (native, or a mapped Segment track).
    Event,
    /// An account trait (`churned_at`…) of the account's latest traits.
    Trait,
}

/// One account's outcome on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RecordedOutcome {
    pub account_id: String,
    pub outcome: Outcome,
    pub on: NaiveDate,
    pub from: OutcomeSource,
}

#[derive(Debug, Row, Deserialize)]
struct EventOutcomeRow {
    account_id: String,
    outcome: String,
    occurred_at: u32,
}

#[derive(Debug, Row, Deserialize)]
struct TraitsRow {
    account_id: String,
    traits: String,
}

impl Warehouse {
    /// Every recorded outcome, one per account, outcome and day, sorted by account, day and
    /// outcome. An outcome both sent as an event and set as a trait on the same day is counted
    /// once, as the event. Unreadable trait values (stored before ingest validated them) are skipped.
    pub async fn outcomes(&self) -> Result<Vec<RecordedOutcome>, WarehouseError> {
        let events: Vec<EventOutcomeRow> = self
            .query("SELECT account_id, outcome, toUInt32(occurred_at) AS occurred_at FROM {db}.account_outcomes")
            .fetch_all()
            .await?;
        // The latest traits per account, as the evaluator reads them (argMax, no FINAL needed).
        let traits: Vec<TraitsRow> = self
            .query("SELECT account_id, argMax(traits, updated_at) AS traits FROM {db}.accounts GROUP BY account_id")
            .fetch_all()
            .await?;
        let from_events = events.into_iter().filter_map(|r| {
            let on = DateTime::from_timestamp(i64::from(r.occurred_at), 0)?.date_naive();
            Some(RecordedOutcome {
                account_id: r.account_id,
                outcome: Outcome::parse(&r.outcome)?,
                on,
                from: OutcomeSource::Event,
            })
        });
        let from_traits = traits.into_iter().flat_map(|r| {
            let map = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&r.traits).unwrap_or_default();
            let found = trait_outcomes(&map).unwrap_or_default();
            found.into_iter().map(move |(outcome, on)| RecordedOutcome {
                account_id: r.account_id.clone(),
                outcome,
                on,
                from: OutcomeSource::Trait,
            })
        });
        Ok(merge(from_events.chain(from_traits)))
    }
}

/// Sorted, one per (account, outcome, day); an event wins over a trait (it sorts first).
fn merge(all: impl IntoIterator<Item = RecordedOutcome>) -> Vec<RecordedOutcome> {
    let mut all: Vec<RecordedOutcome> = all.into_iter().collect();
    all.sort_by(|a, b| (&a.account_id, a.on, a.outcome, a.from).cmp(&(&b.account_id, b.on, b.outcome, b.from)));
    all.dedup_by(|b, a| (&a.account_id, a.outcome, a.on) == (&b.account_id, b.outcome, b.on));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(account: &str, outcome: Outcome, on: &str, from: OutcomeSource) -> RecordedOutcome {
        RecordedOutcome { account_id: account.into(), outcome, on: on.parse().unwrap(), from }
    }

    #[test]
    fn one_outcome_per_account_outcome_and_day_the_event_first() {
        use Outcome::*;
        use OutcomeSource::*;
        let merged = merge([
            o("b", Renewed, "2026-05-01", Trait),
            o("a", Churned, "2026-05-02", Trait),
            o("a", Churned, "2026-05-02", Event),
            o("a", Churned, "2026-05-02", Event),
            o("a", Churned, "2026-04-02", Trait),
            o("a", Contracted, "2026-05-02", Trait),
        ]);
        assert_eq!(
            merged,
            [
                o("a", Churned, "2026-04-02", Trait),
                o("a", Churned, "2026-05-02", Event),
                o("a", Contracted, "2026-05-02", Trait),
                o("b", Renewed, "2026-05-01", Trait),
            ]
        );
    }
}
