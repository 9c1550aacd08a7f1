-- Recorded outcomes (an account churned, renewed or contracted): the ground truth the scored
-- backtest measures the rules against. `outcome` is set on `outcome` events only ('' otherwise);
-- events stored before this migration read as ''. The view is what analysts and the aggregator
-- read; its date is the event's timestamp. A plain view, so rows inserted later show at once.
ALTER TABLE {db}.events ADD COLUMN outcome String DEFAULT '';

CREATE VIEW IF NOT EXISTS {db}.account_outcomes AS
SELECT account_id, outcome, timestamp AS occurred_at, source, message_id
FROM {db}.events
WHERE kind = 'outcome' AND account_id != '';
