//! Who an alert names: the users a pass's metrics name (lapsed regular users) are labelled from
//! their identify traits ("acct-7-u3 (Ana Lee <ana@x.example>, 9 days)"), so a CSM knows whom to
//! call without looking the id up. Only the users named are looked up, and only their rows'
//! `lapsed_users` is written again: a pass with nobody lapsed reads nothing more.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::sink::AlertSink;
use super::Evaluator;
use crate::model::book::Closures;
use crate::model::people::{describe, label, Lapse, NAMED_MAX};
use crate::model::{lapses, AccountInputs, MetricsRow};
use crate::AggregatorError;

impl<S: AlertSink> Evaluator<S> {
    /// Names the users `rows` name (lapsed regular users, `rows[i]` computed from `inputs[i]`)
    /// with the name and email of their identify traits, where they have any.
    pub(super) async fn name_users(
        &self,
        inputs: &[AccountInputs],
        rows: &mut [MetricsRow],
        closures: Closures,
        now: DateTime<Utc>,
    ) -> Result<(), AggregatorError> {
        let named: Vec<(usize, Vec<Lapse>)> = rows
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.lapsed_users.is_empty())
            .map(|(i, _)| (i, lapses(&inputs[i], now, closures)))
            .collect();
        let mut users: Vec<String> =
            named.iter().flat_map(|(_, l)| l.iter().take(NAMED_MAX).map(|l| l.user.clone())).collect();
        users.sort_unstable();
        users.dedup();
        let traits = self.store.user_traits(&users).await?;
        if traits.is_empty() {
            return Ok(());
        }
        for (i, lapsed) in named {
            let labels: HashMap<String, String> = lapsed
                .iter()
                .take(NAMED_MAX)
                .filter_map(|l| Some((l.user.clone(), label(traits.get(&l.user)?)?)))
                .collect();
            if !labels.is_empty() {
                rows[i].lapsed_users = describe(&lapsed, NAMED_MAX, &labels);
            }
        }
        Ok(())
    }
}
