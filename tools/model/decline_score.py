#!/usr/bin/env python3
"""Train the decline score (docs/SIGNAL.md#the-decline-score) and write the model the
aggregator embeds (aggregator/models/decline_score.json).

The score is the probability, read from one account's metrics row, that the account is in a
decline that has begun: a gradient-boosted tree ensemble over the metrics the rules already
name, read from complete days only (so a pass in the middle of a day and the end-of-day replay
agree). It learns how the detector's evidence, the people metrics and the baselines combine,
which a rule's fixed thresholds cannot: a dip with a group away together weighs less than the
same dip with two regulars gone for twelve days.

Input: books replayed by `signal` with `--rows FILE` (one metrics row per account and day) and
their ground truth (`truth.json` of a `--book` directory, or `loadgen --truth FILE`). A row is a
positive when its account is at risk and the row's day is on or after the decline's onset;
every other row is a negative.

    pip install scikit-learn==1.9.1 numpy
    tools/model/decline_score.py --out aggregator/models/decline_score.json \
        --book rows_seed7.jsonl:lg7.truth.json --book rows_b2s1.jsonl:b2s1/truth.json ...

The result is deterministic for the same inputs (random_state 0). Nothing here runs in CI:
the model is data, checked by the aggregator's unit tests and measured by `signal`.
"""
import argparse
import datetime as dt
import json

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

# Complete-day metrics only: counts that include today (active_users_1d, _7d, ...) and
# days_since_last_activity move during the day, and the live evaluator must give what the
# end-of-day replay gives. No events, logins, features, surveys or tickets: how much each
# user does per visit, and how often they write in, differ from one product (and one
# generator) to the next; who comes in, and how often, is what every book has.
FEATURES = [
    "active_user_days_baseline", "active_user_days_vs_baseline", "active_user_days_z",
    "active_user_days_3d_vs_baseline", "active_user_days_momentum", "active_user_days_3d_z",
    "active_users_baseline", "active_users_vs_baseline",
    "regular_users", "regular_users_lapsed", "regular_users_lapsed_pct", "regular_users_lapsed_long",
    "users_away_together", "champion_days_absent", "champion_lapsed", "decline_evidence",
    "book_closures_3d", "book_closures_7d",
]
EPOCH = dt.date(1970, 1, 1)


def load(rows_path, truth_path):
    truth = {a["id"]: a for a in json.load(open(truth_path))["accounts"]}
    X, y = [], []
    for line in open(rows_path):
        r = json.loads(line)
        t = truth.get(r["account_id"])
        if t is None:
            continue
        X.append([np.nan if r[f] is None else float(r[f]) for f in FEATURES])
        onset = t.get("decline_onset")
        y.append(int(bool(t["at_risk"] and onset and r["as_of"] >= (dt.date.fromisoformat(onset) - EPOCH).days)))
    return np.array(X), np.array(y)


def export(model, books):
    """The ensemble as plain data: per tree, nodes [feature, threshold, left, right, missing_left]
    with feature −1 and the leaf's value in place of the threshold for a leaf. A split sends a
    row left when its value ≤ threshold, or when the value is missing and missing_left is 1."""
    trees = []
    for (predictor,) in model._predictors:
        nodes = []
        for n in predictor.nodes:
            if n["is_leaf"]:
                nodes.append([-1, float(n['value']), 0, 0, 0])
            else:
                # A split of the known values from the missing ones has an infinite threshold,
                # which JSON cannot say: the largest double sends every known value the same way.
                threshold = float(np.clip(n["num_threshold"], -np.finfo(float).max, np.finfo(float).max))
                nodes.append([int(n["feature_idx"]), threshold,
                              int(n["left"]), int(n["right"]), int(n["missing_go_to_left"])])
        trees.append(nodes)
    return {
        "about": "uptake's decline score: P(in a decline that has begun | the account's metrics row). "
                 "Trained by tools/model/decline_score.py; docs/SIGNAL.md#the-decline-score.",
        "trained_on": books,
        "features": FEATURES,
        "base": float(np.asarray(model._baseline_prediction).ravel()[0]),
        "trees": trees,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--book", action="append", required=True, help="ROWS.jsonl:TRUTH.json (repeat)")
    p.add_argument("--out", required=True)
    p.add_argument("--trees", type=int, default=150)
    p.add_argument("--leaves", type=int, default=15)
    a = p.parse_args()
    parts = [load(*b.split(":", 1)) for b in a.book]
    X = np.vstack([x for x, _ in parts])
    y = np.concatenate([y for _, y in parts])
    # No early stopping: it holds out a random tenth of the rows, so the model would depend on
    # the order the books are given in (on b2 seed 4, 8 healthy accounts alerted or 13).
    model = HistGradientBoostingClassifier(max_iter=a.trees, learning_rate=0.1, max_leaf_nodes=a.leaves,
                                           min_samples_leaf=50, early_stopping=False, random_state=0).fit(X, y)
    out = export(model, [b.split(":", 1)[0].rsplit("/", 1)[-1] for b in a.book])
    # Check the export against the library's own answer before anyone ships it.
    raw = np.array([out["base"] + sum(leaf(t, x) for t in out["trees"]) for x in X[:2000]])
    mine = 1 / (1 + np.exp(-raw))
    assert np.allclose(mine, model.predict_proba(X[:2000])[:, 1], rtol=0, atol=1e-9), "export disagrees with the model"
    with open(a.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(y)} rows ({y.sum()} in a decline), {len(out['trees'])} trees -> {a.out}")


def leaf(tree, x):
    i = 0
    while tree[i][0] >= 0:
        f, thr, left, right, miss = tree[i]
        v = x[f]
        i = (left if miss else right) if np.isnan(v) else (left if v <= thr else right)
    return tree[i][1]


if __name__ == "__main__":
    main()
