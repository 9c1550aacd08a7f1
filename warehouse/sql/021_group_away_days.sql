-- Days a group was away in the 7-day window (issue 21; docs/SIGNAL.md#users): a team's week
-- away still lowers the window for a week after the team is back, so rules on a 7-day window
-- name this instead of `users_away_together` (away now). Added at the end (the evaluator names
-- its columns when it inserts); rows written before read 0 until the next pass rewrites them.
ALTER TABLE {db}.account_metrics
    ADD COLUMN group_away_days_7d UInt8 DEFAULT 0;
