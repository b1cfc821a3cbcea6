//! The apply side of a store: committed entries become data.
//!
//! The raft side of a peer (`peer.rs`) persists the log and hands committed entries over as
//! [`ApplyTask`]s; an [`Applier`] (on the store's apply worker thread, or inline in tests)
//! applies them and reports [`ApplyResult`]s back. Per region it keeps an [`ApplyDelegate`]:
//! the region as of the last applied entry and the apply state. The split keeps the raft
//! thread from ever waiting on data writes, and keeps the region an entry is checked against
//! the one in force at that point of the log (a command proposed before a membership change or
//! split is checked again when it applies).
//!
//! **Writes.** The entries of every task in one call go into one engine batch with each
//! region's new apply state, written without fsync: the raft log holds them durably, and a
//! restart applies again from the last applied index that reached the disk. The proposers'
//! callbacks run after that write, so a client is answered only once its entry is committed
//! (on a majority's fsync'd logs) and applied here.
//!
//! **Order.** Tasks are applied in the order they are given, which is the order the raft side
//! made them; a region's snapshot or destruction is written alone (synced), after everything
//! handed over before it.

use std::collections::HashMap;

use super::cmd::{
    AdminCommand, CommandBody, CommandHeader, CommandResponse, CommandResult, Mutation, RaftCommand,
    RaftstoreError,
};
use super::meta::{Peer, RaftApplyState, RaftLocalState, Region, TruncatedState};
use super::peer::Callback;
use super::peer_storage::{
    RAFT_INIT_LOG_TERM, initial_apply_state, write_apply_state, write_destroy, write_region_state,
    write_snapshot, write_split_region,
};
use crate::raft::message::Snapshot;
use crate::raft::{ConfChange, ConfChangeType, Entry, EntryType};
use crate::storage::{Cf, Engine, WriteBatch, WriteOptions};

/// Work for the apply side, in raft order per region.
pub enum ApplyTask {
    /// Start applying for a region whose peer opened from the engine (bootstrap, restart).
    Register {
        region: Region,
        peer_id: u64,
        apply_state: RaftApplyState,
        applied_term: u64,
    },
    /// Committed entries, with the callbacks of the proposals whose entries they are.
    Entries {
        region_id: u64,
        entries: Vec<Entry>,
        callbacks: Vec<(u64, Callback)>,
    },
    /// Replace the region's data and log with a snapshot from the leader; `raft_state` is the
    /// peer's raft state afterwards and `entries` the log entries that follow the snapshot.
    Snapshot {
        region_id: u64,
        peer_id: u64,
        snapshot: Snapshot,
        raft_state: RaftLocalState,
        entries: Vec<Entry>,
    },
    /// The peer was removed from its region (or replaced): delete its data and states and
    /// leave a tombstone.
    Destroy { region_id: u64, region: Region },
}

/// What applying changed, for the raft side.
#[derive(Debug)]
pub enum ApplyResult {
    Applied {
        region_id: u64,
        applied_index: u64,
        applied_term: u64,
        admin: Vec<AdminResult>,
    },
    SnapshotApplied {
        region_id: u64,
        region: Region,
        apply_state: RaftApplyState,
    },
    Destroyed {
        region_id: u64,
    },
}

/// Admin commands the raft side must follow up on.
#[derive(Debug, PartialEq)]
pub enum AdminResult {
    /// Membership changed: the raft core applies `change`; `region` is the new layout.
    ChangePeer { change: ConfChange, region: Region },
    /// The log may be deleted through `truncated`.
    CompactLog { truncated: TruncatedState },
    /// The region split: it is now `left`, and `right` is a new region whose peer on this
    /// store the raft side creates (`created`: the apply side wrote its initial state; false
    /// when the store already had that region from a snapshot).
    Split {
        left: Region,
        right: Region,
        created: bool,
    },
}

/// A region as the apply side sees it.
pub struct ApplyDelegate {
    pub region: Region,
    pub peer_id: u64,
    pub apply_state: RaftApplyState,
    pub applied_term: u64,
    /// A membership change removed this peer: later entries are not its business.
    removed: bool,
}

impl ApplyDelegate {
    /// The checks a command must pass when it applies: the region may have changed since it
    /// was proposed.
    pub fn check_command(&self, header: &CommandHeader, body: &CommandBody) -> Result<(), RaftstoreError> {
        check_command(&self.region, header, body)
    }
}

