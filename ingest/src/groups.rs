//! Which account each user was last tied to by a Segment `group` call, so that their later
//! track calls without a `context.groupId` are still attributed (docs/architecture.md#contracts, attribution).
//!
//! Per instance and in memory, bounded in **bytes** (`segment.remembered_bytes`), not entries:
//! a count cap says nothing about memory when each id may be long. With the id rule (ids are at
//! most 256 bytes) an entry costs at most ~640 bytes, typically ~200.
//!
//! Who is forgotten when the budget is full matters as much as the bound: a forgotten user's
//! events lose their account, and an account whose users all lose it looks like churn. So:
//! - **Least recently used** goes first, and every lookup refreshes recency: a real user who
//!   keeps sending track calls stays recent, while a flood of one-off fresh users ages out
//!   among itself.
//! - **Per source fairness**: entries are kept per source (write key), and the budget is taken
//!   back from the source that holds the most bytes. A flood through one write key (a leaked
//!   browser key, a runaway integration) only evicts that key's own entries once it holds the
//!   largest share; other sources keep theirs.
//!
//! An instance that has not seen a user's group call leaves the event unattributed (kept and
//! counted), which SDKs avoid by sending `context.groupId`.

use std::collections::HashMap;
use std::sync::Mutex;

use lru::LruCache;

/// What one remembered entry costs beyond its two ids' bytes: the LRU node (two `String`
/// headers and two links, 64 bytes, boxed), its hash-table slot and control byte at up to
/// half occupancy after a resize, and allocator rounding of the node and both strings.
/// Deliberately generous, so the budget bounds real memory (checked by the RSS test).
pub const ENTRY_OVERHEAD: usize = 160;

/// One source's remembered users, least recently used first out.
struct Lane {
    users: LruCache<String, String>,
    bytes: usize,
}

struct Inner {
    lanes: HashMap<String, Lane>,
    bytes: usize,
}

pub struct GroupMemory {
    budget: usize,
    inner: Mutex<Inner>,
}

fn cost(user: &str, account: &str) -> usize {
    user.len() + account.len() + ENTRY_OVERHEAD
}

impl GroupMemory {
    /// A memory of at most `budget` bytes (0 = remember nothing).
    pub fn new(budget: usize) -> Self {
        Self { budget, inner: Mutex::new(Inner { lanes: HashMap::new(), bytes: 0 }) }
    }

    /// The account of `user_id`'s last group call: as remembered from `source` first (the
    /// caller's own write key), else from any other source. Refreshes the entry's recency.
    pub fn account_of(&self, source: &str, user_id: &str) -> Option<String> {
        let mut inner = self.inner.lock().expect("group memory lock poisoned");
        if let Some(account) = inner.lanes.get_mut(source).and_then(|l| l.users.get(user_id)) {
            return Some(account.clone());
        }
        // Server SDKs often send the group call and browsers the track calls, with two keys.
        inner.lanes.values_mut().find_map(|l| l.users.get(user_id).cloned())
    }

    /// Remembers `account_id` as `user_id`'s account, as told by `source`.
    pub fn remember(&self, source: &str, user_id: &str, account_id: &str) {
        let size = cost(user_id, account_id);
        if user_id.is_empty() || account_id.is_empty() || size > self.budget {
            return;
        }
        let mut inner = self.inner.lock().expect("group memory lock poisoned");
        let inner = &mut *inner;
        let lane =
            inner.lanes.entry(source.to_owned()).or_insert_with(|| Lane { users: LruCache::unbounded(), bytes: 0 });
        if let Some(old) = lane.users.put(user_id.to_owned(), account_id.to_owned()) {
            let freed = cost(user_id, &old);
            lane.bytes -= freed;
            inner.bytes -= freed;
        }
        lane.bytes += size;
        inner.bytes += size;
        while inner.bytes > self.budget {
            // Take back from the largest holder: a flooding source pays for its own flood.
            let Some(lane) = inner.lanes.values_mut().max_by_key(|l| l.bytes) else { break };
            let Some((user, account)) = lane.users.pop_lru() else { break };
            let freed = cost(&user, &account);
            lane.bytes -= freed;
            inner.bytes -= freed;
        }
    }

    /// Users remembered, over all sources.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("group memory lock poisoned").lanes.values().map(|l| l.users.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes accounted for (ids plus [`ENTRY_OVERHEAD`] per entry); never above the budget.
    pub fn bytes(&self) -> usize {
        self.inner.lock().expect("group memory lock poisoned").bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_latest_group() {
        let m = GroupMemory::new(1 << 20);
        m.remember("web", "u1", "acme");
        m.remember("web", "u1", "globex");
        assert_eq!(m.account_of("web", "u1").as_deref(), Some("globex"));
        assert_eq!(m.account_of("server", "u1").as_deref(), Some("globex"), "found from another key too");
        assert_eq!(m.account_of("web", "nobody"), None);
        assert_eq!((m.len(), m.bytes()), (1, cost("u1", "globex")));
    }

    #[test]
    fn stays_within_its_byte_budget_evicting_the_least_recently_used() {
        let budget = 10 * cost("user-00", "acme");
        let m = GroupMemory::new(budget);
        m.remember("web", "real", "acme");
        for i in 0..1000 {
            m.remember("web", &format!("user-{i:02}"), "acme");
            // The real user keeps using the product: each track call's lookup keeps it recent.
            assert_eq!(m.account_of("web", "real").as_deref(), Some("acme"), "after {i}");
            assert!(m.bytes() <= budget);
        }
        assert!(m.len() <= 10);
        assert_eq!(m.account_of("web", "user-00"), None, "the oldest idle user went first");
    }

    #[test]
    fn a_flood_through_one_key_evicts_only_that_keys_entries() {
        let budget = 100 * cost("flood-000000", "x");
        let m = GroupMemory::new(budget);
        for i in 0..20 {
            m.remember("app", &format!("real-{i}"), "acme");
        }
        for i in 0..100_000 {
            m.remember("leaked-key", &format!("flood-{i:06}"), "x");
        }
        assert!(m.bytes() <= budget);
        for i in 0..20 {
            assert_eq!(m.account_of("app", &format!("real-{i}")).as_deref(), Some("acme"), "real-{i} was evicted");
        }
    }

    #[test]
    fn zero_budget_remembers_nothing() {
        let m = GroupMemory::new(0);
        m.remember("web", "u1", "acme");
        assert!(m.is_empty());
        assert_eq!(m.account_of("web", "u1"), None);
    }
}
