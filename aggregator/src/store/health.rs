//! The daily health history (`account_health_daily`): one row per account per day, written with
//! every `account_metrics` row, so a CSM sees "85 three weeks ago, 60 today" and rules can read
//! how far an account's health fell (`health_change_14d`).

use std::collections::HashMap;

use chrono::NaiveDate;

use warehouse::rows::HealthDayRow;

use super::Store;
use crate::model::MetricsRow;
use crate::AggregatorError;

impl From<&MetricsRow> for HealthDayRow {
    fn from(m: &MetricsRow) -> Self {
        Self {
            account_id: m.account_id.clone(),
            day: m.as_of,
            computed_at: m.computed_at,
            lifecycle_stage: m.lifecycle_stage.as_str().to_owned(),
            health_score: m.health_score,
            health_band: m.health_band.clone(),
            health_deployment: m.health_deployment,
            health_adoption: m.health_adoption,
            health_trend: m.health_trend,
            health_value: m.health_value,
            health_experience: m.health_experience,
            health_weakest: m.health_weakest.clone(),
            health_cap: m.health_cap.clone(),
            active_users_7d: m.active_users_7d,
            active_users_30d: m.active_users_30d,
            active_user_days_7d: m.active_user_days_7d,
            active_user_days_vs_baseline: m.active_user_days_vs_baseline,
            logins_7d: m.logins_7d,
            features_used_30d: m.features_used_30d,
            records_30d: m.records_30d,
            seat_utilisation: m.seat_utilisation,
            days_since_last_activity: m.days_since_last_activity,
            latest_nps: m.latest_nps,
            open_tickets: m.open_tickets,
        }
    }
}

impl Store {
    /// Records the day's health of every row (the latest pass of a day replaces earlier ones).
    pub async fn write_health_history(&self, rows: &[MetricsRow]) -> Result<(), AggregatorError> {
        let history: Vec<HealthDayRow> = rows.iter().map(HealthDayRow::from).collect();
        Ok(self.insert_rows(&history).await?)
    }

    /// Each account's health score on `day` (the day's last pass), where one was computed.
    pub async fn health_on(&self, day: NaiveDate) -> Result<HashMap<String, f64>, AggregatorError> {
        let sql = "SELECT account_id, argMax(health_score, computed_at) AS score FROM {db}.account_health_daily
             WHERE day = toDate(?, 'UTC') GROUP BY account_id";
        let rows: Vec<(String, Option<f64>)> =
            self.query(sql).bind(day.format("%Y-%m-%d").to_string()).fetch_all().await?;
        Ok(rows.into_iter().filter_map(|(a, s)| Some((a, s?))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::date_number;

    #[test]
    fn a_history_row_copies_the_days_health() {
        let m = MetricsRow {
            account_id: "acme".into(),
            as_of: date_number(NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()),
            health_score: Some(61.5),
            health_band: "yellow".into(),
            health_cap: "falling_usage".into(),
            active_user_days_7d: 40,
            ..Default::default()
        };
        let h = HealthDayRow::from(&m);
        assert_eq!((h.account_id.as_str(), h.health_score, h.health_band.as_str()), ("acme", Some(61.5), "yellow"));
        assert_eq!((h.health_cap.as_str(), h.active_user_days_7d), ("falling_usage", 40));
        assert_eq!(h.day, date_number(NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()));
    }
}
