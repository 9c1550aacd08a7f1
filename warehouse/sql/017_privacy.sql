-- Privacy requests (issue 24; docs/privacy.md). A regulation is one request (suppress,
-- suppress_with_delete, delete, unsuppress) for a list of people or accounts; each status change
-- is a new row with a higher `version`, so the latest state survives restarts and is read with
-- FINAL. These two tables name the people a request is about by necessity (the request must be
-- executed and proven); they are the only ones a deletion leaves them in.
CREATE TABLE IF NOT EXISTS {db}.regulations
(
    regulation_id String,
    kind          String,
    subject_kind  String,
    subject_ids   Array(String),
    requested_by  String,
    requested_at  DateTime,
    status        String,
    detail        String,
    updated_at    DateTime,
    version       UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY regulation_id;

-- Who asked for what, when, and what was done: one row per step (filed, suppressed, running,
-- deleted with the rows found per table, verified, finished or failed). Append-only.
CREATE TABLE IF NOT EXISTS {db}.regulation_audit
(
    regulation_id String,
    at            DateTime,
    actor         String,
    action        String,
    detail        String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(at)
ORDER BY (regulation_id, at);
