-- The notifier's delivery ledger: one row per alert record (alert_id + status) and webhook once
-- it was delivered (2xx) or parked on the alerts dead-letter topic. The notifier checks it before
-- each delivery, so a replayed or re-published alert record is never delivered twice to the
-- same webhook — across restarts too. Also the CSM notification history analysts can query.
CREATE TABLE IF NOT EXISTS {db}.notifications
(
    delivery_id   String,
    alert_id      String,
    status        String,
    webhook       String,
    account_id    String,
    rule_id       String,
    severity      String,
    outcome       String,
    attempts      UInt32,
    error         String,
    recorded_at   DateTime
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY (alert_id, status, webhook);
