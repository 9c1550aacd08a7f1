-- When a condition stopped holding, which can be before the row is written: the evaluator finds
-- in the stored history since which day an open episode's condition has been clear
-- (docs/architecture.md#one-timeline), and `resolve_after` counts from there, also after a
-- restart. Rows written before this column have it as their `recorded_at`, as they meant.
ALTER TABLE {db}.alert_pending ADD COLUMN cleared_at DateTime DEFAULT recorded_at;
