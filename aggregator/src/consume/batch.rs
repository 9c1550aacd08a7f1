//! Assembling one batch of consumed records: rows to store, dead letters, the offsets to commit —
//! and what a consumer-group rebalance in the middle of the batch changes. Pure (no Kafka, no
//! ClickHouse), so the exactly-once bookkeeping is unit-tested on its own.
//!
//! After a rebalance the dedup windows are dropped (another instance may have stored more of a
//! partition) and reloaded from ClickHouse when next needed. The rows this batch read but has not
//! stored yet are in no reloaded window, so they must be checked against it and remembered again
//! ([`Batch::window_loaded`]): otherwise a client retry of one of them later in the same batch
//! would be stored twice, and a row another instance stored meanwhile would be stored again.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use schemas::runtime::suppressions::Suppressions;

use crate::consume::dedup::{id_hash, DedupWindow};
use crate::consume::record::{EventRecord, Origin};

/// A consumed record that becomes a row. Its bytes — the record as read (for the dead-letter
/// topic, should ClickHouse refuse the row), its message id and its encoded `events` row — sit
/// in the batch's buffer: no allocation per record ([`Batch::row`], [`Batch::dead_letter`]).
#[derive(Debug, Clone)]
pub struct Pending {
    pub partition: i32,
    pub offset: i64,
    /// The event's time: the monthly partition its row goes to ([`crate::consume::chunk`]).
    pub timestamp: u32,
    pub received_at: u32,
    id_hash: u64,
    key: Option<Range<usize>>,
    payload: Range<usize>,
    message_id: Range<usize>,
    row: Range<usize>,
}

/// A record that cannot be stored: unreadable, or refused by ClickHouse for good.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub error: String,
}

/// What [`Batch::add`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Row,
    Duplicate,
    Dead,
    /// A suppressed person's or account's event: dropped, never stored (docs/privacy.md).
    Suppressed,
}

/// One batch of records. Reused from batch to batch ([`Batch::clear`]): its buffers keep their
/// capacity, so a steady stream allocates nothing per record.
#[derive(Default)]
pub struct Batch {
    pub rows: Vec<Pending>,
    pub dead: Vec<DeadLetter>,
    /// Per Kafka partition, the offset to commit once the batch is stored.
    pub next_offsets: HashMap<i32, i64>,
    /// Partitions whose pending rows have not been checked against a window reloaded since the
    /// last rebalance.
    unchecked: HashSet<i32>,
    /// The bytes [`Pending`] ranges point into.
    bytes: Vec<u8>,
    /// Whose events are dropped (empty unless the consumer follows the suppression topic).
    suppressions: Suppressions,
}

impl Batch {
    /// An empty batch that drops the events `suppressions` matches.
    pub fn new(suppressions: Suppressions) -> Self {
        Self { suppressions, ..Self::default() }
    }

    /// Records read (rows and dead letters).
    pub fn len(&self) -> usize {
        self.rows.len() + self.dead.len()
    }

    /// Empties the batch for the next one, keeping its memory.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.dead.clear();
        self.next_offsets.clear();
        self.unchecked.clear();
        self.bytes.clear();
    }

    /// Adds the record at `origin`. Its partition's window must be loaded (and
    /// [`Batch::window_loaded`] called) first.
    pub fn add(
        &mut self,
        dedup: &mut DedupWindow,
        origin: Origin<'_>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Added {
        let partition = origin.partition;
        self.next_offsets.insert(partition, origin.offset + 1);
        let event = match EventRecord::parse(payload) {
            Ok(event) => event,
            Err(error) => {
                let (key, payload) = (key.map(<[u8]>::to_vec), payload.unwrap_or_default().to_vec());
                self.dead.push(DeadLetter { partition, key, payload, error });
                return Added::Dead;
            }
        };
        if self.suppressions.matches(&event.account_id, &event.user_id) {
            return Added::Suppressed;
        }
        let id_hash = id_hash(&event.message_id);
        if dedup.seen_or_insert_hash(partition, id_hash, event.received_at) {
            return Added::Duplicate;
        }
        let key = key.map(|k| self.append(k));
        let payload = self.append(payload.unwrap_or_default());
        let message_id = self.append(event.message_id.as_bytes());
        let start = self.bytes.len();
        event.write_row(origin, &mut self.bytes);
        let row = start..self.bytes.len();
        let (timestamp, received_at) = (event.timestamp, event.received_at);
        self.rows.push(Pending {
            partition,
            offset: origin.offset,
            timestamp,
            received_at,
            id_hash,
            key,
            payload,
            message_id,
            row,
        });
        Added::Row
    }

    fn append(&mut self, data: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(data);
        start..self.bytes.len()
    }

    /// `p`'s `events` row, in RowBinary.
    pub fn row(&self, p: &Pending) -> &[u8] {
        &self.bytes[p.row.clone()]
    }

    /// The rows of `pending` (rows of this batch), in RowBinary.
    pub fn encoded<'a>(&'a self, pending: &'a [Pending]) -> Encoded<'a> {
        Encoded { batch: self, pending: pending.iter() }
    }

    pub fn message_id(&self, p: &Pending) -> &str {
        // Appended from a `&str`, so always UTF-8.
        std::str::from_utf8(&self.bytes[p.message_id.clone()]).unwrap_or_default()
    }

    /// `p`'s record as read, to be dead-lettered with `error`.
    pub fn dead_letter(&self, p: &Pending, error: String) -> DeadLetter {
        let key = p.key.clone().map(|k| self.bytes[k].to_vec());
        DeadLetter { partition: p.partition, key, payload: self.bytes[p.payload.clone()].to_vec(), error }
    }

    /// A rebalance happened; `ours` are the partitions still assigned. Rows, dead letters and
    /// offsets of the others are dropped — their new owner consumes them — and every window is
    /// forgotten, to be reloaded from ClickHouse.
    pub fn rebalanced(&mut self, dedup: &mut DedupWindow, ours: &HashSet<i32>) {
        dedup.forget_all();
        self.rows.retain(|p| ours.contains(&p.partition));
        self.dead.retain(|d| ours.contains(&d.partition));
        self.next_offsets.retain(|p, _| ours.contains(p));
        self.unchecked = self.rows.iter().map(|p| p.partition).collect();
    }

    /// `partition`'s window was just (re)loaded from ClickHouse: drops the pending rows it shows
    /// stored (another owner stored them meanwhile) and remembers the rest, so a retry later in
    /// this batch is still a duplicate. Returns the number of rows dropped.
    pub fn window_loaded(&mut self, dedup: &mut DedupWindow, partition: i32) -> usize {
        if !self.unchecked.remove(&partition) {
            return 0;
        }
        let before = self.rows.len();
        self.rows
            .retain(|p| p.partition != partition || !dedup.seen_or_insert_hash(partition, p.id_hash, p.received_at));
        before - self.rows.len()
    }

    /// Partitions with rows pending whose window is not loaded (only after a rebalance): they
    /// must be loaded and checked before the batch is stored.
    pub fn unloaded_partitions(&self, dedup: &DedupWindow) -> Vec<i32> {
        let mut p: Vec<i32> = self.unchecked.iter().copied().filter(|p| !dedup.knows(*p)).collect();
        p.sort_unstable();
        p
    }

    /// The lowest offset of `partition` this batch holds a row of: a reloaded window must cover
    /// every stored row from there on, however long ago it was received.
    pub fn first_offset(&self, partition: i32) -> Option<i64> {
        self.rows.iter().filter(|p| p.partition == partition).map(|p| p.offset).min()
    }
}

