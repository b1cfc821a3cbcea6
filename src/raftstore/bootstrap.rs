//! A store's identity on its engine, and the first region of a new cluster.
//!
//! A data directory belongs to one cluster and is one store of it: the store ident (`keys.rs`)
//! records both ids, written once, in the same synced batch as the first region when the
//! store bootstraps. A node that opens a directory of another cluster, or under another store
//! id, is refused with an error that says so.

use super::cmd::RaftstoreError;
use super::keys::store_ident_key;
use super::meta::{DecodeError, Peer, Reader, Region, RegionEpoch, Writer};
use super::peer_storage::write_initial_states;
use crate::storage::{Cf, Engine, WriteBatch, WriteOptions};

/// Which cluster a store belongs to, and its id there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreIdent {
    pub cluster_id: u64,
    pub store_id: u64,
}

impl StoreIdent {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(16));
        w.u64(self.cluster_id).u64(self.store_id);
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<StoreIdent, DecodeError> {
        let mut r = Reader {
            bytes,
            what: "store ident",
        };
        let ident = StoreIdent {
            cluster_id: r.u64()?,
            store_id: r.u64()?,
        };
        r.finish(ident)
    }
}

/// The store ident on `engine`, if the store was ever bootstrapped.
pub fn load_ident(engine: &impl Engine) -> Result<Option<StoreIdent>, RaftstoreError> {
    match engine.get(Cf::Raft, &store_ident_key())? {
        Some(bytes) => Ok(Some(StoreIdent::decode(&bytes).map_err(RaftstoreError::Corrupt)?)),
        None => Ok(None),
    }
}

/// The first region of a cluster: every key, with one peer on each of `stores` (peer ids as
/// given).
pub fn first_region(region_id: u64, peers: Vec<Peer>) -> Region {
    Region {
        id: region_id,
        start_key: Vec::new(),
        end_key: Vec::new(),
        epoch: RegionEpoch::INITIAL,
        peers,
    }
}

/// Makes `engine` store `ident.store_id` of cluster `ident.cluster_id`, holding the initial
/// state of `region` (when given), in one synced write. Refuses an engine that already has an
/// ident.
pub fn bootstrap_store(
    engine: &impl Engine,
    ident: StoreIdent,
    region: Option<&Region>,
) -> Result<(), RaftstoreError> {
    if let Some(existing) = load_ident(engine)? {
        return Err(RaftstoreError::InvalidCommand(format!(
            "the store is already bootstrapped as store {} of cluster {}",
            existing.store_id, existing.cluster_id
        )));
    }
    let mut batch = WriteBatch::new();
    if let Some(region) = region {
        write_initial_states(region, &mut batch);
    }
    batch.put(Cf::Raft, store_ident_key(), ident.encode());
    engine.write(&batch, WriteOptions::SYNC)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryEngine;

    #[test]
    fn a_store_is_bootstrapped_once() {
        let engine = MemoryEngine::new();
        assert_eq!(load_ident(&engine).unwrap(), None);
        let ident = StoreIdent {
            cluster_id: 7,
            store_id: 1,
        };
        let region = first_region(1, vec![Peer { id: 1, store_id: 1 }]);
        bootstrap_store(&engine, ident, Some(&region)).unwrap();
        assert_eq!(load_ident(&engine).unwrap(), Some(ident));
        assert!(bootstrap_store(&engine, ident, None).is_err());
        assert!(StoreIdent::decode(&[1, 2, 3]).is_err());
    }
}
