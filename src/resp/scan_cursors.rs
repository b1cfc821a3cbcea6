//! `SCAN` cursors.
//!
//! Redis cursors are 64-bit numbers, but ferrokv's keyspace is ordered by key, so the place an
//! iteration stopped is a key. The server keeps a bounded table from cursor numbers to resume
//! keys; each `SCAN` reply hands out a fresh number. Old entries are evicted first in, first
//! out, so abandoned iterations cost a bounded amount of memory. A cursor that is unknown
//! (evicted, from a restarted server, or made up) restarts the iteration from the beginning,
//! which the SCAN contract allows ("duplicates are allowed").

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use parking_lot::Mutex;

/// How many live cursors a node remembers.
pub const MAX_CURSORS: usize = 65_536;

#[derive(Default)]
pub struct ScanCursors {
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    resume_keys: HashMap<u64, Bytes>,
    order: VecDeque<u64>,
    last_id: u64,
}

impl ScanCursors {
    /// A new cursor that resumes at `resume_key` (inclusive).
    pub fn register(&self, resume_key: Bytes) -> u64 {
        let mut table = self.inner.lock();
        table.last_id += 1;
        let id = table.last_id;
        table.resume_keys.insert(id, resume_key);
        table.order.push_back(id);
        while table.order.len() > MAX_CURSORS {
            let oldest = table.order.pop_front().expect("non-empty");
            table.resume_keys.remove(&oldest);
        }
        id
    }

    /// Where cursor `id` resumes; `None` for cursor 0 or an unknown cursor.
    pub fn resume_key(&self, id: u64) -> Option<Bytes> {
        self.inner.lock().resume_keys.get(&id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_nonzero_distinct_and_bounded() {
        let cursors = ScanCursors::default();
        let first = cursors.register(Bytes::from_static(b"a"));
        let second = cursors.register(Bytes::from_static(b"b"));
        assert!(first != 0 && second != first);
        assert_eq!(cursors.resume_key(first).as_deref(), Some(&b"a"[..]));
        assert_eq!(cursors.resume_key(0), None);
        for _ in 0..MAX_CURSORS {
            cursors.register(Bytes::new());
        }
        assert_eq!(cursors.resume_key(first), None, "the oldest cursor is evicted");
        assert_eq!(cursors.inner.lock().resume_keys.len(), MAX_CURSORS);
    }
}
