//! What the leader knows about each follower's log, and the flow control of replication.
//!
//! A follower's progress is in one of three states:
//!
//! - **Probe**: the leader does not know where the follower's log matches its own. It sends
//!   one append at a time (then pauses until a response, or the answer to the next periodic
//!   heartbeat: not to a read-index round's) and backs up on each rejection.
//! - **Replicate**: the logs match up to `matched`; the leader streams appends optimistically,
//!   advancing `next_idx` as it sends, limited by the in-flight window (a full window lets one
//!   more message go per answered periodic heartbeat).
//! - **Snapshot**: the entries the follower needs are compacted; a snapshot is in flight and
//!   appends wait until it is reported done.

use std::collections::BTreeMap;

use super::message::NodeId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    Probe,
    Replicate,
    Snapshot,
}

/// A bounded window of in-flight appends, each remembered by its last index.
#[derive(Clone, Debug)]
pub struct Inflights {
    last_indexes: std::collections::VecDeque<u64>,
    capacity: usize,
}

impl Inflights {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "the in-flight window needs room for one message");
        Inflights {
            last_indexes: std::collections::VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    pub fn full(&self) -> bool {
        self.last_indexes.len() >= self.capacity
    }

    pub fn add(&mut self, last_index: u64) {
        assert!(!self.full(), "adding to a full in-flight window");
        self.last_indexes.push_back(last_index);
    }

    /// Frees every message whose entries end at or before `index`.
    pub fn free_to(&mut self, index: u64) {
        while self.last_indexes.front().is_some_and(|&last| last <= index) {
            self.last_indexes.pop_front();
        }
    }

    pub fn free_first_one(&mut self) {
        self.last_indexes.pop_front();
    }

    pub fn reset(&mut self) {
        self.last_indexes.clear();
    }

    pub fn count(&self) -> usize {
        self.last_indexes.len()
    }
}

/// The leader's view of one follower (or of itself).
#[derive(Clone, Debug)]
pub struct Progress {
    /// The highest index known to match the leader's log. Invariant: `matched < next_idx`.
    pub matched: u64,
    /// The next index to send.
    pub next_idx: u64,
    pub state: ProgressState,
    /// In Probe: an append was sent and no answer has come yet.
    pub probe_sent: bool,
    /// In Snapshot: the index of the snapshot in flight.
    pub pending_snapshot: u64,
    /// Heard from within the current check-quorum period.
    pub recent_active: bool,
    pub inflights: Inflights,
    /// The latest heartbeat round this peer acknowledged (lease timing).
    pub acked_round: u64,
    /// Set at each periodic heartbeat: the next heartbeat answer from this peer may unpause
    /// replication to it and send it an append. Read-index rounds send heartbeats too, as
    /// often as every round; if each answer did this, a follower that is behind would be
    /// sent the same probe, or another full message, for every one of them.
    pub resume_on_heartbeat: bool,
}

impl Progress {
    pub fn new(next_idx: u64, max_inflight: usize) -> Self {
        Progress {
            matched: 0,
            next_idx,
            state: ProgressState::Probe,
            probe_sent: false,
            pending_snapshot: 0,
            recent_active: false,
            inflights: Inflights::new(max_inflight),
            acked_round: 0,
            resume_on_heartbeat: false,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.pending_snapshot = 0;
        self.state = state;
        self.inflights.reset();
    }

    pub fn become_probe(&mut self) {
        // After a snapshot, continue from it (or from what matched, if further).
        if self.state == ProgressState::Snapshot {
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next_idx = (self.matched + 1).max(pending + 1);
        } else {
            self.reset_state(ProgressState::Probe);
            self.next_idx = self.matched + 1;
        }
    }

    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_idx = self.matched + 1;
    }

    pub fn become_snapshot(&mut self, snapshot_index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
    }

    /// The follower confirmed its log matches through `index`; returns whether that is news.
    pub fn maybe_update(&mut self, index: u64) -> bool {
        let updated = self.matched < index;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next_idx = self.next_idx.max(index + 1);
        updated
    }

    /// Entries up to `last` were just sent (Replicate: optimistically move on).
    pub fn optimistic_update(&mut self, last: u64) {
        self.next_idx = last + 1;
    }