/// [`Batch::encoded`]: a named iterator, not a closure, because the insert future that holds it
/// must be `Send` for any borrow.
pub struct Encoded<'a> {
    batch: &'a Batch,
    pending: std::slice::Iter<'a, Pending>,
}

impl<'a> Iterator for Encoded<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        self.pending.next().map(|p| self.batch.row(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use schemas::event::{Event, EventKind};

    use warehouse::columns::to_datetime;

    fn record(id: &str) -> Vec<u8> {
        let e = Event::new(EventKind::Login, id.into(), "acme".into(), "u1".into(), Utc::now(), Utc::now(), "t".into());
        serde_json::to_vec(&e).unwrap()
    }

    fn origin(partition: i32, offset: i64) -> Origin<'static> {
        Origin { topic: "usage-events", partition, offset }
    }

    fn ids(b: &Batch) -> Vec<&str> {
        b.rows.iter().map(|p| b.message_id(p)).collect()
    }

    fn add(b: &mut Batch, d: &mut DedupWindow, partition: i32, offset: i64, id: &str) -> Added {
        b.add(d, origin(partition, offset), Some(b"acme"), Some(&record(id)))
    }

    #[test]
    fn rebalance_mid_batch_keeps_pending_ids() {
        let mut dedup = DedupWindow::new(86_400, 1_000);
        let mut b = Batch::default();
        dedup.load(0, []);
        dedup.load(1, []);
        assert_eq!(add(&mut b, &mut dedup, 0, 10, "m1"), Added::Row);
        assert_eq!(add(&mut b, &mut dedup, 1, 20, "n1"), Added::Row);
        assert_eq!(b.add(&mut dedup, origin(1, 21), None, Some(b"{oops")), Added::Dead);

        // Partition 1 moves away; partition 0 stays. Both windows are forgotten.
        b.rebalanced(&mut dedup, &HashSet::from([0]));
        assert_eq!(b.rows.len(), 1, "rows of the revoked partition are not ours to store");
        assert!(b.dead.is_empty(), "nor are its dead letters");
        assert_eq!(b.next_offsets, HashMap::from([(0, 11)]));
        assert_eq!(b.unloaded_partitions(&dedup), vec![0]);
        assert_eq!(b.first_offset(0), Some(10));

        // The next record of partition 0 reloads its window from ClickHouse (m1 is not stored
        // yet, so not in it), and is a client retry of m1: it must be caught.
        dedup.load(0, []);
        assert_eq!(b.window_loaded(&mut dedup, 0), 0);
        assert_eq!(add(&mut b, &mut dedup, 0, 12, "m1"), Added::Duplicate, "retry of a pending row");
        assert_eq!(add(&mut b, &mut dedup, 0, 13, "m2"), Added::Row);
        assert_eq!(ids(&b), ["m1", "m2"]);
        assert!(b.unloaded_partitions(&dedup).is_empty());
    }

    #[test]
    fn a_pending_row_another_owner_stored_meanwhile_is_dropped() {
        let mut dedup = DedupWindow::new(86_400, 1_000);
        let mut b = Batch::default();
        dedup.load(2, []);
        add(&mut b, &mut dedup, 2, 5, "a");
        add(&mut b, &mut dedup, 2, 6, "b");
        // Partition 2 was revoked and assigned back; its other owner stored "a" in between.
        b.rebalanced(&mut dedup, &HashSet::from([2]));
        dedup.load(2, [(to_datetime(Utc::now()), "a".to_owned())]);
        assert_eq!(b.window_loaded(&mut dedup, 2), 1);
        assert_eq!(ids(&b), ["b"]);
        assert_eq!(add(&mut b, &mut dedup, 2, 6, "b"), Added::Duplicate, "the replay of b");
    }
}
