//! Read-index requests waiting for a heartbeat round to confirm the leader's leadership.
//!
//! A leader may answer "read at index i" (i = its commit index when the request arrived) only
//! once a quorum has acknowledged a heartbeat sent after the request arrived: that proves no
//! newer leader existed at that moment. Requests are confirmed in arrival order, so one
//! confirmed request confirms every earlier one too.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::raft::message::{Message, NodeId};

/// How the leader confirms it is still the leader before serving a read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadOnlyOption {
    /// A heartbeat round per read batch (Raft thesis §6.4).
    #[default]
    Safe,
    /// A lease built on check-quorum: while a quorum acknowledged a heartbeat less than an
    /// election timeout ago, no other leader can exist, so reads are served at once. Falls
    /// back to `Safe` when the lease has lapsed. Assumes tick rates agree across nodes.
    LeaseBased,
}

/// A read served at `index`, with the context its requester gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadState {
    pub index: u64,
    pub request_ctx: Vec<u8>,
}

#[derive(Debug)]
pub struct ReadIndexStatus {
    pub request: Message,
    pub index: u64,
    pub acks: BTreeSet<NodeId>,
}

#[derive(Debug, Default)]
pub struct ReadOnly {
    pub option: ReadOnlyOption,
    pending: HashMap<Vec<u8>, ReadIndexStatus>,
    queue: VecDeque<Vec<u8>>,
}

impl ReadOnly {
    pub fn new(option: ReadOnlyOption) -> Self {
        ReadOnly {
            option,
            pending: HashMap::new(),
            queue: VecDeque::new(),
        }
    }

    /// Queues a read request received when the commit index was `index`.
    pub fn add_request(&mut self, index: u64, request: Message) {
        let ctx = request.entries[0].data.clone();
        if self.pending.contains_key(&ctx) {
            return;
        }
        self.pending.insert(
            ctx.clone(),
            ReadIndexStatus {
                request,
                index,
                acks: BTreeSet::new(),
            },
        );
        self.queue.push_back(ctx);
    }

    /// Records `from`'s acknowledgement of the heartbeat carrying `ctx`; returns the
    /// acknowledgers so far.
    pub fn recv_ack(&mut self, from: NodeId, ctx: &[u8]) -> Option<&BTreeSet<NodeId>> {
        let status = self.pending.get_mut(ctx)?;
        status.acks.insert(from);
        Some(&status.acks)
    }

    /// Confirms the request with `ctx` and every request queued before it.
    pub fn advance(&mut self, ctx: &[u8]) -> Vec<ReadIndexStatus> {
        let Some(position) = self.queue.iter().position(|c| c.as_slice() == ctx) else {
            return Vec::new();
        };
        self.queue
            .drain(..=position)
            .filter_map(|c| self.pending.remove(&c))
            .collect()
    }

    /// The context of the newest pending request, to attach to heartbeats.
    pub fn last_pending_request_ctx(&self) -> Option<Vec<u8>> {
        self.queue.back().cloned()
    }

    pub fn pending_read_count(&self) -> usize {
        self.queue.len()
    }
}
