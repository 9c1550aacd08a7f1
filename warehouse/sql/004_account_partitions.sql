-- Which Kafka partition each account's events arrive on. Each aggregator instance evaluates
-- only the accounts of the partitions it consumes, so two instances never compute (or alert on)
-- the same account. Read with FINAL: the latest row wins if the partition count ever changed.
CREATE TABLE IF NOT EXISTS {db}.account_partitions
(
    account_id      String,
    kafka_topic     String,
    kafka_partition Int32,
    updated_at      DateTime
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (kafka_topic, account_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.account_partitions_mv TO {db}.account_partitions AS
SELECT account_id, kafka_topic, kafka_partition, max(received_at) AS updated_at
FROM {db}.events
WHERE account_id != ''
GROUP BY account_id, kafka_topic, kafka_partition;
