//! The decline score (docs/SIGNAL.md#the-decline-score): the probability, read from one
//! account's metrics row, that the account is in a decline that has begun.
//!
//! Each rule reads a few metrics against fixed thresholds, and every threshold tried moved
//! along one curve of declines caught against healthy accounts alerted (SIGNAL.md, twelfth to
//! fourteenth runs). The same metrics hold more than that when read together: a regular user's
//! fortnight away while the others come in as usual is leave, the same absence with the rest of
//! the team thinning is not. A gradient-boosted tree ensemble learns those combinations from
//! books whose truth is known (`tools/model/decline_score.py`); this module evaluates it. The
//! shipped rules on a decline want it at 0.5 or more (deploy/rules.toml).
//!
//! The model is data (`aggregator/models/decline_score.json`, embedded at build): per tree, nodes
//! `[feature, threshold, left, right, missing_left]`, a leaf with feature −1 and its value in
//! place of the threshold. A split sends a row left when the feature's value ≤ threshold, or
//! when the value is missing and `missing_left` is 1. The score is the logistic function of the
//! base plus the leaves reached. Features are catalogue metrics read from complete days only,
//! so a pass during the day and the replay at its end agree.

use std::sync::LazyLock;

use serde::Deserialize;

use super::catalogue::{Metric, MetricsRow};

/// The model shipped with uptake, trained on loadgen's and b2's books (SIGNAL.md).
const SHIPPED: &str = include_str!("../../models/decline_score.json");

static FOREST: LazyLock<Forest> = LazyLock::new(|| {
    Forest::parse(SHIPPED).expect("aggregator/models/decline_score.json is checked by model::score's tests")
});

/// The decline score of `m`, 0–1 rounded to 3 places; `None` while the account has no usual to
/// be measured against (under 3 complete weeks of history: no `active_user_days_baseline`). The
/// detector's reading, from 5 weeks, is one of its inputs and may be missing.
pub fn decline_score(m: &MetricsRow) -> Option<f64> {
    m.active_user_days_baseline?;
    Some((FOREST.probability(m) * 1000.0).round() / 1000.0)
}

/// One node of a tree.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Split { feature: usize, threshold: f64, left: usize, right: usize, missing_left: bool },
    Leaf(f64),
}

/// A tree ensemble over catalogue metrics.
#[derive(Debug, Clone)]
pub struct Forest {
    features: Vec<Metric>,
    base: f64,
    trees: Vec<Vec<Node>>,
}

/// A node as the training script writes it: `[feature, threshold or leaf value, left, right,
/// missing_left]`, feature −1 for a leaf.
type RawNode = (i64, f64, usize, usize, u8);

/// The file as written by the training script.
#[derive(Deserialize)]
struct ForestFile {
    features: Vec<String>,
    base: f64,
    trees: Vec<Vec<RawNode>>,
}

/// The model layer does no I/O and knows no crate error: a bad model is a sentence, as a bad
/// lifecycle stage is (`lifecycle.rs`).
fn invalid(reason: String) -> String {
    format!("decline score model: {reason}")
}

