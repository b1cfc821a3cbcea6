//! `Store`: every region peer on one node, and the routing between them and the network.
//!
//! A store is synchronous and owns no threads: its driver calls [`Store::tick`] on a timer,
//! [`Store::on_raft_message`] for each message from another store, [`Store::propose`] for each
//! command, and then runs a round: [`Store::collect_readies`] gathers every peer's log entries
//! and hard state into one write batch (and sends the leaders' appends, which need not wait
//! for it; the driver may also hand the committed entries already durable to the apply side
//! now, [`Store::take_early_apply`]), the driver writes it (synced only when some peer
//! needs it), and
//! [`Store::on_round_persisted`] sends the other messages through the [`Transport`] and
//! queues the committed entries for the apply side ([`Store::take_apply_tasks`]), whose
//! results come back through [`Store::on_apply_results`]. The raft thread of `driver.rs` and
//! the deterministic tests ([`Store::handle_readies`], which applies inline) run the same
//! code.
//!
//! Messages travel in a [`RaftMessage`] envelope naming the region and both peers, so a store
//! can route them and drop the ones for peers it does not host.
//!
//! A store hosts the regions whose state is on its engine (bootstrapped, restarted, or filled
//! by a snapshot), and creates an empty peer when a leader first contacts a member it added.
//! A peer removed from its region is destroyed and leaves a tombstone. A peer removed while
//! it was away never hears of it; when a message from a newer epoch names another peer of the
//! region on this store, the stale one is destroyed and replaced.
//!
//! A split applied on a region starts the store's peer of the new region (the apply side has
//! written its initial state); if this store led the parent, the new peer campaigns at once. A
//! snapshot whose range overlaps another region of this store is dropped: the region was split
//! off elsewhere and this store has not applied the split yet, which will create the peer.

use std::collections::{BTreeMap, HashMap};

use super::apply::{Applier, ApplyResult, ApplyTask};
use super::cmd::{CommandHeader, RaftCommand, RaftstoreError};
use super::keys::{region_id_of_state_key, region_state_key, region_state_range};
use super::meta::{Peer, PeerState, Region, RegionEpoch, RegionLocalState};
use super::peer::{Callback, PeerOptions, PeerReady, RegionPeer};
use super::peer_storage::{PeerStorage, SnapshotGenerator};
use super::snap::SnapshotData;
use crate::raft::{Message, MessageType};
use crate::storage::{Cf, Engine, IterOptions, Snapshot as _, WriteBatch, WriteOptions};

/// A raft message between two peers of a region, as stores exchange it.
#[derive(Clone, Debug, PartialEq)]
pub struct RaftMessage {
    pub region_id: u64,
    pub from_peer: Peer,
    pub to_peer: Peer,
    /// The sender's view of the region, for dropping messages from removed peers.
    pub epoch: RegionEpoch,
    pub message: Message,
}

/// The transport could not take a message (the other store is unreachable, or its queue is
/// full).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot send to store {store_id}")]
pub struct Unreachable {
    pub store_id: u64,
}

/// How stores reach each other: the network in a cluster, a queue in tests.
pub trait Transport {
    /// Hands `message` over for delivery. `Ok` for a snapshot means it was delivered whole
    /// (unless [`Transport::reports_snapshots_later`]); the store reports the snapshot
    /// finished to the raft core on `Ok` and failed on `Err`.
    fn send(&mut self, message: RaftMessage) -> Result<(), Unreachable>;

    /// Whether a snapshot's `Ok` only means "accepted": the transport then reports the
    /// outcome itself later (see `StoreHandle::report_snapshot`).
    fn reports_snapshots_later(&self) -> bool {
        false
    }
}

/// The transport of a store with no other stores to talk to (a cluster of one): every send
/// fails, which no peer of a one-member region ever attempts.
pub struct NoTransport;

impl Transport for NoTransport {
    fn send(&mut self, message: RaftMessage) -> Result<(), Unreachable> {
        Err(Unreachable {
            store_id: message.to_peer.store_id,
        })
    }
}

pub struct Store<E: Engine + Clone, T: Transport> {
    store_id: u64,
    engine: E,
    transport: T,
    options: PeerOptions,
    seed: u64,
    peers: BTreeMap<u64, RegionPeer<E>>,
    /// The stores of peers heard from, for replying where the region does not say (a peer
    /// still waiting for its first snapshot knows no members). Peer ids are unique.
    peer_cache: HashMap<u64, Peer>,
    /// Work for the apply side, in the order it was made.
    apply_tasks: Vec<ApplyTask>,
    /// How peers get snapshots built off the raft thread (`None`: inline).
    snapshot_generator: Option<SnapshotGenerator>,
}