/// The checks a command must pass against `region`, both when proposed and when applied.
pub fn check_command(
    region: &Region,
    header: &CommandHeader,
    body: &CommandBody,
) -> Result<(), RaftstoreError> {
    match body {
        CommandBody::Write(mutations) => {
            if header.epoch.version != region.epoch.version {
                return Err(RaftstoreError::EpochNotMatch {
                    current: vec![region.clone()],
                });
            }
            for m in mutations {
                if matches!(
                    m,
                    Mutation::Put { cf: Cf::Raft, .. } | Mutation::Delete { cf: Cf::Raft, .. }
                ) {
                    return Err(RaftstoreError::InvalidCommand(
                        "the raft column family holds the store's own metadata".into(),
                    ));
                }
                if !region.contains(m.key()) {
                    return Err(RaftstoreError::KeyNotInRegion {
                        key: m.key().to_vec(),
                        region_id: region.id,
                        start_key: region.start_key.clone(),
                        end_key: region.end_key.clone(),
                    });
                }
            }
            Ok(())
        }
        CommandBody::Admin(AdminCommand::CompactLog { .. }) => Ok(()),
        CommandBody::Admin(AdminCommand::Split {
            split_key,
            new_region_id,
            new_peer_ids,
        }) => {
            if header.epoch != region.epoch {
                return Err(RaftstoreError::EpochNotMatch {
                    current: vec![region.clone()],
                });
            }
            let invalid = |why: String| Err(RaftstoreError::InvalidCommand(why));
            if split_key.as_slice() <= region.start_key.as_slice() || !region.contains(split_key) {
                return invalid(format!(
                    "split key {split_key:?} is not strictly inside region {}",
                    region.id
                ));
            }
            if new_peer_ids.len() != region.peers.len() {
                return invalid(format!(
                    "a split of region {} needs {} new peer ids, not {}",
                    region.id,
                    region.peers.len(),
                    new_peer_ids.len()
                ));
            }
            if *new_region_id == region.id
                || new_peer_ids
                    .iter()
                    .any(|id| region.peers.iter().any(|p| p.id == *id))
            {
                return invalid("a split needs ids the region does not use".to_string());
            }
            Ok(())
        }
        CommandBody::Admin(AdminCommand::ChangePeer { change_type, peer }) => {
            if header.epoch.conf_ver != region.epoch.conf_ver {
                return Err(RaftstoreError::EpochNotMatch {
                    current: vec![region.clone()],
                });
            }
            let invalid = |why: &str| Err(RaftstoreError::InvalidCommand(why.to_string()));
            match change_type {
                ConfChangeType::AddNode => {
                    if region
                        .peers
                        .iter()
                        .any(|p| p.id == peer.id || p.store_id == peer.store_id)
                    {
                        return invalid("the peer or its store is already in the region");
                    }
                }
                ConfChangeType::RemoveNode => {
                    if !region.peers.contains(peer) {
                        return invalid("the peer is not in the region");
                    }
                    if region.peers.len() == 1 {
                        return invalid("a region cannot remove its last peer");
                    }
                }
            }
            Ok(())
        }
    }
}

/// Applies tasks for every region of a store. See the module docs.
pub struct Applier<E: Engine> {
    engine: E,
    delegates: HashMap<u64, ApplyDelegate>,
}

/// The outcome of one entry, for its proposer.
type Answer = (Callback, CommandResult);

impl<E: Engine> Applier<E> {
    pub fn new(engine: E) -> Self {
        Applier {
            engine,
            delegates: HashMap::new(),
        }
    }

    pub fn delegate(&self, region_id: u64) -> Option<&ApplyDelegate> {
        self.delegates.get(&region_id)
    }