impl Forest {
    /// Reads and validates a model: every feature a metric rules may name, every child after
    /// its parent (so evaluation ends), every tree non-empty.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: ForestFile = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let features = file
            .features
            .iter()
            .map(|f| Metric::named(f).ok_or_else(|| invalid(format!("feature `{f}` is no metric of the catalogue"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut trees = Vec::with_capacity(file.trees.len());
        for (t, nodes) in file.trees.iter().enumerate() {
            if nodes.is_empty() {
                return Err(invalid(format!("tree {t} has no nodes")));
            }
            let tree = nodes
                .iter()
                .enumerate()
                .map(|(i, &(feature, value, left, right, missing))| {
                    if feature < 0 {
                        return Ok(Node::Leaf(value));
                    }
                    let feature = feature as usize;
                    if feature >= features.len()
                        || left <= i
                        || right <= i
                        || left >= nodes.len()
                        || right >= nodes.len()
                    {
                        return Err(invalid(format!("tree {t} node {i}: feature or children out of range")));
                    }
                    Ok(Node::Split { feature, threshold: value, left, right, missing_left: missing == 1 })
                })
                .collect::<Result<Vec<_>, _>>()?;
            trees.push(tree);
        }
        Ok(Self { features, base: file.base, trees })
    }

    /// P(decline | m): the logistic function of the base plus each tree's leaf.
    pub fn probability(&self, m: &MetricsRow) -> f64 {
        let x: Vec<Option<f64>> = self.features.iter().map(|f| f.read(m)).collect();
        let raw = self.base + self.trees.iter().map(|t| leaf(t, &x)).sum::<f64>();
        1.0 / (1.0 + (-raw).exp())
    }
}

fn leaf(tree: &[Node], x: &[Option<f64>]) -> f64 {
    let mut i = 0;
    loop {
        match tree[i] {
            Node::Leaf(v) => return v,
            Node::Split { feature, threshold, left, right, missing_left } => {
                i = match x[feature] {
                    Some(v) if v <= threshold => left,
                    Some(_) => right,
                    None if missing_left => left,
                    None => right,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forest(trees: &str, features: &str) -> Result<Forest, String> {
        Forest::parse(&format!(r#"{{"features": {features}, "base": 0.0, "trees": {trees}}}"#))
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn a_split_goes_left_at_its_threshold_and_where_missing_says() {
        // evidence ≤ 5 → −2; else lapsed ≤ 1.5 → 1, else (or lapsed unknown: missing goes right) 3.
        // A second tree adds 0.5 to everything: leaves of all trees are summed.
        let f = forest(
            "[[[0, 5.0, 1, 2, 1], [-1, -2.0, 0, 0, 0], [1, 1.5, 3, 4, 0], [-1, 1.0, 0, 0, 0], [-1, 3.0, 0, 0, 0]], [[-1, 0.5, 0, 0, 0]]]",
            r#"["decline_evidence", "regular_users_lapsed_pct"]"#,
        )
        .unwrap();
        let row = |evidence: Option<f64>, lapsed: Option<f64>| MetricsRow {
            decline_evidence: evidence,
            regular_users_lapsed_pct: lapsed,
            ..Default::default()
        };
        assert_eq!(f.probability(&row(Some(5.0), None)), sigmoid(-1.5), "≤ the threshold: left");
        assert_eq!(f.probability(&row(None, None)), sigmoid(-1.5), "missing, missing_left 1: left");
        assert_eq!(f.probability(&row(Some(5.1), Some(1.5))), sigmoid(1.5));
        assert_eq!(f.probability(&row(Some(5.1), Some(2.0))), sigmoid(3.5));
        assert_eq!(f.probability(&row(Some(5.1), None)), sigmoid(3.5), "missing, missing_left 0: right");
    }

    #[test]
    fn a_model_is_refused_with_the_reason() {
        let err = |trees: &str, features: &str| forest(trees, features).unwrap_err();
        assert!(err("[[[-1, 1.0, 0, 0, 0]]]", r#"["plan"]"#).contains("feature `plan` is no metric"));
        assert!(err("[[[0, 1.0, 0, 1, 0], [-1, 1.0, 0, 0, 0]]]", r#"["decline_evidence"]"#).contains("tree 0 node 0"));
        assert!(err("[[[0, 1.0, 1, 2, 0], [-1, 1.0, 0, 0, 0]]]", r#"["decline_evidence"]"#).contains("out of range"));
        assert!(err("[[[1, 1.0, 1, 2, 0], [-1, 1.0, 0, 0, 0], [-1, 1.0, 0, 0, 0]]]", r#"["decline_evidence"]"#)
            .contains("out of range"));
        assert!(err("[[]]", r#"["decline_evidence"]"#).contains("tree 0 has no nodes"));
        assert!(err("[]", "7").contains("decline score model"));
    }

    #[test]
    fn the_shipped_model_reads_complete_days_only() {
        let f = Forest::parse(SHIPPED).unwrap();
        assert!(f.trees.len() >= 50, "{} trees", f.trees.len());
        // Counts that include the pass's own day, or the clock, would make a pass during the day
        // disagree with the replay at its end.
        for m in &f.features {
            let name = m.name();
            assert!(
                !name.ends_with("_1d") && !name.starts_with("active_users_") || name.ends_with("baseline"),
                "{name} moves during the day"
            );
            assert!(
                !name.starts_with("days_since") && !name.starts_with("events") && !name.starts_with("logins"),
                "{name}"
            );
        }
    }

    /// An account of 12 regular users with a usual of 50 user-days a week, as a steady week shows it.
    fn steady() -> MetricsRow {
        MetricsRow {
            active_user_days_baseline: Some(50.0),
            active_user_days_vs_baseline: Some(2.0),
            active_user_days_z: Some(0.2),
            active_user_days_3d_vs_baseline: Some(0.0),
            active_user_days_momentum: Some(-2.0),
            active_user_days_3d_z: Some(0.0),
            active_users_baseline: Some(12.0),
            active_users_vs_baseline: Some(0.0),
            baseline_weeks: Some(8),
            regular_users: 12,
            champion_days_absent: Some(0),
            champion_lapsed: Some(0),
            decline_evidence: Some(0.0),
            ..Default::default()
        }
    }

    #[test]
    fn the_shipped_model_tells_a_slide_from_a_steady_week_and_a_team_away() {
        let steady = steady();
        // Three weeks into a slide: 40 % under the usual, three regulars gone two weeks, the detector
        // at odds of e^9.
        let slide = MetricsRow {
            active_user_days_vs_baseline: Some(-40.0),
            active_user_days_z: Some(-3.5),
            active_user_days_3d_vs_baseline: Some(-45.0),
            active_user_days_momentum: Some(-5.0),
            active_user_days_3d_z: Some(-3.0),
            active_users_vs_baseline: Some(-25.0),
            regular_users_lapsed: 3,
            regular_users_lapsed_pct: Some(25.0),
            regular_users_lapsed_long: 3,
            decline_evidence: Some(9.0),
            ..steady.clone()
        };
        // The same week's dip with half the team away together and nobody lapsed: a holiday week.
        let away = MetricsRow {
            regular_users_lapsed: 0,
            regular_users_lapsed_pct: Some(0.0),
            regular_users_lapsed_long: 0,
            users_away_together: 6,
            decline_evidence: Some(0.5),
            ..slide.clone()
        };
        let (s, d, a) =
            (decline_score(&steady).unwrap(), decline_score(&slide).unwrap(), decline_score(&away).unwrap());
        assert!(s < 0.1, "steady {s}");
        assert!(d >= 0.85, "slide {d}");
        assert!(a < 0.85 && a < d, "team away {a}, slide {d}");
    }

    #[test]
    fn no_score_without_a_usual_to_measure_against() {
        let young = MetricsRow { active_user_days_baseline: None, ..steady() };
        assert_eq!(decline_score(&young), None);
        // Three weeks of history: a usual, no detector yet (it reads from five).
        let weeks = MetricsRow { decline_evidence: None, ..steady() };
        assert!(decline_score(&weeks).is_some_and(|s| s < 0.5), "{:?}", decline_score(&weeks));
    }
}
