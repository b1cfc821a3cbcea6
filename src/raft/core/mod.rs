//! The Raft state machine of one node: roles, terms, timers, and the transitions between them.
//! Message handling lives in `step.rs` (dispatch and voting), `leader.rs` and `follower.rs`.

mod follower;
mod leader;
pub mod read_only;
mod step;

use std::collections::{BTreeMap, VecDeque};

use super::log::RaftLog;
use super::message::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Message, MessageType, NONE, NodeId,
};
use super::progress::{Progress, ProgressTracker};
use super::storage::{Storage, StorageError};
use read_only::{ReadOnly, ReadOnlyOption, ReadState};

/// How a node is configured. Durations are in ticks.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id; never `NONE`.
    pub id: NodeId,
    /// The voters of a new group. Ignored when storage already has a membership.
    pub peers: Vec<NodeId>,
    /// A follower that hears from no leader for a random time in
    /// `[election_tick, 2 * election_tick)` campaigns.
    pub election_tick: usize,
    /// A leader sends heartbeats every `heartbeat_tick`.
    pub heartbeat_tick: usize,
    /// The last index the application applied (on restart).
    pub applied: u64,
    /// Largest append message, in bytes (at least one entry is always sent).
    pub max_size_per_msg: u64,
    /// Most appends in flight to one follower in the Replicate state.
    pub max_inflight_msgs: usize,
    /// Ask for votes in a pre-vote round first, so that a node cut off from the group does
    /// not disrupt it by raising the term when it comes back.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum for an election timeout steps down, and
    /// followers that hear from a leader ignore vote requests for an election timeout.
    pub check_quorum: bool,
    /// A leader whose commit index moves tells its followers with the next ready instead of at
    /// once ([`Raft::announce_commit`]): an append the round sends anyway (new proposals) then
    /// carries it, and only followers that got no such append are sent one. Under load that
    /// halves the appends of a round, and with them the followers' answers; the followers
    /// learn the commit index in the same round either way.
    pub defer_commit_broadcast: bool,
    pub read_only_option: ReadOnlyOption,
    /// The seed of the node's randomness (election timeouts). Same seed, same behaviour.
    pub seed: u64,
}

impl Config {
    pub fn new(
        id: NodeId,
        peers: Vec<NodeId>,
        election_tick: usize,
        heartbeat_tick: usize,
        seed: u64,
    ) -> Self {
        Config {
            id,
            peers,
            election_tick,
            heartbeat_tick,
            applied: 0,
            max_size_per_msg: u64::MAX,
            max_inflight_msgs: 256,
            pre_vote: false,
            check_quorum: false,
            defer_commit_broadcast: false,
            read_only_option: ReadOnlyOption::Safe,
            seed,
        }
    }

    pub fn validate(&self) -> Result<(), RaftError> {
        let invalid = |why: &str| Err(RaftError::Config(why.to_string()));
        if self.id == NONE {
            return invalid("the node id must not be 0");
        }
        if self.heartbeat_tick == 0 {
            return invalid("heartbeat_tick must be at least 1");
        }
        if self.election_tick <= self.heartbeat_tick {
            return invalid("election_tick must exceed heartbeat_tick");
        }
        if self.max_inflight_msgs == 0 {
            return invalid("max_inflight_msgs must be at least 1");
        }
        if self.read_only_option == ReadOnlyOption::LeaseBased && !self.check_quorum {
            return invalid("lease-based reads need check_quorum");
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RaftError {
    /// The proposal cannot be accepted now (not the leader, or a leader transfer is running).
    #[error("proposal dropped")]
    ProposalDropped,
    #[error("invalid raft configuration: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Store(#[from] StorageError),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StateRole {
    #[default]
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// State that need not be persisted: who leads, and this node's role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoftState {
    pub leader_id: NodeId,
    pub role: StateRole,
}

/// SplitMix64: a tiny, fixed, seedable generator, so a seed replays the same run on every
/// build and platform.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high)`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        assert!(low < high, "empty range [{low}, {high})");
        low + self.next_u64() % (high - low)
    }
}

/// How a campaign is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CampaignKind {
    /// A pre-vote round first.
    PreElection,
    Election,
    /// Ordered by the leader (`TimeoutNow`): skips pre-vote and the voters' lease.
    Transfer,
}