    /// Applies `tasks` in order. A storage failure is fatal to the store: it is returned, and
    /// the callbacks of the failed batch hear it.
    pub fn apply(&mut self, tasks: Vec<ApplyTask>) -> Result<Vec<ApplyResult>, RaftstoreError> {
        let mut results = Vec::new();
        let mut batch = WriteBatch::new();
        let mut answers: Vec<Answer> = Vec::new();
        for task in tasks {
            match task {
                ApplyTask::Register {
                    region,
                    peer_id,
                    apply_state,
                    applied_term,
                } => {
                    self.delegates.insert(
                        region.id,
                        ApplyDelegate {
                            region,
                            peer_id,
                            apply_state,
                            applied_term,
                            removed: false,
                        },
                    );
                }
                ApplyTask::Entries {
                    region_id,
                    entries,
                    callbacks,
                } => {
                    let result = self.apply_entries(region_id, entries, callbacks, &mut batch, &mut answers);
                    results.extend(result);
                }
                ApplyTask::Snapshot {
                    region_id,
                    peer_id,
                    snapshot,
                    raft_state,
                    entries,
                } => {
                    self.flush(&mut batch, &mut answers)?;
                    let old_region = self
                        .delegates
                        .get(&region_id)
                        .map(|d| d.region.clone())
                        .filter(|r| !r.peers.is_empty());
                    let (region, apply_state) = write_snapshot(
                        &self.engine,
                        region_id,
                        old_region.as_ref(),
                        &snapshot,
                        raft_state,
                        &entries,
                    )?;
                    self.delegates.insert(
                        region_id,
                        ApplyDelegate {
                            region: region.clone(),
                            peer_id,
                            apply_state,
                            applied_term: snapshot.metadata.term,
                            removed: false,
                        },
                    );
                    results.push(ApplyResult::SnapshotApplied {
                        region_id,
                        region,
                        apply_state,
                    });
                }
                ApplyTask::Destroy { region_id, region } => {
                    self.flush(&mut batch, &mut answers)?;
                    let delegate = self.delegates.remove(&region_id);
                    let initialized = delegate.as_ref().is_some_and(|d| !d.region.peers.is_empty());
                    let region = delegate.map_or(region, |d| d.region);
                    let mut destroy = WriteBatch::new();
                    write_destroy(&self.engine, &region, initialized, &mut destroy)?;
                    self.engine.write(&destroy, WriteOptions::SYNC)?;
                    results.push(ApplyResult::Destroyed { region_id });
                }
            }
        }
        self.flush(&mut batch, &mut answers)?;
        Ok(results)
    }

    /// Writes what is batched and answers its proposers.
    fn flush(&self, batch: &mut WriteBatch, answers: &mut Vec<Answer>) -> Result<(), RaftstoreError> {
        if !batch.is_empty() {
            if let Err(e) = self.engine.write(batch, WriteOptions::NO_SYNC) {
                let error = RaftstoreError::from(e);
                for (callback, _) in answers.drain(..) {
                    callback(Err(error.clone()));
                }
                return Err(error);
            }
            *batch = WriteBatch::new();
        }
        for (callback, result) in answers.drain(..) {
            callback(result);
        }
        Ok(())
    }

    fn apply_entries(
        &mut self,
        region_id: u64,
        entries: Vec<Entry>,
        callbacks: Vec<(u64, Callback)>,
        batch: &mut WriteBatch,
        answers: &mut Vec<Answer>,
    ) -> Option<ApplyResult> {
        let mut callbacks: HashMap<u64, Callback> = callbacks.into_iter().collect();
        let engine = &self.engine;
        let Some(delegate) = self.delegates.get_mut(&region_id) else {
            // The peer is gone (destroyed after its removal); its group applies without it.
            for (_, callback) in callbacks {
                callback(Err(RaftstoreError::RegionNotFound(region_id)));
            }
            return None;
        };
        let mut admin = Vec::new();
        for entry in &entries {
            if delegate.removed || entry.index <= delegate.apply_state.applied_index {
                if let Some(callback) = callbacks.remove(&entry.index) {
                    answers.push((callback, Err(RaftstoreError::Undetermined)));
                }
                continue;
            }
            let result = match entry.entry_type {
                EntryType::Normal if entry.data.is_empty() => None,
                EntryType::Normal => Some(apply_command(engine, delegate, &entry.data, batch, &mut admin)),
                EntryType::ConfChange => Some(apply_conf_change(delegate, &entry.data, batch, &mut admin)),
            };
            delegate.apply_state.applied_index = entry.index;
            delegate.applied_term = entry.term;
            if let Some(callback) = callbacks.remove(&entry.index) {
                answers.push((callback, result.unwrap_or(Ok(CommandResponse::Written))));
            }
        }
        for (_, callback) in callbacks {
            answers.push((callback, Err(RaftstoreError::StaleCommand)));
        }
        write_apply_state(region_id, &delegate.apply_state, batch);
        let peer_id = delegate.peer_id;
        let store_id = delegate
            .region
            .peers
            .iter()
            .find(|p| p.id == peer_id)
            .map(|p| p.store_id);
        for result in &admin {
            if let AdminResult::Split {
                right, created: true, ..
            } = result
                && let Some(peer) = store_id.and_then(|s| right.peer_on_store(s))
            {
                self.delegates.insert(
                    right.id,
                    ApplyDelegate {
                        region: right.clone(),
                        peer_id: peer.id,
                        apply_state: initial_apply_state(),
                        applied_term: RAFT_INIT_LOG_TERM,
                        removed: false,
                    },
                );
            }
        }
        let delegate = &self.delegates[&region_id];
        Some(ApplyResult::Applied {
            region_id,
            applied_index: delegate.apply_state.applied_index,
            applied_term: delegate.applied_term,
            admin,
        })
    }
}

