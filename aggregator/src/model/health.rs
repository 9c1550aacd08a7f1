//! The explainable health score: weighted components, each 0–100
//! (docs/architecture.md#the-customer-success-model).
//!
//! Health = outcome (deployment: seats in use; adoption: breadth of feature use; usage trend;
//! value: data accumulated) + experience (surveys, tickets). Outcome carries most of the weight,
//! so an account with great survey scores but fading use scores low.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::lifecycle::Stage;

/// The five components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Deployment,
    Adoption,
    Trend,
    Value,
    Experience,
}

impl Component {
    /// In the order the score visits them: at a tie in shortfall the earlier is the weakest.
    pub const ALL: [Component; 5] = [Self::Deployment, Self::Adoption, Self::Trend, Self::Value, Self::Experience];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::Adoption => "adoption",
            Self::Trend => "trend",
            Self::Value => "value",
            Self::Experience => "experience",
        }
    }
}

/// The component scores, each 0–100; `None` where the account gives no input.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Components {
    pub deployment: Option<f64>,
    pub adoption: Option<f64>,
    pub trend: Option<f64>,
    pub value: Option<f64>,
    pub experience: Option<f64>,
}

impl Components {
    pub fn of(&self, c: Component) -> Option<f64> {
        match c {
            Component::Deployment => self.deployment,
            Component::Adoption => self.adoption,
            Component::Trend => self.trend,
            Component::Value => self.value,
            Component::Experience => self.experience,
        }
    }
}

/// Weights of the components in one stage (any scale; they are normalised over the components
/// that have inputs). A stage's table replaces its default weights whole: give all five.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    /// Seats in use (MAU ÷ seats against `seat_utilisation_target`).
    pub deployment: f64,
    /// Breadth of feature use (against `feature_breadth_target`).
    pub adoption: f64,
    /// Active users against the account's own usual.
    pub trend: f64,
    /// Data accumulated in the product (records in 30 days).
    pub value: f64,
    /// Surveys and open support tickets.
    pub experience: f64,
}

impl Weights {
    pub fn of(&self, component: Component) -> f64 {
        match component {
            Component::Deployment => self.deployment,
            Component::Adoption => self.adoption,
            Component::Trend => self.trend,
            Component::Value => self.value,
            Component::Experience => self.experience,
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Seat utilisation (MAU ÷ seats) that scores 100 on deployment.
    pub seat_utilisation_target: f64,
    /// Feature breadth (features used in 30 days ÷ catalogue) that scores 100 on adoption.
    pub feature_breadth_target: f64,
    /// Points of the experience component lost per open support ticket.
    pub open_ticket_penalty: f64,
    /// Scores below this are red.
    pub red_below: f64,
    /// In onboarding, the seat and breadth targets grow linearly to their full value over
    /// this many days from the start (0: no ramp).
    pub onboarding_ramp_days: u32,
    /// The first days of onboarding in which seats and breadth are not scored yet.
    pub onboarding_grace_days: u32,
    /// No activity at all for this many days caps the score at `inactive_max_score` (red):
    /// nobody is using what they pay for, whatever the surveys or seats say.
    pub inactive_red_days: u32,
    /// The cap of an account inactive for `inactive_red_days`.
    pub inactive_max_score: f64,
    /// User-days this far below the account's usual (in %, e.g. −25) cap the score at
    /// `falling_usage_max_score` (yellow): a slide shows within about a week, and good
    /// seats, breadth or surveys cannot keep a fading account green.
    pub falling_usage_pct: f64,
    /// The cap of an account whose use fell by `falling_usage_pct`.
    pub falling_usage_max_score: f64,
    /// Scores from this up are green; between the two, yellow.
    pub green_from: f64,
    /// Component weights in onboarding: getting seats live and first features used. A table here must give all five
    /// weights.
    pub onboarding: Weights,
    /// Component weights in growth (between onboarding and renewal). A table here must give all five
    /// weights.
    pub growth: Weights,
    /// Component weights in the renewal window. A table here must give all five
    /// weights.
    pub renewal: Weights,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            seat_utilisation_target: 0.8,
            feature_breadth_target: 0.5,
            open_ticket_penalty: 10.0,
            red_below: 40.0,
            green_from: 70.0,
            onboarding_ramp_days: 60,
            onboarding_grace_days: 14,
            inactive_red_days: 14,
            inactive_max_score: 20.0,
            falling_usage_pct: -25.0,
            falling_usage_max_score: 60.0,
            // Onboarding is about getting seats live and first features used.
            onboarding: Weights { deployment: 0.35, adoption: 0.30, trend: 0.10, value: 0.15, experience: 0.10 },
            growth: Weights { deployment: 0.25, adoption: 0.25, trend: 0.25, value: 0.15, experience: 0.10 },
            // Near renewal, seats in use and momentum decide the conversation.
            renewal: Weights { deployment: 0.30, adoption: 0.20, trend: 0.25, value: 0.10, experience: 0.15 },
        }
    }
}