/// One round's persistence work: the write batch of every peer's log entries and hard state.
pub struct StoreRound {
    pub batch: WriteBatch,
    /// Whether the batch must be synced before the round goes on.
    pub must_sync: bool,
    readies: Vec<(u64, PeerReady)>,
}

impl<E: Engine + Clone, T: Transport> Store<E, T> {
    /// Writes the initial states of `region` to `engine` (synced): run on every store of a new
    /// region's first peers before they open.
    pub fn bootstrap_region(engine: &E, region: &Region) -> Result<(), RaftstoreError> {
        let mut batch = WriteBatch::new();
        PeerStorage::<E>::write_initial_states(region, &mut batch);
        engine.write(&batch, WriteOptions::SYNC)?;
        Ok(())
    }

    /// Opens the store: one peer for every live region whose state is on the engine. `seed`
    /// varies the peers' election timeouts between stores.
    pub fn open(
        store_id: u64,
        engine: E,
        transport: T,
        options: PeerOptions,
        seed: u64,
    ) -> Result<Self, RaftstoreError> {
        let (start, end) = region_state_range();
        let snapshot = engine.snapshot();
        let mut peers = BTreeMap::new();
        for item in snapshot.iter(Cf::Raft, IterOptions::range(start, end)) {
            let (key, value) = item?;
            let Some(region_id) = region_id_of_state_key(&key) else {
                continue;
            };
            let state = RegionLocalState::decode(&value).map_err(RaftstoreError::Corrupt)?;
            if state.state == PeerState::Tombstone || state.region.peer_on_store(store_id).is_none() {
                continue;
            }
            let peer = RegionPeer::open(
                store_id,
                engine.clone(),
                region_id,
                options,
                seed.wrapping_mul(31).wrapping_add(region_id),
            )?;
            peers.insert(region_id, peer);
        }
        let apply_tasks = peers.values().filter_map(RegionPeer::register_task).collect();
        Ok(Store {
            store_id,
            engine,
            transport,
            options,
            seed,
            peers,
            peer_cache: HashMap::new(),
            apply_tasks,
            snapshot_generator: None,
        })
    }

    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    pub fn region_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.peers.keys().copied()
    }

    pub fn peer(&self, region_id: u64) -> Option<&RegionPeer<E>> {
        self.peers.get(&region_id)
    }

    pub fn peer_mut(&mut self, region_id: u64) -> Option<&mut RegionPeer<E>> {
        self.peers.get_mut(&region_id)
    }

    /// Has every peer, now and later, get its snapshots from `generator` (a region worker).
    pub fn set_snapshot_generator(&mut self, generator: SnapshotGenerator) {
        for peer in self.peers.values_mut() {
            peer.set_snapshot_generator(generator.clone());
        }
        self.snapshot_generator = Some(generator);
    }

    /// Starts tracking a peer created on this store.
    fn insert_peer(&mut self, region_id: u64, mut peer: RegionPeer<E>) {
        if let Some(generator) = &self.snapshot_generator {
            peer.set_snapshot_generator(generator.clone());
        }
        self.peers.insert(region_id, peer);
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Every region of this store with a live peer.
    pub fn regions(&self) -> impl Iterator<Item = &Region> + '_ {
        self.peers
            .values()
            .filter(|p| p.storage().is_initialized() && !p.is_removed())
            .map(|p| p.region())
    }

    /// Asks for a linearizable read of a region (see [`RegionPeer::read_index`]).
    pub fn read_index(&mut self, header: CommandHeader, callback: Callback) {
        match self.peers.get_mut(&header.region_id) {
            Some(peer) => peer.read_index(header, callback),
            None => callback(Err(RaftstoreError::RegionNotFound(header.region_id))),
        }
    }

    pub fn tick(&mut self) {
        for peer in self.peers.values_mut() {
            peer.tick();
        }
    }

    /// Routes `command` to its region's peer here; the callback hears the outcome.
    pub fn propose(&mut self, command: RaftCommand, callback: Callback) {
        match self.peers.get_mut(&command.header.region_id) {
            Some(peer) => peer.propose(command, callback),
            None => callback(Err(RaftstoreError::RegionNotFound(command.header.region_id))),
        }
    }

    /// Steps a message from another store into the peer it is for. Messages for another
    /// store, an unknown region or another peer id (a removed or replaced peer) are dropped:
    /// raft tolerates loss, and the sender retries.
    pub fn on_raft_message(&mut self, message: RaftMessage) {
        if message.to_peer.store_id != self.store_id {
            tracing::debug!(to = ?message.to_peer, store = self.store_id, "raft message for another store");
            return;
        }
        if let Some(existing) = self.peers.get_mut(&message.region_id)
            && existing.peer().id != message.to_peer.id
            && message.epoch.conf_ver > existing.region().epoch.conf_ver
        {
            // A region has one peer per store, so a newer epoch naming another peer here means
            // this one was removed while it was away and never heard.
            // The message is dropped; once the old peer is gone, the leader's next one creates
            // the new peer.
            if !existing.is_removed() {
                tracing::info!(
                    region = message.region_id,
                    stale = existing.peer().id,
                    new = message.to_peer.id,
                    "replacing a removed peer"
                );
                let task = existing.destroy_task();
                self.apply_tasks.push(task);
            }
            return;
        }
        if !self.peers.contains_key(&message.region_id) && !self.maybe_create_peer(&message) {
            return;
        }
        let peer = self
            .peers
            .get_mut(&message.region_id)
            .expect("present or just created");
        if peer.peer().id != message.to_peer.id || message.message.to != message.to_peer.id {
            tracing::debug!(region = message.region_id, to = ?message.to_peer, "raft message for another peer");
            return;
        }
        if let Some(snapshot) = &message.message.snapshot
            && !self.snapshot_fits(message.region_id, &snapshot.data)
        {
            return;
        }
        let peer = self
            .peers
            .get_mut(&message.region_id)
            .expect("present or just created");
        // Remember where a sender the region does not list lives (a peer waiting for its first
        // snapshot lists nobody), so replies can reach it.
        let from = message.from_peer;
        if !peer.region().peers.contains(&from) {
            self.peer_cache.insert(from.id, from);
        }
        peer.step(message.message);
    }

    /// Whether a snapshot of `region_id` may be installed here: its range must not overlap
    /// another region of this store (which happens when the region was split off one of
    /// them elsewhere and this store has not applied that split yet; the split then creates
    /// the peer, or the leader sends again later).
    fn snapshot_fits(&self, region_id: u64, data: &[u8]) -> bool {
        let region = match SnapshotData::region_of(data) {
            Ok(region) => region,
            Err(e) => {
                tracing::warn!(region = region_id, "dropping a malformed snapshot: {e}");
                return false;
            }
        };
        let overlapping = self.peers.values().find(|p| {
            let other = p.region();
            other.id != region_id
                && p.storage().is_initialized()
                && !p.is_removed()
                && (region.end_key.is_empty() || other.start_key < region.end_key)
                && (other.end_key.is_empty() || region.start_key < other.end_key)
        });
        if let Some(other) = overlapping {
            tracing::info!(
                region = region_id,
                overlaps = other.region().id,
                "dropping a snapshot that overlaps another region here"
            );
            return false;
        }
        true
    }

    /// Creates the peer a message is for when this store has no peer of its region: the
    /// leader is adding it. Only a message a leader sends a new member (a heartbeat that
    /// commits nothing) or a candidate's vote request creates one, and never against a
    /// tombstone at least as new as the message's epoch (the peer was removed since).
    fn maybe_create_peer(&mut self, message: &RaftMessage) -> bool {
        let m = &message.message;
        let initial = match m.msg_type {
            MessageType::RequestVote | MessageType::RequestPreVote => true,
            MessageType::Heartbeat => m.commit == 0,
            _ => false,
        };
        if !initial {
            tracing::debug!(
                region = message.region_id,
                "raft message for a region not on this store"
            );
            return false;
        }
        let state = match self.engine.get(Cf::Raft, &region_state_key(message.region_id)) {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(region = message.region_id, "reading region state: {e}");
                return false;
            }
        };
        if let Some(bytes) = state {
            match RegionLocalState::decode(&bytes) {
                Ok(state)
                    if state.state == PeerState::Tombstone
                        && message.epoch.conf_ver <= state.region.epoch.conf_ver =>
                {
                    tracing::debug!(region = message.region_id, "raft message for a removed peer");
                    return false;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(region = message.region_id, "malformed region state: {e}");
                    return false;
                }
            }
        }
        let seed = self.seed.wrapping_mul(31).wrapping_add(message.region_id);
        match RegionPeer::uninitialized(
            self.store_id,
            message.to_peer,
            self.engine.clone(),
            message.region_id,
            self.options,
            seed,
        ) {
            Ok(peer) => {
                tracing::info!(
                    region = message.region_id,
                    peer = message.to_peer.id,
                    "created a peer for a new member"
                );
                self.insert_peer(message.region_id, peer);
                true
            }
            Err(e) => {
                tracing::warn!(region = message.region_id, "creating a peer: {e}");
                false
            }
        }
    }

    /// Round step 1: every peer's log entries and hard state, in one batch. The leaders'
    /// appends leave now, while the caller writes the batch (see
    /// [`crate::raft::RawNode::take_early_messages`]), and the caller may hand the committed
    /// entries already durable here to the apply side ([`Store::take_early_apply`]);
    /// everything else waits for [`Store::on_round_persisted`].
    pub fn collect_readies(&mut self) -> StoreRound {
        let mut round = StoreRound {
            batch: WriteBatch::new(),
            must_sync: false,
            readies: Vec::new(),
        };
        for (&region_id, peer) in self.peers.iter_mut() {
            if let Some(ready) = peer.collect_ready(&mut round.batch) {
                round.must_sync |= ready.must_sync;
                round.readies.push((region_id, ready));
            }
        }
        for (region_id, ready) in &mut round.readies {
            let early = std::mem::take(&mut ready.early);
            self.send(*region_id, early);
        }
        round
    }

    /// Round step 3, once the round's batch is written: sends the messages and queues the
    /// committed entries for the apply side.
    pub fn on_round_persisted(&mut self, round: StoreRound) {
        for (region_id, ready) in round.readies {
            let Some(peer) = self.peers.get_mut(&region_id) else {
                continue;
            };
            let (messages, tasks) = peer.on_persisted(ready);
            self.apply_tasks.extend(tasks);
            self.send(region_id, messages);
        }
    }

    /// The apply tasks of committed entries that earlier rounds made durable, which may go to
    /// the apply side before `round`'s batch is written (see
    /// [`RegionPeer::collect_ready`](super::peer::RegionPeer::collect_ready)). None while other
    /// tasks wait to go out (a destroyed or registered peer, what applied results led to):
    /// those were queued first and go first. Those not taken are queued with the round's
    /// others by [`Store::on_round_persisted`].
    pub fn take_early_apply(&mut self, round: &mut StoreRound) -> Vec<ApplyTask> {
        if !self.apply_tasks.is_empty() {
            return Vec::new();
        }
        round
            .readies
            .iter_mut()
            .filter_map(|(_, ready)| ready.early_apply.take())
            .collect()
    }

    /// What the apply side should do next, in order.
    pub fn take_apply_tasks(&mut self) -> Vec<ApplyTask> {
        std::mem::take(&mut self.apply_tasks)
    }

    /// Follows the apply side's results: membership changes, compactions, installed
    /// snapshots (whose held messages leave now), destroyed peers.
    pub fn on_apply_results(&mut self, results: Vec<ApplyResult>) {
        for result in results {
            let region_id = match &result {
                ApplyResult::Applied { region_id, .. }
                | ApplyResult::SnapshotApplied { region_id, .. }
                | ApplyResult::Destroyed { region_id } => *region_id,
            };
            let Some(peer) = self.peers.get_mut(&region_id) else {
                continue;
            };
            let (messages, tasks) = peer.on_apply_result(result);
            let splits = peer.take_splits();
            let campaign = peer.is_leader();
            self.apply_tasks.extend(tasks);
            self.send(region_id, messages);
            for (right, created) in splits {
                self.start_split_peer(right, created, campaign);
            }
        }
        self.peers.retain(|_, peer| !peer.is_destroyed());
    }

    /// Starts this store's peer of a region just split off one of its regions. An
    /// uninitialized peer of it (created by a message from its leader elsewhere) is replaced;
    /// one already filled by a snapshot stays. The peer of a region whose parent this store
    /// led campaigns at once, so the new region has a leader soon.
    fn start_split_peer(&mut self, right: Region, created: bool, campaign: bool) {
        if let Some(existing) = self.peers.get(&right.id)
            && existing.storage().is_initialized()
        {
            return;
        }
        if !created {
            return;
        }
        let seed = self.seed.wrapping_mul(31).wrapping_add(right.id);
        match RegionPeer::open(self.store_id, self.engine.clone(), right.id, self.options, seed) {
            Ok(mut peer) => {
                if campaign {
                    peer.campaign();
                }
                self.insert_peer(right.id, peer);
            }
            Err(e) => tracing::error!(region = right.id, "starting the peer of a split region: {e}"),
        }
    }

    /// Sends a peer's messages, reporting failures to its raft core.
    fn send(&mut self, region_id: u64, messages: Vec<Message>) {
        if messages.is_empty() {
            return;
        }
        let Some(peer) = self.peers.get_mut(&region_id) else {
            return;
        };
        let region = peer.region();
        let (from_peer, epoch) = (peer.peer(), region.epoch);
        let targets: Vec<Option<Peer>> = messages
            .iter()
            .map(|m| {
                region
                    .peers
                    .iter()
                    .copied()
                    .find(|p| p.id == m.to)
                    .or_else(|| self.peer_cache.get(&m.to).copied())
            })
            .collect();
        for (message, to_peer) in messages.into_iter().zip(targets) {
            let Some(to_peer) = to_peer else {
                tracing::debug!(region = region_id, to = message.to, "no store known for peer");
                continue;
            };
            let is_snapshot = message.msg_type == MessageType::Snapshot;
            let reported_later = self.transport.reports_snapshots_later();
            let sent = self.transport.send(RaftMessage {
                region_id,
                from_peer,
                to_peer,
                epoch,
                message,
            });
            match (sent, is_snapshot) {
                (Ok(()), true) if !reported_later => peer.report_snapshot(to_peer.id, false),
                (Ok(()), true) => {}
                (Ok(()), false) => {}
                (Err(_), true) => peer.report_snapshot(to_peer.id, true),
                (Err(_), false) => peer.report_unreachable(to_peer.id),
            }
        }
    }

    /// A whole round with the apply side run inline on `applier`, until nothing is left to
    /// apply: for deterministic tests and simple drivers. A storage error is fatal to the
    /// store and is returned; the store must not be used afterwards.
    pub fn handle_readies(&mut self, applier: &mut Applier<E>) -> Result<(), RaftstoreError> {
        let mut round = self.collect_readies();
        // As the driver does: entries already durable are applied before the write, and
        // their results followed after the round.
        let early = self.take_early_apply(&mut round);
        let early_results = if early.is_empty() {
            Vec::new()
        } else {
            applier.apply(early)?
        };
        if !round.batch.is_empty() {
            let options = if round.must_sync {
                WriteOptions::SYNC
            } else {
                WriteOptions::NO_SYNC
            };
            self.engine.write(&round.batch, options)?;
        }
        self.on_round_persisted(round);
        self.on_apply_results(early_results);
        loop {
            let tasks = self.take_apply_tasks();
            if tasks.is_empty() {
                return Ok(());
            }
            let results = applier.apply(tasks)?;
            self.on_apply_results(results);
        }
    }
}

