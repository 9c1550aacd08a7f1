//! Which account each user was last tied to by a Segment `group` call, so that their later
//! track calls without a `context.groupId` are still attributed (DESIGN.md attribution chain).
//!
//! Per instance and in memory: bounded, so a flood of user ids cannot exhaust memory. An
//! instance that has not seen a user's group call leaves the event unattributed (kept and
//! counted), which SDKs avoid by sending `context.groupId`.

use std::collections::HashMap;
use std::sync::Mutex;

pub struct GroupMemory {
    capacity: usize,
    users: Mutex<HashMap<String, String>>,
}

impl GroupMemory {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, users: Mutex::new(HashMap::new()) }
    }

    pub fn account_of(&self, user_id: &str) -> Option<String> {
        self.users.lock().expect("group memory lock poisoned").get(user_id).cloned()
    }

    pub fn remember(&self, user_id: &str, account_id: &str) {
        if self.capacity == 0 || user_id.is_empty() || account_id.is_empty() {
            return;
        }
        let mut users = self.users.lock().expect("group memory lock poisoned");
        if users.len() >= self.capacity && !users.contains_key(user_id) {
            // Evict an arbitrary entry: O(1), and a forgotten user only loses the last step of
            // the attribution chain.
            if let Some(victim) = users.keys().next().cloned() {
                users.remove(&victim);
            }
        }
        users.insert(user_id.to_owned(), account_id.to_owned());
    }

    pub fn len(&self) -> usize {
        self.users.lock().expect("group memory lock poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_latest_group_and_stays_bounded() {
        let m = GroupMemory::new(2);
        m.remember("u1", "acme");
        m.remember("u1", "globex");
        assert_eq!(m.account_of("u1").as_deref(), Some("globex"));
        m.remember("u2", "acme");
        m.remember("u3", "initech");
        assert_eq!(m.len(), 2);
        assert_eq!(m.account_of("u3").as_deref(), Some("initech"));
        assert_eq!(m.account_of("nobody"), None);
    }
}