impl HealthConfig {
    pub fn weights(&self, stage: Stage) -> &Weights {
        match stage {
            Stage::Onboarding => &self.onboarding,
            Stage::Growth => &self.growth,
            Stage::Renewal => &self.renewal,
        }
    }

    pub fn band(&self, score: f64) -> &'static str {
        if score < self.red_below {
            "red"
        } else if score < self.green_from {
            "yellow"
        } else {
            "green"
        }
    }
}

/// What the score is computed from; `None` where the account gives no input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    /// User-days of the last complete week vs the account's baseline, in % (`model/baseline.rs`).
    pub usage_vs_baseline: Option<f64>,
    pub days_since_last_activity: Option<u32>,
    /// Days since the contract started (or the account was first seen), while onboarding.
    pub onboarding_day: Option<i64>,
    pub seat_utilisation: Option<f64>,
    pub feature_breadth: Option<f64>,
    pub active_users_change_pct: Option<f64>,
    /// Records accumulated in 30 days and their change vs the previous 30 days (%).
    pub records_30d: Option<u64>,
    pub records_change_pct: Option<f64>,
    pub latest_nps: Option<u8>,
    pub avg_csat: Option<f64>,
    pub open_tickets: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub score: Option<f64>,
    pub band: &'static str,
    pub components: Components,
    /// The component that pulls the score down most (largest weighted shortfall from 100).
    pub weakest: Option<Component>,
    /// Why the score was capped below what the components give, if it was.
    pub cap: Option<Cap>,
}

/// A guardrail that caps the weighted score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// No activity for `inactive_red_days`.
    Inactive,
    /// User-days `falling_usage_pct` or more below the account's usual.
    FallingUsage,
}

impl Cap {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "inactive",
            Self::FallingUsage => "falling_usage",
        }
    }
}

fn pct(x: f64) -> f64 {
    (x * 100.0).clamp(0.0, 100.0)
}

pub fn components(cfg: &HealthConfig, i: &Inputs) -> Components {
    // A new account is measured against where it should be by now, not against a mature
    // account: the targets ramp up over `onboarding_ramp_days` (never below a tenth), so a
    // ten-day-old account with its first users is not red.
    let ramp = match i.onboarding_day {
        Some(day) if cfg.onboarding_ramp_days > 0 => {
            (day.max(0) as f64 / cfg.onboarding_ramp_days as f64).clamp(0.1, 1.0)
        }
        _ => 1.0,
    };
    // In the first `onboarding_grace_days` seats and breadth are not measured at all: a
    // customer still rolling out is not at risk for having no users yet.
    let grace = i.onboarding_day.is_some_and(|d| d < cfg.onboarding_grace_days as i64);
    let deployment = i.seat_utilisation.filter(|_| !grace).map(|u| pct(u / (cfg.seat_utilisation_target * ramp)));
    let adoption = i.feature_breadth.filter(|_| !grace).map(|b| pct(b / (cfg.feature_breadth_target * ramp)));
    // Use at or above the account's usual is healthy; 40 % below it scores 0. Without a
    // baseline (under three weeks of history), the week-over-week change of active users stands
    // in, where a 50 % fall scores 0.
    let trend = match i.usage_vs_baseline {
        Some(c) => Some((100.0 + 2.5 * c).clamp(0.0, 100.0)),
        None => i.active_users_change_pct.map(|c| (100.0 + 2.0 * c).clamp(0.0, 100.0)),
    };
    // Value is data accumulating: none in 30 days scores 0, shrinking imports score less.
    let value = i.records_30d.map(|r| match (r, i.records_change_pct) {
        (0, _) => 0.0,
        (_, Some(c)) => (100.0 + c).clamp(0.0, 100.0),
        (_, None) => 100.0,
    });
    let surveys: Vec<f64> =
        i.latest_nps.map(|n| n as f64 * 10.0).into_iter().chain(i.avg_csat.map(|c| (c - 1.0) * 25.0)).collect();
    let experience = if surveys.is_empty() && i.open_tickets == 0 {
        None
    } else {
        let base = if surveys.is_empty() { 100.0 } else { surveys.iter().sum::<f64>() / surveys.len() as f64 };
        Some((base - cfg.open_ticket_penalty * i.open_tickets as f64).clamp(0.0, 100.0))
    };
    Components { deployment, adoption, trend, value, experience }
}