/// A store and its apply side run one after the other on the caller's thread, for tests.
#[cfg(test)]
pub struct InlineStore<E: Engine + Clone, T: Transport> {
    pub store: Store<E, T>,
    pub applier: Applier<E>,
}

#[cfg(test)]
impl<E: Engine + Clone, T: Transport> InlineStore<E, T> {
    pub fn open(
        store_id: u64,
        engine: E,
        transport: T,
        options: PeerOptions,
        seed: u64,
    ) -> Result<Self, RaftstoreError> {
        let store = Store::open(store_id, engine.clone(), transport, options, seed)?;
        Ok(InlineStore {
            store,
            applier: Applier::new(engine),
        })
    }

    pub fn handle_readies(&mut self) -> Result<(), RaftstoreError> {
        self.store.handle_readies(&mut self.applier)
    }
}

#[cfg(test)]
impl<E: Engine + Clone, T: Transport> std::ops::Deref for InlineStore<E, T> {
    type Target = Store<E, T>;
    fn deref(&self) -> &Store<E, T> {
        &self.store
    }
}

#[cfg(test)]
impl<E: Engine + Clone, T: Transport> std::ops::DerefMut for InlineStore<E, T> {
    fn deref_mut(&mut self) -> &mut Store<E, T> {
        &mut self.store
    }
}
