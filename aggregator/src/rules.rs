//! Churn-risk rules over an account's rolling metrics. A rule looks at one [`MetricsRow`] and
//! either finds a risk — with the values it used and a sentence a CSM understands — or not.

use std::collections::BTreeMap;

use crate::config::ActiveUsersDropRule;
use crate::account::MetricsRow;

/// Rule id of [`active_users_drop`].
pub const ACTIVE_USERS_DROP: &str = "active_users_drop";

/// What a rule found about one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub metrics: BTreeMap<String, f64>,
    pub reason: String,
}

/// The metric values [`active_users_drop`] reads, for its findings and its resolutions alike.
pub fn active_users_values(m: &MetricsRow) -> BTreeMap<String, f64> {
    let mut values = BTreeMap::from([
        ("active_users_7d".to_owned(), m.active_users_7d as f64),
        ("active_users_prev_7d".to_owned(), m.active_users_prev_7d as f64),
    ]);
    if let Some(change) = m.active_users_change_7d {
        values.insert("active_users_change_7d".to_owned(), change);
    }
    values
}

/// Weekly active users fell by at least `rule.drop_pct` % against the account's own previous
/// 7 days — usage fading is the earliest churn signal. Silent for accounts that had fewer than
/// `min_previous_users` users, where one person's holiday is a 50 % swing.
pub fn active_users_drop(rule: &ActiveUsersDropRule, m: &MetricsRow) -> Option<Finding> {
    if !rule.enabled || m.active_users_prev_7d < rule.min_previous_users.max(1) {
        return None;
    }
    let change = m.active_users_change_7d?;
    if change > -rule.drop_pct {
        return None;
    }
    Some(Finding {
        metrics: active_users_values(m),
        reason: format!(
            "Weekly active users fell {:.0} % ({} → {}) vs the previous 7 days",
            -change, m.active_users_prev_7d, m.active_users_7d
        ),
    })
}

/// Percentage change from `previous` to `current`; `None` when there is no previous base.
pub fn change_pct(previous: u64, current: u64) -> Option<f64> {
    (previous > 0).then(|| (current as f64 - previous as f64) * 100.0 / previous as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(prev: u64, cur: u64) -> MetricsRow {
        MetricsRow {
            account_id: "acme".into(),
            active_users_7d: cur,
            active_users_prev_7d: prev,
            active_users_change_7d: change_pct(prev, cur),
            ..Default::default()
        }
    }

    #[test]
    fn fires_at_the_threshold_and_explains_itself() {
        let rule = ActiveUsersDropRule::default(); // 50 %, at least 3 previous users
        let f = active_users_drop(&rule, &row(6, 3)).expect("a 50 % drop fires");
        assert_eq!(f.reason, "Weekly active users fell 50 % (6 → 3) vs the previous 7 days");
        assert_eq!(f.metrics["active_users_change_7d"], -50.0);
        assert_eq!(f.metrics["active_users_prev_7d"], 6.0);
        assert!(active_users_drop(&rule, &row(6, 4)).is_none(), "a 33 % drop is below 50 %");
        assert!(active_users_drop(&rule, &row(10, 11)).is_none(), "growth never fires");
    }

    #[test]
    fn small_accounts_and_new_accounts_stay_silent() {
        let rule = ActiveUsersDropRule::default();
        assert!(active_users_drop(&rule, &row(2, 0)).is_none(), "2 → 0 is below min_previous_users");
        assert!(active_users_drop(&rule, &row(0, 5)).is_none(), "no previous week");
        let off = ActiveUsersDropRule { enabled: false, ..rule };
        assert!(active_users_drop(&off, &row(10, 0)).is_none());
    }

    #[test]
    fn change_is_relative_to_the_previous_period() {
        assert_eq!(change_pct(4, 1), Some(-75.0));
        assert_eq!(change_pct(4, 6), Some(50.0));
        assert_eq!(change_pct(0, 6), None);
    }
}
