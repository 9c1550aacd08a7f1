-- The decline score (issue 21; docs/SIGNAL.md#the-decline-score): the probability that the
-- account is in a decline that has begun, from a tree ensemble over the row's metrics. Added at
-- the end (the evaluator names its columns when it inserts); rows written before have NULL until
-- the next pass rewrites them.
ALTER TABLE {db}.account_metrics
    ADD COLUMN decline_score Nullable(Float64);