/// The weighted score. A component without input is left out and its weight shared by the rest.
pub fn score(cfg: &HealthConfig, stage: Stage, i: &Inputs) -> Health {
    let comps = components(cfg, i);
    let w = cfg.weights(stage);
    let (mut sum, mut weight) = (0.0, 0.0);
    let mut weakest: Option<(Component, f64)> = None;
    for name in Component::ALL {
        let Some(c) = comps.of(name) else { continue };
        sum += w.of(name) * c;
        weight += w.of(name);
        let shortfall = w.of(name) * (100.0 - c);
        if shortfall > 0.0 && weakest.is_none_or(|(_, s)| shortfall > s) {
            weakest = Some((name, shortfall));
        }
    }
    let mut score = (weight > 0.0).then(|| ((sum / weight) * 10.0).round() / 10.0);
    let cap = if i.days_since_last_activity.is_some_and(|d| d >= cfg.inactive_red_days) {
        Some((Cap::Inactive, cfg.inactive_max_score))
    } else if i.usage_vs_baseline.is_some_and(|c| c <= cfg.falling_usage_pct) {
        Some((Cap::FallingUsage, cfg.falling_usage_max_score))
    } else {
        None
    };
    // A cap only counts when it lowers the score (a score already below it is not "capped").
    // Inactivity caps even an account with no other input: two idle weeks are red on their own.
    let cap = cap.filter(|(cap, max)| score.map_or(*cap == Cap::Inactive, |s| s > *max));
    if let Some((_, max)) = cap {
        score = Some(max);
    }
    let cap = cap.map(|(cap, _)| cap);
    Health { score, band: score.map_or("", |s| cfg.band(s)), components: comps, weakest: weakest.map(|(n, _)| n), cap }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_banded_from_their_inputs() {
        let cfg = HealthConfig::default();
        let i = Inputs {
            seat_utilisation: Some(0.4),
            feature_breadth: Some(0.25),
            active_users_change_pct: Some(-20.0),
            records_30d: Some(500),
            records_change_pct: Some(-30.0),
            latest_nps: Some(8),
            avg_csat: Some(4.0),
            open_tickets: 1,
            ..Default::default()
        };
        // 0.4/0.8, 0.25/0.5, 100-40, 100-30, mean(80, 75) - 10
        assert_eq!(
            components(&cfg, &i),
            Components {
                deployment: Some(50.0),
                adoption: Some(50.0),
                trend: Some(60.0),
                value: Some(70.0),
                experience: Some(67.5)
            }
        );
        // growth: .25*50 + .25*50 + .25*60 + .15*70 + .10*67.5 = 57.25
        let h = score(&cfg, Stage::Growth, &i);
        assert_eq!(h.score, Some(57.3));
        assert_eq!(h.band, "yellow");
        assert_eq!(h.weakest, Some(Component::Deployment), "deployment and adoption tie at 12.5; the first wins");
    }

    #[test]
    fn missing_inputs_are_left_out_and_their_weight_shared() {
        let cfg = HealthConfig::default();
        let i = Inputs { feature_breadth: Some(0.5), active_users_change_pct: Some(-50.0), ..Default::default() };
        let h = score(&cfg, Stage::Growth, &i);
        assert_eq!(h.components, Components { adoption: Some(100.0), trend: Some(0.0), ..Default::default() });
        assert_eq!(h.score, Some(50.0), "(.25*100 + .25*0) / .5");
        assert_eq!(h.weakest, Some(Component::Trend));
        assert_eq!(score(&cfg, Stage::Growth, &Inputs::default()).score, None);
    }

    #[test]
    fn great_surveys_do_not_hide_fading_use() {
        let cfg = HealthConfig::default();
        let fading = Inputs {
            seat_utilisation: Some(0.15),
            feature_breadth: Some(0.1),
            active_users_change_pct: Some(-60.0),
            records_30d: Some(0),
            latest_nps: Some(10),
            avg_csat: Some(5.0),
            ..Default::default()
        };
        let h = score(&cfg, Stage::Growth, &fading);
        assert!(h.score.unwrap() < cfg.red_below, "score {:?}", h.score);
        assert_eq!(h.band, "red");
        assert_eq!(h.components.experience, Some(100.0), "experience itself is perfect");
    }

    /// A well-run account: seats in use, broad adoption, data flowing, happy surveys.
    fn thriving() -> Inputs {
        Inputs {
            usage_vs_baseline: Some(2.0),
            days_since_last_activity: Some(0),
            seat_utilisation: Some(0.75),
            feature_breadth: Some(0.5),
            records_30d: Some(20_000),
            records_change_pct: Some(5.0),
            latest_nps: Some(9),
            avg_csat: Some(4.5),
            ..Default::default()
        }
    }

    #[test]
    fn calibration_a_thriving_account_is_green_and_uncapped() {
        let cfg = HealthConfig::default();
        let h = score(&cfg, Stage::Growth, &thriving());
        assert_eq!(h.band, "green", "{h:?}");
        assert_eq!(h.cap, None);
        assert!(h.score.unwrap() >= 90.0);
    }

    #[test]
    fn calibration_nobody_active_for_14_days_is_red_whatever_else() {
        let cfg = HealthConfig::default();
        // Thirteen days: not yet the guardrail (the slide cap already applies: usage is gone).
        let mut quiet = Inputs { days_since_last_activity: Some(13), usage_vs_baseline: Some(-100.0), ..thriving() };
        let h13 = score(&cfg, Stage::Growth, &quiet);
        assert_eq!((h13.band, h13.cap), ("yellow", Some(Cap::FallingUsage)), "{h13:?}");
        quiet.days_since_last_activity = Some(14);
        let h = score(&cfg, Stage::Renewal, &quiet);
        assert_eq!((h.score, h.band, h.cap), (Some(20.0), "red", Some(Cap::Inactive)));
        // Perfect surveys and a seat count from the month before change nothing.
        assert_eq!(h.components.experience, Some(88.75));
        assert_eq!(score(&cfg, Stage::Onboarding, &quiet).band, "red");
        // Nothing else known (a new account in its first weeks): idle is still red.
        let idle_only = Inputs { days_since_last_activity: Some(15), ..Default::default() };
        assert_eq!(score(&cfg, Stage::Onboarding, &idle_only).score, Some(20.0));
    }

    #[test]
    fn calibration_a_slide_turns_yellow_within_a_week() {
        let cfg = HealthConfig::default();
        // A week into a three-week slide, user-days are ~20–30 % below the usual.
        for (gap, band) in [(-10.0, "green"), (-24.0, "green"), (-25.0, "yellow"), (-30.0, "yellow")] {
            let h = score(&cfg, Stage::Growth, &Inputs { usage_vs_baseline: Some(gap), ..thriving() });
            assert_eq!(h.band, band, "{gap} %: {h:?}");
        }
        let h = score(&cfg, Stage::Growth, &Inputs { usage_vs_baseline: Some(-30.0), ..thriving() });
        assert_eq!((h.score, h.cap, h.weakest), (Some(60.0), Some(Cap::FallingUsage), Some(Component::Trend)));
    }

    #[test]
    fn calibration_happy_surveys_never_hide_falling_use() {
        let cfg = HealthConfig::default();
        let promoter_fading = Inputs {
            usage_vs_baseline: Some(-45.0),
            latest_nps: Some(10),
            avg_csat: Some(5.0),
            open_tickets: 0,
            ..thriving()
        };
        let h = score(&cfg, Stage::Growth, &promoter_fading);
        assert_eq!(h.components.experience, Some(100.0));
        assert_ne!(h.band, "green", "{h:?}");
        assert_eq!(h.components.trend, Some(0.0));
    }

    #[test]
    fn calibration_a_new_account_without_a_baseline_falls_back_to_week_over_week() {
        let cfg = HealthConfig::default();
        let new = Inputs { usage_vs_baseline: None, active_users_change_pct: Some(50.0), ..thriving() };
        let h = score(&cfg, Stage::Onboarding, &new);
        assert_eq!((h.components.trend, h.cap), (Some(100.0), None));
    }

    #[test]
    fn calibration_a_ten_day_old_account_with_its_first_users_is_not_red() {
        let cfg = HealthConfig::default();
        // 2 of 9 seats and 2 of 12 features, ten days in: a mature account would be red.
        let young =
            Inputs { seat_utilisation: Some(2.0 / 9.0), feature_breadth: Some(2.0 / 12.0), ..Default::default() };
        assert_eq!(score(&cfg, Stage::Growth, &young).band, "red", "at day 300 this is a risk");
        let h = score(&cfg, Stage::Onboarding, &Inputs { onboarding_day: Some(20), ..young.clone() });
        assert_eq!(h.band, "green", "{h:?}");
        // Before day 14 seats and breadth are not scored at all: no users yet is no score yet.
        let nobody = Inputs { seat_utilisation: Some(0.0), feature_breadth: Some(0.0), ..Default::default() };
        assert_eq!(score(&cfg, Stage::Onboarding, &Inputs { onboarding_day: Some(10), ..nobody.clone() }).score, None);
        assert_eq!(score(&cfg, Stage::Onboarding, &Inputs { onboarding_day: Some(14), ..nobody }).band, "red");
        // Sixty days in, the same numbers are measured against the full targets again.
        let h60 = score(&cfg, Stage::Onboarding, &Inputs { onboarding_day: Some(60), ..young });
        assert_eq!(h60.band, "red", "{h60:?}");
    }
}