    /// The follower rejected an append at `rejected`; its hint says its log may match at
    /// `match_hint`. Returns whether `next_idx` moved back (the rejection was not stale).
    pub fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            // Stale unless it rejects exactly what matched + 1 would have been.
            if rejected <= self.matched {
                return false;
            }
            self.next_idx = self.matched + 1;
            return true;
        }
        // Probe: stale unless it answers our probe.
        if self.next_idx == 0 || self.next_idx - 1 != rejected {
            return false;
        }
        self.next_idx = (match_hint + 1).min(rejected).max(1);
        self.probe_sent = false;
        true
    }

    /// Whether the leader should hold back appends to this follower for now.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }
}

/// The progress of every voter, and quorum arithmetic over it.
#[derive(Clone, Debug)]
pub struct ProgressTracker {
    pub progress: BTreeMap<NodeId, Progress>,
    pub max_inflight: usize,
}

impl ProgressTracker {
    pub fn new(max_inflight: usize) -> Self {
        ProgressTracker {
            progress: BTreeMap::new(),
            max_inflight,
        }
    }

    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.progress.keys().copied()
    }

    pub fn quorum(&self) -> usize {
        self.progress.len() / 2 + 1
    }

    /// The highest index replicated on a quorum.
    pub fn quorum_matched(&self) -> u64 {
        let mut matched: Vec<u64> = self.progress.values().map(|p| p.matched).collect();
        if matched.is_empty() {
            return 0;
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        matched[self.quorum() - 1]
    }

    /// The highest heartbeat round acknowledged by a quorum (`self_id` counts for every round).
    pub fn quorum_acked_round(&self, self_id: NodeId, current_round: u64) -> u64 {
        let mut rounds: Vec<u64> = self
            .progress
            .iter()
            .map(|(&id, p)| {
                if id == self_id {
                    current_round
                } else {
                    p.acked_round
                }
            })
            .collect();
        if rounds.is_empty() {
            return 0;
        }
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds[self.quorum() - 1]
    }

    /// Whether a quorum granted (`Some(true)`), a quorum rejected (`Some(false)`), or it is
    /// still open (`None`).
    pub fn tally(&self, votes: &BTreeMap<NodeId, bool>) -> Option<bool> {
        let voters: Vec<NodeId> = self.voters().collect();
        let granted = voters.iter().filter(|id| votes.get(id) == Some(&true)).count();
        let rejected = voters.iter().filter(|id| votes.get(id) == Some(&false)).count();
        if granted >= self.quorum() {
            Some(true)
        } else if rejected > voters.len() - self.quorum() {
            Some(false)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflights_fill_and_free_in_order() {
        let mut inflights = Inflights::new(3);
        for last in [5, 8, 10] {
            inflights.add(last);
        }
        assert!(inflights.full());
        inflights.free_to(8);
        assert_eq!(inflights.count(), 1);
        inflights.free_first_one();
        assert_eq!(inflights.count(), 0);
    }

    #[test]
    fn decrement_ignores_stale_rejections() {
        let mut p = Progress::new(10, 4);
        p.matched = 5;
        p.become_replicate();
        assert!(!p.maybe_decr_to(5, 5), "at or below match is stale");
        p.next_idx = 9;
        assert!(p.maybe_decr_to(8, 3));
        assert_eq!(p.next_idx, 6);
        p.become_probe();
        p.next_idx = 6;
        assert!(!p.maybe_decr_to(7, 2), "not the probe we sent");
        assert!(p.maybe_decr_to(5, 2));
        assert_eq!(p.next_idx, 3);
    }

    #[test]
    fn quorum_matched_is_the_median_for_odd_groups() {
        let mut tracker = ProgressTracker::new(4);
        for (id, matched) in [(1, 5), (2, 3), (3, 9)] {
            let mut p = Progress::new(1, 4);
            p.matched = matched;
            tracker.progress.insert(id, p);
        }
        assert_eq!(tracker.quorum_matched(), 5);
        let mut votes = BTreeMap::new();
        votes.insert(1, true);
        assert_eq!(tracker.tally(&votes), None);
        votes.insert(2, false);
        votes.insert(3, false);
        assert_eq!(tracker.tally(&votes), Some(false));
    }
}
