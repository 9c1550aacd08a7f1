//! Consumer lag (`uptake_aggregator_consumer_lag_messages`): how many events of each partition
//! this instance owns are not stored yet — the partition's high watermark minus the offset
//! committed after ClickHouse stored the rows (offsets are committed only then). librdkafka
//! computes it per partition in its statistics (`statistics.interval.ms`, every 15 s, set in
//! `KafkaConfig::to_rdkafka_event_consumer`); the consumer's context hands them here.
//!
//! An operator sees a backlog building (ClickHouse slow or down, a bad deploy, too few
//! instances) before the alerts go stale, and how fast it drains afterwards.

use rdkafka::statistics::{Partition, Statistics};

use crate::telemetry::Telemetry;

/// The lag of each partition of `topic` this consumer fetches, from one statistics report:
/// the partitions the application asked for (`desired`, not librdkafka's internal `-1`) whose
/// high watermark is known. librdkafka's own `consumer_lag` is −1 until the group committed an
/// offset there; such a partition is read from its earliest offset (`auto.offset.reset`), so
/// all of it is lag (a new deployment's backlog, or 0 for a partition nobody wrote to yet).
/// Sorted by partition.
pub fn partition_lags(stats: &Statistics, topic: &str) -> Vec<(i32, i64)> {
    let lag = |p: &Partition| match p.consumer_lag {
        known if known >= 0 => Some(known),
        _ if p.hi_offset >= 0 && p.committed_offset < 0 => Some(p.hi_offset - p.lo_offset.max(0)),
        _ => None,
    };
    let mut out: Vec<(i32, i64)> = stats
        .topics
        .get(topic)
        .map(|t| {
            t.partitions
                .values()
                .filter(|p| p.partition >= 0 && p.desired)
                .filter_map(|p| Some((p.partition, lag(p)?)))
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// Sets the lag gauges from one statistics report: one series per owned partition, so a
/// partition that moved to another instance stops being reported here (the gauge is reset on
/// every rebalance, `OwnershipContext::post_rebalance`).
pub fn record(metrics: &Telemetry, stats: &Statistics, topic: &str) {
    for (partition, lag) in partition_lags(stats, topic) {
        metrics.consumer_lag.with_label_values(&[&partition.to_string()]).set(lag);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rdkafka::statistics::Topic;

    use super::*;

    /// A report on `topic` with these partitions: (partition, desired, consumer_lag); the high
    /// watermark 40 and, where the lag is known, a committed offset.
    fn stats(topic: &str, partitions: &[(i32, bool, i64)]) -> Statistics {
        let partitions: HashMap<i32, Partition> = partitions
            .iter()
            .map(|&(partition, desired, consumer_lag)| {
                let committed_offset = if consumer_lag >= 0 { 40 - consumer_lag } else { -1001 };
                let p = Partition {
                    partition,
                    desired,
                    consumer_lag,
                    hi_offset: 40,
                    committed_offset,
                    ..Default::default()
                };
                (partition, p)
            })
            .collect();
        let topics =
            HashMap::from([(topic.to_owned(), Topic { topic: topic.into(), partitions, ..Default::default() })]);
        Statistics { topics, ..Default::default() }
    }

    #[test]
    fn only_owned_partitions_with_a_known_lag_are_reported() {
        // Partition 2 has no committed offset yet: all of its 40 events are still to store. −1 is
        // librdkafka's internal partition, 3 is known to the client but not assigned here.
        let s = stats("usage-events", &[(0, true, 12), (1, true, 0), (2, true, -1), (-1, false, 5), (3, false, 9)]);
        assert_eq!(partition_lags(&s, "usage-events"), vec![(0, 12), (1, 0), (2, 40)]);
        assert!(partition_lags(&s, "other-topic").is_empty());
        // Before the first fetch the watermark is unknown too: nothing to report.
        let mut unknown = stats("usage-events", &[(5, true, -1)]);
        unknown.topics.get_mut("usage-events").unwrap().partitions.get_mut(&5).unwrap().hi_offset = -1001;
        assert!(partition_lags(&unknown, "usage-events").is_empty());
    }

    #[test]
    fn the_gauges_show_each_partitions_lag() {
        let metrics = Telemetry::new();
        record(&metrics, &stats("usage-events", &[(0, true, 12), (4, true, 7)]), "usage-events");
        let text = metrics.render();
        assert!(text.contains("uptake_aggregator_consumer_lag_messages{partition=\"0\"} 12"), "{text}");
        assert!(text.contains("uptake_aggregator_consumer_lag_messages{partition=\"4\"} 7"), "{text}");
        metrics.consumer_lag.reset();
        assert!(!metrics.render().contains("consumer_lag_messages{"), "a rebalance forgets the old partitions");
    }
}
