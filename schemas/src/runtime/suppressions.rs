//! The suppression list every ingest instance and aggregator follows (docs/privacy.md#suppression).
//!
//! The list lives on one compacted topic (`usage-suppressions`, key = [`Subject::key`]): a
//! follower reads it whole from the beginning, with no consumer group and no commits, and keeps
//! the latest state per key in memory. Every instance therefore sees the same list within the
//! broker's fetch latency, a restart rebuilds it from the topic, and no instance depends on
//! another to hear of a new request. Until the follower has read up to the end the topic had
//! when it started, [`Suppressions::is_ready`] is false: ingest is not ready (it would accept
//! and store a suppressed person's events), and the aggregator does not consume.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::privacy::{Subject, SubjectKind, SuppressionRecord};

/// How long a metadata or watermark request may take before it is tried again.
const BROKER_TIMEOUT: Duration = Duration::from_secs(2);

/// The suppressed subjects, shared by every task of a service. Cheap to clone.
#[derive(Clone, Default)]
pub struct Suppressions {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    users: RwLock<HashSet<String>>,
    accounts: RwLock<HashSet<String>>,
    /// Subjects suppressed now: the hot path skips both locks while it is zero.
    count: AtomicUsize,
    ready: AtomicBool,
}

impl Suppressions {
    /// An empty list that is ready at once: for services run without a suppression topic and
    /// for tests.
    pub fn ready_empty() -> Self {
        let s = Self::default();
        s.inner.ready.store(true, Ordering::Release);
        s
    }

