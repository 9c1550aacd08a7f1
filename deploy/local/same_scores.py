#!/usr/bin/env python3
"""Checks that two `signal --json` reports of the same book agree: the table against the truth,
how visible its declines were, the live evaluator's open alerts and the score against recorded
outcomes. Used by test.sh to
prove `signal --book DIR` scores a book from files as `signal` scores it sent directly. Fails
too when the book had nothing to score (no declines, no alerts): equal empty tables prove
nothing."""
import json
import sys


def main(direct_path, file_path):
    direct, from_file = (json.load(open(p)) for p in (direct_path, file_path))
    truth = direct["truth"]
    if truth["at_risk"] == 0 or truth["firings"] == 0 or not direct.get("live"):
        sys.exit(f"{direct_path}: nothing to compare (at risk {truth['at_risk']}, firings {truth['firings']})")
    differ = [k for k in ("truth", "visibility", "live", "outcomes") if direct.get(k) != from_file.get(k)]
    if differ:
        for k in differ:
            print(f"{k}:\n  direct: {json.dumps(direct.get(k))[:2000]}\n  book:   {json.dumps(from_file.get(k))[:2000]}")
        sys.exit(f"the two reports differ in {', '.join(differ)}")
    print(
        f"    the same: {truth['book_accounts']} accounts, {truth['at_risk']} at risk, {truth['firings']} firings, "
        f"recall {truth['recall']['count']}/{truth['recall']['of']}, live open {direct['live']['both']}"
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