/// Heartbeat rounds remembered for lease timing.
const LEASE_ROUNDS_KEPT: usize = 64;

/// One node's Raft state machine. Fields are public for tests and status; change them only
/// through methods.
pub struct Raft<S: Storage> {
    pub id: NodeId,
    /// Invariant: never decreases.
    pub term: u64,
    /// Whom this node voted for in `term`.
    pub vote: NodeId,
    pub raft_log: RaftLog<S>,
    pub prs: ProgressTracker,
    pub state: StateRole,
    /// The leader of `term` as far as this node knows.
    pub lead: NodeId,
    /// Messages to send, drained by `RawNode::ready`.
    pub msgs: Vec<Message>,
    /// Reads confirmed, drained by `RawNode::ready`.
    pub read_states: Vec<ReadState>,
    /// The node leadership is being handed to, if any.
    pub lead_transferee: Option<NodeId>,
    /// The index of the latest conf change proposed by this leader; a new one is accepted only
    /// once this is applied.
    pub pending_conf_index: u64,
    pub pre_vote: bool,
    pub check_quorum: bool,
    defer_commit_broadcast: bool,
    /// The commit index moved and followers were not told yet (see
    /// [`Config::defer_commit_broadcast`]).
    commit_unannounced: bool,
    votes: BTreeMap<NodeId, bool>,
    election_elapsed: usize,
    heartbeat_elapsed: usize,
    election_timeout: usize,
    heartbeat_timeout: usize,
    randomized_election_timeout: usize,
    max_msg_size: u64,
    read_only: ReadOnly,
    /// Read requests that arrived before this leader committed an entry of its term.
    pending_read_requests: Vec<Message>,
    rng: SplitMix64,
    /// Ticks since start: the clock of the lease.
    ticks: u64,
    /// The latest heartbeat round sent, and when recent rounds were sent.
    heartbeat_round: u64,
    round_sent_at: VecDeque<(u64, u64)>,
}

impl<S: Storage> Raft<S> {
    pub fn new(config: &Config, store: S) -> Result<Self, RaftError> {
        config.validate()?;
        let state = store.initial_state()?;
        let voters = if state.conf_state.voters.is_empty() {
            config.peers.clone()
        } else {
            state.conf_state.voters.clone()
        };
        let mut raft = Raft {
            id: config.id,
            term: 0,
            vote: NONE,
            raft_log: RaftLog::new(store),
            prs: ProgressTracker::new(config.max_inflight_msgs),
            state: StateRole::Follower,
            lead: NONE,
            msgs: Vec::new(),
            read_states: Vec::new(),
            lead_transferee: None,
            pending_conf_index: 0,
            pre_vote: config.pre_vote,
            check_quorum: config.check_quorum,
            defer_commit_broadcast: config.defer_commit_broadcast,
            commit_unannounced: false,
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            election_timeout: config.election_tick,
            heartbeat_timeout: config.heartbeat_tick,
            randomized_election_timeout: config.election_tick,
            max_msg_size: config.max_size_per_msg,
            read_only: ReadOnly::new(config.read_only_option),
            pending_read_requests: Vec::new(),
            rng: SplitMix64::new(config.seed ^ config.id.wrapping_mul(0x2545_F491_4F6C_DD1D)),
            ticks: 0,
            heartbeat_round: 0,
            round_sent_at: VecDeque::new(),
        };
        let last_index = raft.raft_log.last_index();
        for id in voters {
            raft.prs
                .progress
                .insert(id, Progress::new(last_index + 1, config.max_inflight_msgs));
        }
        if !state.hard_state.is_empty() {
            raft.load_state(state.hard_state);
        }
        if config.applied > 0 {
            raft.raft_log.applied_to(config.applied);
        }
        let term = raft.term;
        raft.become_follower(term, NONE);
        Ok(raft)
    }