    /// Whether the list holds everything the topic held when the follower started.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// How many subjects are suppressed now.
    pub fn len(&self) -> usize {
        self.inner.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an event of `account_id` by `user_id` must not be stored.
    pub fn matches(&self, account_id: &str, user_id: &str) -> bool {
        if self.inner.count.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let hit = |set: &RwLock<HashSet<String>>, id: &str| {
            !id.is_empty() && set.read().unwrap_or_else(|p| p.into_inner()).contains(id)
        };
        hit(&self.inner.users, user_id) || hit(&self.inner.accounts, account_id)
    }

    /// Applies one subject's latest state.
    pub fn set(&self, subject: &Subject, suppressed: bool) {
        let set = match subject.kind {
            SubjectKind::User => &self.inner.users,
            SubjectKind::Account => &self.inner.accounts,
        };
        let mut set = set.write().unwrap_or_else(|p| p.into_inner());
        let changed = if suppressed { set.insert(subject.id.clone()) } else { set.remove(&subject.id) };
        if changed {
            if suppressed {
                self.inner.count.fetch_add(1, Ordering::Relaxed);
            } else {
                self.inner.count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Applies one record of the topic. An empty value is a tombstone (the key's subject is no
    /// longer suppressed). A record that names no subject we understand is skipped, and said.
    pub fn apply(&self, key: Option<&[u8]>, payload: Option<&[u8]>) -> Result<(), String> {
        match payload.filter(|p| !p.is_empty()) {
            Some(p) => {
                let rec: SuppressionRecord =
                    serde_json::from_slice(p).map_err(|e| format!("unreadable record: {e}"))?;
                self.set(&rec.subject, rec.suppressed);
                Ok(())
            }
            None => {
                let key = key.and_then(|k| std::str::from_utf8(k).ok()).ok_or("a tombstone without a key")?;
                let (kind, id) = key.split_once(':').ok_or_else(|| format!("tombstone key {key:?} is not kind:id"))?;
                let kind = SubjectKind::parse(kind).ok_or_else(|| format!("tombstone key {key:?}: unknown kind"))?;
                self.set(&Subject { kind, id: id.to_owned() }, false);
                Ok(())
            }
        }
    }

    fn mark_ready(&self) {
        if !self.inner.ready.swap(true, Ordering::AcqRel) {
            tracing::info!(suppressed = self.len(), "suppression list loaded");
        }
    }
}

/// Follows `topic` into `list` until `shutdown` turns true. `config` names the brokers (and any
/// passthrough); the follower adds its own consumer settings. Broker errors are logged and
/// retried: the list keeps its last state meanwhile.
pub async fn follow(config: ClientConfig, topic: String, list: Suppressions, mut shutdown: watch::Receiver<bool>) {
    let mut attempt = 0u32;
    while !*shutdown.borrow() {
        match follow_once(&config, &topic, &list, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                attempt += 1;
                tracing::warn!(topic, error = %e, attempt, "suppression follower: retrying");
                let pause = Duration::from_millis(200 * u64::from(attempt.min(10)));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

async fn follow_once(
    base: &ClientConfig,
    topic: &str,
    list: &Suppressions,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let mut config = base.clone();
    // A group id is only a name here: partitions are assigned by hand and nothing is committed,
    // so every instance reads the whole topic.
    config
        .set("group.id", format!("uptake-suppressions-{}", uuid::Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    // No transactions write the list, so read_uncommitted reads the same records; and some
    // brokers fail read_committed offset lookups (Tansu 0.6 on PostgreSQL 15: "subquery in FROM
    // must have an alias"), which would keep every instance unready. A passthrough still wins.
    if base.get("isolation.level").is_none() {
        config.set("isolation.level", "read_uncommitted");
    }
    let consumer: Arc<StreamConsumer> = Arc::new(config.create().map_err(|e| e.to_string())?);
    let ends = {
        let consumer = consumer.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || ends_now(&consumer, &topic)).await.map_err(|e| e.to_string())?
    };
    let ends = match ends {
        Ok(ends) => ends,
        Err(Missing::Topic) => {
            // A new installation or an upgrade: make the topic rather than never becoming ready.
            create(base, topic).await?;
            return Err(format!("created the missing topic {topic}"));
        }
        Err(Missing::Other(e)) => return Err(e),
    };
    let mut assignment = TopicPartitionList::new();
    for p in ends.keys() {
        assignment.add_partition_offset(topic, *p, Offset::Beginning).map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    // Partitions still to read up to the end they had at start (empty ones are done already).
    let mut behind: HashMap<i32, i64> = ends.into_iter().filter(|(_, end)| *end > 0).collect();
    if behind.is_empty() {
        list.mark_ready();
    }
    loop {
        let msg = tokio::select! {
            m = consumer.recv() => m.map_err(|e| e.to_string())?,
            _ = shutdown.changed() => return Ok(()),
        };
        if let Err(e) = list.apply(msg.key(), msg.payload()) {
            tracing::warn!(topic, partition = msg.partition(), offset = msg.offset(), error = %e, "suppression record skipped");
        }
        if behind.get(&msg.partition()).is_some_and(|end| msg.offset() + 1 >= *end) {
            behind.remove(&msg.partition());
            if behind.is_empty() {
                list.mark_ready();
            }
        }
    }
}

enum Missing {
    Topic,
    Other(String),
}

/// Each partition of `topic` with its high watermark now.
fn ends_now(consumer: &StreamConsumer, topic: &str) -> Result<HashMap<i32, i64>, Missing> {
    let other = |e: rdkafka::error::KafkaError| Missing::Other(e.to_string());
    let metadata = consumer.fetch_metadata(Some(topic), BROKER_TIMEOUT).map_err(other)?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else { return Err(Missing::Topic) };
    if t.error().is_some() || t.partitions().is_empty() {
        return Err(Missing::Topic);
    }
    t.partitions()
        .iter()
        .map(|p| {
            let (_, high) = consumer.fetch_watermarks(topic, p.id(), BROKER_TIMEOUT).map_err(other)?;
            Ok((p.id(), high))
        })
        .collect()
}

/// Creates the suppression topic: one partition (the list is small and read whole), compacted
/// so that it keeps each subject's latest record forever. Another instance creating it at the
/// same moment is fine.
async fn create(base: &ClientConfig, topic: &str) -> Result<(), String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = base.create().map_err(|e| e.to_string())?;
    let new =
        NewTopic::new(topic, 1, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact").set("retention.ms", "-1");
    let options = AdminOptions::new().operation_timeout(Some(BROKER_TIMEOUT));
    let results = admin.create_topics([&new], &options).await.map_err(|e| e.to_string())?;
    tracing::info!(topic, ?results, "suppression topic created");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(subject: Subject, suppressed: bool) -> Vec<u8> {
        let at = chrono::DateTime::from_timestamp(0, 0).unwrap();
        serde_json::to_vec(&SuppressionRecord { subject, suppressed, regulation_id: "r".into(), at }).unwrap()
    }

    #[test]
    fn the_latest_record_of_a_subject_decides() {
        let list = Suppressions::default();
        assert!(!list.matches("acme", "ann"));
        list.apply(Some(b"user:ann"), Some(&record(Subject::user("ann"), true))).unwrap();
        list.apply(Some(b"user:ann"), Some(&record(Subject::user("ann"), true))).unwrap();
        assert_eq!(list.len(), 1, "a repeated record counts once");
        assert!(list.matches("acme", "ann"));
        assert!(!list.matches("acme", "bob"));
        assert!(!list.matches("ann", ""), "a user id never matches an account");

        list.apply(Some(b"account:globex"), Some(&record(Subject::account("globex"), true))).unwrap();
        assert!(list.matches("globex", "anyone"));
        list.apply(Some(b"user:ann"), Some(&record(Subject::user("ann"), false))).unwrap();
        assert!(!list.matches("acme", "ann"));
        list.apply(Some(b"account:globex"), None).unwrap();
        assert!(!list.matches("globex", "anyone"), "a tombstone lifts the suppression");
        assert_eq!(list.len(), 0);
    }

    #[test]
    fn an_unreadable_record_is_refused_with_its_reason_and_changes_nothing() {
        let list = Suppressions::default();
        assert!(list.apply(Some(b"user:x"), Some(b"{not json")).unwrap_err().contains("unreadable"));
        assert!(list.apply(Some(b"email:x@y"), None).unwrap_err().contains("unknown kind"));
        assert!(list.apply(None, None).is_err());
        assert!(list.is_empty());
        assert!(!list.is_ready());
        assert!(Suppressions::ready_empty().is_ready());
    }
}
