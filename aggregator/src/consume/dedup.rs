//! Exactly-once storage: a window of recently stored message ids per Kafka partition.
//!
//! Kafka delivers a record again after a crash (offsets are committed after the insert, so the
//! batch in flight is replayed) and clients retry with the same `message_id` after a 503. Both
//! arrive on the same partition, because the key is the account id. So each partition keeps the
//! ids it stored in the last `window` (rebuilt from ClickHouse the first time the partition is
//! seen after a start or rebalance), and a record whose id is in it is skipped — counted once.
//!
//! Ids are kept as 64-bit hashes: 5 million ids cost ~100 MB instead of ~500 MB of strings, and
//! a false "duplicate" needs two ids among millions to collide in 64 bits (~1e-6 at 5 million).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

/// Ids stored on one partition, oldest first, with the time each was received.
#[derive(Default)]
struct PartitionWindow {
    order: VecDeque<(u32, u64)>,
    ids: HashSet<u64>,
}

pub struct DedupWindow {
    window_secs: u32,
    max_ids_per_partition: usize,
    partitions: HashMap<i32, PartitionWindow>,
}

/// The hash under which a message id is remembered. `DefaultHasher::new()` has fixed keys, so
/// the same id always gives the same hash within and across runs of one build.
pub fn id_hash(message_id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    message_id.hash(&mut h);
    h.finish()
}

impl DedupWindow {
    pub fn new(window_secs: u32, max_ids_per_partition: usize) -> Self {
        Self { window_secs, max_ids_per_partition, partitions: HashMap::new() }
    }

    /// Whether `partition`'s window has been loaded since the last [`DedupWindow::forget_all`].
    pub fn knows(&self, partition: i32) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// Starts `partition`'s window from ids already stored (`(received_at, message_id)`).
    pub fn load(&mut self, partition: i32, stored: impl IntoIterator<Item = (u32, String)>) {
        let mut stored: Vec<(u32, u64)> = stored.into_iter().map(|(t, id)| (t, id_hash(&id))).collect();
        stored.sort_unstable();
        let w = self.partitions.entry(partition).or_default();
        for (t, h) in stored {
            if w.ids.insert(h) {
                w.order.push_back((t, h));
            }
        }
    }

    /// Forgets every partition: after a rebalance another instance may have stored more.
    pub fn forget_all(&mut self) {
        self.partitions.clear();
    }

    /// True if `message_id` was already stored on `partition` within the window; otherwise
    /// remembers it (received at `received_at`) and returns false.
    #[cfg(test)]
    pub fn seen_or_insert(&mut self, partition: i32, message_id: &str, received_at: u32) -> bool {
        self.seen_or_insert_hash(partition, id_hash(message_id), received_at)
    }

    /// [`DedupWindow::seen_or_insert`] of an id already hashed ([`id_hash`]).
    pub fn seen_or_insert_hash(&mut self, partition: i32, h: u64, received_at: u32) -> bool {
        let w = self.partitions.entry(partition).or_default();
        if !w.ids.insert(h) {
            return true;
        }
        w.order.push_back((received_at, h));
        false
    }

    /// Drops ids older than the window before `now`, and the oldest beyond the size cap.
    pub fn expire(&mut self, now: u32) {
        let horizon = now.saturating_sub(self.window_secs);
        for w in self.partitions.values_mut() {
            while let Some(&(t, h)) = w.order.front() {
                if t >= horizon && w.order.len() <= self.max_ids_per_partition {
                    break;
                }
                w.order.pop_front();
                w.ids.remove(&h);
            }
        }
    }

    /// Ids remembered, over all partitions.
    pub fn len(&self) -> usize {
        self.partitions.values().map(|w| w.ids.len()).sum()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_id_is_a_duplicate_on_its_partition_only() {
        let mut d = DedupWindow::new(86_400, 1_000);
        assert!(!d.seen_or_insert(0, "m1", 100));
        assert!(d.seen_or_insert(0, "m1", 200), "retry of m1");
        assert!(!d.seen_or_insert(1, "m1", 200), "another partition has its own window");
        assert!(!d.seen_or_insert(0, "m2", 200));
    }

    #[test]
    fn loaded_ids_count_as_stored_and_old_ids_expire() {
        let mut d = DedupWindow::new(100, 1_000);
        d.load(3, [(1_000, "a".to_owned()), (1_050, "b".to_owned())]);
        assert!(d.knows(3) && !d.knows(4));
        assert!(d.seen_or_insert(3, "a", 1_060));
        d.expire(1_120); // horizon 1020: "a" (1000) goes, "b" (1050) stays
        assert!(!d.seen_or_insert(3, "a", 1_120), "a expired, so it is new again");
        assert!(d.seen_or_insert(3, "b", 1_120));
        d.forget_all();
        assert!(!d.knows(3) && d.is_empty());
    }

    #[test]
    fn the_size_cap_drops_the_oldest() {
        let mut d = DedupWindow::new(86_400, 2);
        for (i, id) in ["x", "y", "z"].iter().enumerate() {
            d.seen_or_insert(0, id, i as u32);
        }
        d.expire(10);
        assert_eq!(d.len(), 2);
        assert!(!d.seen_or_insert(0, "x", 11), "x was the oldest and is gone");
    }
}