    fn load_state(&mut self, hard_state: HardState) {
        assert!(
            hard_state.commit >= self.raft_log.committed && hard_state.commit <= self.raft_log.last_index(),
            "hard state commit {} is outside [{}, {}]",
            hard_state.commit,
            self.raft_log.committed,
            self.raft_log.last_index()
        );
        self.raft_log.committed = hard_state.commit;
        self.term = hard_state.term;
        self.vote = hard_state.vote;
    }

    /// For tests: set the term and commit as if loaded from a persisted hard state.
    pub fn load_hard_state_for_test(&mut self, term: u64, commit: u64) {
        self.load_state(HardState {
            term,
            vote: NONE,
            commit,
        });
    }

    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.raft_log.committed,
        }
    }

    pub fn soft_state(&self) -> SoftState {
        SoftState {
            leader_id: self.lead,
            role: self.state,
        }
    }

    /// Whether this node may become leader: it is a voter and has no snapshot pending.
    pub fn promotable(&self) -> bool {
        self.prs.progress.contains_key(&self.id) && self.raft_log.unstable_snapshot().is_none()
    }

    pub fn randomized_election_timeout(&self) -> usize {
        self.randomized_election_timeout
    }

    /// For tests: pretend `elapsed` ticks passed since the last reset of the election timer.
    pub fn set_election_elapsed(&mut self, elapsed: usize) {
        self.election_elapsed = elapsed;
    }

    pub fn election_elapsed(&self) -> usize {
        self.election_elapsed
    }

    /// For tests: force the randomized election timeout.
    pub fn set_randomized_election_timeout(&mut self, timeout: usize) {
        assert!(timeout >= self.election_timeout && timeout < 2 * self.election_timeout);
        self.randomized_election_timeout = timeout;
    }

    fn reset_randomized_election_timeout(&mut self) {
        let et = self.election_timeout as u64;
        self.randomized_election_timeout = self.rng.range(et, 2 * et) as usize;
    }

    fn reset(&mut self, term: u64) {
        if self.term != term {
            assert!(
                term > self.term,
                "the term went back from {} to {term}",
                self.term
            );
            self.term = term;
            self.vote = NONE;
        }
        self.lead = NONE;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.lead_transferee = None;
        self.votes.clear();
        let last_index = self.raft_log.last_index();
        let max_inflight = self.prs.max_inflight;
        for (&id, pr) in self.prs.progress.iter_mut() {
            *pr = Progress::new(last_index + 1, max_inflight);
            if id == self.id {
                pr.matched = last_index;
            }
        }
        self.pending_conf_index = 0;
        self.read_only = ReadOnly::new(self.read_only.option);
        self.pending_read_requests.clear();
        self.heartbeat_round = 0;
        self.round_sent_at.clear();
    }

    pub fn become_follower(&mut self, term: u64, lead: NodeId) {
        self.reset(term);
        self.lead = lead;
        self.state = StateRole::Follower;
    }

    pub fn become_pre_candidate(&mut self) {
        assert_ne!(
            self.state,
            StateRole::Leader,
            "a leader cannot become a pre-candidate"
        );
        // A pre-candidate changes neither its term nor its vote.
        self.state = StateRole::PreCandidate;
        self.votes.clear();
        self.lead = NONE;
    }

    pub fn become_candidate(&mut self) {
        assert_ne!(
            self.state,
            StateRole::Leader,
            "a leader cannot become a candidate"
        );
        let term = self.term + 1;
        self.reset(term);
        self.vote = self.id;
        self.state = StateRole::Candidate;
    }

    pub fn become_leader(&mut self) {
        assert_ne!(
            self.state,
            StateRole::Follower,
            "a follower cannot become leader directly"
        );
        let term = self.term;
        self.reset(term);
        self.lead = self.id;
        self.state = StateRole::Leader;
        if let Some(pr) = self.prs.progress.get_mut(&self.id) {
            pr.become_replicate();
        }
        // Conf changes in the log not yet applied may exist: be conservative and refuse new
        // ones until everything up to here is applied.
        self.pending_conf_index = self.raft_log.last_index();
        // The no-op entry of the new term: once it commits, so has everything before it
        // (§5.4.2), and reads may be served (§8).
        self.append_entry(vec![Entry::default()]);
    }

    /// Moves the logical clock one tick.
    pub fn tick(&mut self) {
        self.ticks += 1;
        match self.state {
            StateRole::Leader => self.tick_heartbeat(),
            _ => self.tick_election(),
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            let _ = self.step(Message::new(MessageType::Hup, self.id, NONE));
        }
    }

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            self.election_elapsed = 0;
            if self.check_quorum {
                let _ = self.step(Message::new(MessageType::CheckQuorum, self.id, NONE));
            }
            // A transfer that did not finish within an election timeout is abandoned.
            if self.state == StateRole::Leader && self.lead_transferee.is_some() {
                self.lead_transferee = None;
            }
        }
        if self.state != StateRole::Leader {
            return;
        }
        if self.heartbeat_elapsed >= self.heartbeat_timeout {
            self.heartbeat_elapsed = 0;
            let _ = self.step(Message::new(MessageType::Beat, self.id, NONE));
        }
    }

    /// Queues a message for sending, filling in `from` and (for non-local messages that do
    /// not set it themselves) the term.
    fn send(&mut self, mut m: Message) {
        m.from = self.id;
        let sets_own_term = matches!(
            m.msg_type,
            MessageType::RequestVote
                | MessageType::RequestPreVote
                | MessageType::RequestVoteResponse
                | MessageType::RequestPreVoteResponse
        );
        if sets_own_term {
            assert_ne!(m.term, 0, "vote messages carry their term");
        } else if !matches!(
            m.msg_type,
            MessageType::Propose | MessageType::ReadIndex | MessageType::TransferLeader
        ) {
            m.term = self.term;
        }
        self.msgs.push(m);
    }

    /// Appends entries of this term to the leader's log.
    fn append_entry(&mut self, mut entries: Vec<Entry>) {
        let last = self.raft_log.last_index();
        for (i, entry) in entries.iter_mut().enumerate() {
            entry.term = self.term;
            entry.index = last + 1 + i as u64;
        }
        let last = self.raft_log.append(&entries);
        if let Some(pr) = self.prs.progress.get_mut(&self.id) {
            pr.maybe_update(last);
        }
        self.maybe_commit();
    }

    /// Commits what a quorum has; returns whether the commit index moved.
    fn maybe_commit(&mut self) -> bool {
        let quorum_matched = self.prs.quorum_matched();
        self.raft_log.maybe_commit(quorum_matched, self.term)
    }

    /// Tells followers a commit index that moved: now, or, deferred, at the next
    /// [`Raft::announce_commit`].
    fn bcast_commit(&mut self) {
        if self.defer_commit_broadcast {
            self.commit_unannounced = true;
        } else {
            self.bcast_append();
        }
    }

    /// Whether a deferred commit index is still to be told.
    pub fn commit_unannounced(&self) -> bool {
        self.commit_unannounced
    }

    /// Sends the deferred commit index to every follower that no queued append already tells
    /// it to. Called as the messages are taken ([`crate::raft::RawNode::ready`]).
    pub fn announce_commit(&mut self) {
        if !std::mem::take(&mut self.commit_unannounced) || self.state != StateRole::Leader {
            return;
        }
        let committed = self.raft_log.committed;
        let peers: Vec<NodeId> = self.prs.voters().filter(|&id| id != self.id).collect();
        for id in peers {
            let told = self
                .msgs
                .iter()
                .any(|m| m.to == id && m.msg_type == MessageType::Append && m.commit >= committed);
            if !told {
                self.send_append(id);
            }
        }
    }

    /// Whether this leader has committed an entry of its own term (its no-op), without which
    /// it does not know the commit index of the group (Raft thesis §6.4).
    fn committed_entry_in_current_term(&self) -> bool {
        self.raft_log.term_or_zero(self.raft_log.committed) == self.term
    }

    /// Applies a committed membership change; returns the new membership.
    pub fn apply_conf_change(&mut self, change: &ConfChange) -> ConfState {
        match change.change_type {
            ConfChangeType::AddNode => self.add_node(change.node_id),
            ConfChangeType::RemoveNode => self.remove_node(change.node_id),
        }
        ConfState::new(self.prs.voters().collect())
    }

    fn add_node(&mut self, id: NodeId) {
        if self.prs.progress.contains_key(&id) {
            return;
        }
        let mut pr = Progress::new(self.raft_log.last_index() + 1, self.prs.max_inflight);
        // A new node counts as active, or check-quorum could depose the leader at once.
        pr.recent_active = true;
        self.prs.progress.insert(id, pr);
    }

    fn remove_node(&mut self, id: NodeId) {
        self.prs.progress.remove(&id);
        if self.prs.progress.is_empty() {
            return;
        }
        if id == self.id && self.state == StateRole::Leader {
            // A leader outside the group can neither take proposals nor stop sending
            // heartbeats that keep the others from electing a member. Hand over to the most
            // caught-up member if one has everything, and step down.
            let last_index = self.raft_log.last_index();
            let successor = self
                .prs
                .progress
                .iter()
                .filter(|(_, pr)| pr.matched == last_index)
                .map(|(&id, _)| id)
                .next();
            if let Some(successor) = successor {
                self.send(Message::new(MessageType::TimeoutNow, self.id, successor));
            }
            let term = self.term;
            self.become_follower(term, NONE);
            return;
        }
        if self.state == StateRole::Leader {
            // The quorum may have shrunk: entries may be committed now.
            if self.maybe_commit() {
                self.bcast_append();
            }
            if self.lead_transferee == Some(id) {
                self.lead_transferee = None;
            }
        }
    }

    /// Whether committed but unapplied entries hold a conf change (then no campaign).
    fn has_unapplied_conf_change(&self) -> bool {
        if self.raft_log.applied >= self.raft_log.committed {
            return false;
        }
        let low = self.raft_log.applied.max(self.raft_log.first_index() - 1) + 1;
        self.raft_log
            .slice(low, self.raft_log.committed + 1, None)
            .map(|entries| entries.iter().any(|e| e.entry_type == EntryType::ConfChange))
            .unwrap_or(false)
    }

    /// Whether the lease lets this leader serve reads without a heartbeat round: a quorum
    /// acknowledged a heartbeat sent less than an election timeout ago (minus one tick of
    /// margin), and no leader transfer (which voids followers' leases) is running.
    pub fn lease_valid(&self) -> bool {
        if self.state != StateRole::Leader || !self.check_quorum || self.lead_transferee.is_some() {
            return false;
        }
        if self.prs.progress.len() == 1 {
            return true;
        }
        let round = self.prs.quorum_acked_round(self.id, self.heartbeat_round);
        let Some(&(_, sent_at)) = self.round_sent_at.iter().find(|(r, _)| *r == round) else {
            return false;
        };
        self.ticks + 1 < sent_at + self.election_timeout as u64
    }

    fn record_heartbeat_round(&mut self) -> u64 {
        self.heartbeat_round += 1;
        self.round_sent_at.push_back((self.heartbeat_round, self.ticks));
        if self.round_sent_at.len() > LEASE_ROUNDS_KEPT {
            self.round_sent_at.pop_front();
        }
        self.heartbeat_round
    }

    pub fn pending_read_count(&self) -> usize {
        self.read_only.pending_read_count() + self.pending_read_requests.len()
    }
}
