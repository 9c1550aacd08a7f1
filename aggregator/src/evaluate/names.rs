//! Who an alert names: the users a pass's metrics name (lapsed regular users) are labelled from
//! their identify traits ("acct-7-u3 (Ana Lee <ana@x.example>, 9 days)"), so a CSM knows whom to
//! call without looking the id up. Only those users' traits are read, and only their accounts'
//! rows are computed again: a pass with nobody lapsed reads nothing more.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::sink::AlertSink;
use super::Evaluator;
use crate::model::book::Closures;
use crate::model::people::label;
use crate::model::{metrics_row, named_users, AccountInputs, MetricsRow};
use crate::AggregatorError;

impl<S: AlertSink> Evaluator<S> {
    /// Names the users the rows name (lapsed regular users) from their identify traits: the
    /// labels are looked up for those users only, and only their accounts' rows computed again.
    pub(super) async fn name_users(
        &self,
        inputs: &mut [AccountInputs],
        rows: &mut [MetricsRow],
        features: u64,
        closures: Closures,
        now: DateTime<Utc>,
    ) -> Result<(), AggregatorError> {
        let named: Vec<(usize, Vec<String>)> = rows
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.lapsed_users.is_empty())
            .map(|(i, _)| (i, named_users(&inputs[i], now, closures)))
            .collect();
        let mut users: Vec<String> = named.iter().flat_map(|(_, u)| u.iter().cloned()).collect();
        users.sort_unstable();
        users.dedup();
        let traits = self.store.user_traits(&users).await?;
        if traits.is_empty() {
            return Ok(());
        }
        let model = self.model(features, closures);
        for (i, users) in named {
            let labels: HashMap<String, String> =
                users.into_iter().filter_map(|u| Some((u.clone(), label(traits.get(&u)?)?))).collect();
            if !labels.is_empty() {
                inputs[i].user_labels = labels;
                rows[i] = metrics_row(&inputs[i], now, &model);
            }
        }
        Ok(())
    }
}
