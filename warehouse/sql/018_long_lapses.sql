-- Lapsed for longer than most people's leave (issue 21; docs/SIGNAL.md#users): a second book
-- with leave as often as people take it (about five weeks a year) showed two people's
-- overlapping holidays read as users leaving on one healthy account in six. Added at the end
-- (the evaluator names its columns when it inserts); rows written before have the default until
-- the next pass rewrites them.
ALTER TABLE {db}.account_metrics
    ADD COLUMN regular_users_lapsed_long UInt64 DEFAULT 0;
