-- How unlikely an account's current silence is by chance (issue 21; docs/SIGNAL.md#silence):
-- the active user-days its weekday-aware usual expected on the complete days nobody came in.
-- Added at the end (the evaluator names its columns when it inserts); rows written before have
-- NULL until the next pass rewrites them.
ALTER TABLE {db}.account_metrics
    ADD COLUMN silence_evidence Nullable(Float64);
