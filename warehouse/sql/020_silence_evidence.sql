-- An account's current silence (issue 21; docs/SIGNAL.md#silence): the complete days nobody came
-- in, and the active user-days its weekday-aware usual expected on them. Added at the end (the
-- evaluator names its columns when it inserts); rows written before have 0 and NULL until the
-- next pass rewrites them.
ALTER TABLE {db}.account_metrics
    ADD COLUMN silent_days UInt64 DEFAULT 0,
    ADD COLUMN silence_evidence Nullable(Float64);
