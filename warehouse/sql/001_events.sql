-- Raw events: one row per event the aggregator consumed from `usage-events`.
-- The Kafka coordinates (topic, partition, offset) are stored with each row: they are how the
-- aggregator knows, after a restart, where each partition's stored data ends.
CREATE TABLE IF NOT EXISTS {db}.events
(
    message_id      String,
    account_id      String,
    user_id         String,
    kind            String,
    event           String,
    feature         String,
    module          String,
    uses            UInt64,
    records         UInt64,
    bytes           UInt64,
    object          String,
    nps             Nullable(UInt8),
    csat            Nullable(UInt8),
    ticket_id       String,
    ticket_status   String,
    priority        String,
    timestamp       DateTime,
    received_at     DateTime,
    source          String,
    traits          String,
    properties      String,
    kafka_topic     String,
    kafka_partition Int32,
    kafka_offset    Int64
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (account_id, timestamp, message_id);

-- Latest traits per account and per user (from `account` / `user` events); read with FINAL.
CREATE TABLE IF NOT EXISTS {db}.accounts
(
    account_id String,
    updated_at DateTime,
    traits     String
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY account_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.accounts_mv TO {db}.accounts AS
SELECT account_id, timestamp AS updated_at, traits
FROM {db}.events
WHERE kind = 'account' AND account_id != '';

CREATE TABLE IF NOT EXISTS {db}.users
(
    user_id    String,
    account_id String,
    updated_at DateTime,
    traits     String
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY user_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.users_mv TO {db}.users AS
SELECT user_id, account_id, timestamp AS updated_at, traits
FROM {db}.events
WHERE kind = 'user' AND user_id != '';
