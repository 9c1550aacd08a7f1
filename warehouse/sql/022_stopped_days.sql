-- A stop counted in working days (issue 21; docs/SIGNAL.md#silence): working days in a row at
-- under a quarter of their usual, weekends skipped. Added at the end (the
-- evaluator names its columns when it inserts); rows written before read NULL until the next
-- pass rewrites them.
ALTER TABLE {db}.account_metrics
    ADD COLUMN stopped_days Nullable(UInt32);