fn apply_command(
    engine: &impl Engine,
    delegate: &mut ApplyDelegate,
    data: &[u8],
    batch: &mut WriteBatch,
    admin: &mut Vec<AdminResult>,
) -> CommandResult {
    let region_id = delegate.region.id;
    let command = RaftCommand::decode(data)
        .unwrap_or_else(|e| panic!("region {region_id}: an entry in the raft log is not a command: {e}"));
    delegate.check_command(&command.header, &command.body)?;
    match command.body {
        CommandBody::Write(mutations) => {
            for m in mutations {
                match m {
                    Mutation::Put { cf, key, value } => batch.put(cf, key, value),
                    Mutation::Delete { cf, key } => batch.delete(cf, key),
                }
            }
            Ok(CommandResponse::Written)
        }
        CommandBody::Admin(AdminCommand::ChangePeer { .. }) => {
            panic!("region {region_id}: a membership change in a normal entry")
        }
        CommandBody::Admin(AdminCommand::Split {
            split_key,
            new_region_id,
            new_peer_ids,
        }) => {
            let mut left = delegate.region.clone();
            left.epoch.version += 1;
            let right = Region {
                id: new_region_id,
                start_key: split_key.clone(),
                end_key: std::mem::replace(&mut left.end_key, split_key),
                epoch: left.epoch,
                peers: left
                    .peers
                    .iter()
                    .zip(new_peer_ids)
                    .map(|(p, id)| Peer {
                        id,
                        store_id: p.store_id,
                    })
                    .collect(),
            };
            write_region_state(&left, batch);
            let created = write_split_region(engine, &right, batch)?;
            delegate.region = left.clone();
            tracing::info!(
                region = left.id,
                new_region = right.id,
                split_key = ?right.start_key,
                "region split"
            );
            admin.push(AdminResult::Split { left, right, created });
            Ok(CommandResponse::Admin)
        }
        CommandBody::Admin(AdminCommand::CompactLog { index, term }) => {
            let state = &mut delegate.apply_state;
            // Only entries applied before this one may go.
            if index > state.truncated.index && index <= state.applied_index {
                state.truncated = TruncatedState { index, term };
                admin.push(AdminResult::CompactLog {
                    truncated: state.truncated,
                });
            }
            Ok(CommandResponse::Admin)
        }
    }
}

fn apply_conf_change(
    delegate: &mut ApplyDelegate,
    data: &[u8],
    batch: &mut WriteBatch,
    admin: &mut Vec<AdminResult>,
) -> CommandResult {
    let region_id = delegate.region.id;
    let (change, context) = ConfChange::decode_with_context(data)
        .unwrap_or_else(|| panic!("region {region_id}: a malformed membership change in the log"));
    let command = RaftCommand::decode(context)
        .unwrap_or_else(|e| panic!("region {region_id}: a membership change without its command: {e}"));
    let CommandBody::Admin(AdminCommand::ChangePeer { change_type, peer }) = command.body else {
        panic!("region {region_id}: a membership change entry holds another command");
    };
    // Refused here, the change is not applied: raft's membership stays as it is.
    delegate.check_command(&command.header, &command.body)?;
    let mut region = delegate.region.clone();
    match change_type {
        ConfChangeType::AddNode => region.peers.push(peer),
        ConfChangeType::RemoveNode => region.peers.retain(|p| p.id != peer.id),
    }
    region.epoch.conf_ver += 1;
    write_region_state(&region, batch);
    delegate.region = region.clone();
    if change_type == ConfChangeType::RemoveNode && peer.id == delegate.peer_id {
        delegate.removed = true;
    }
    admin.push(AdminResult::ChangePeer { change, region });
    Ok(CommandResponse::Admin)
}
