//! Redis's numbered databases (`SELECT`, `MOVE`, `SWAPDB`, `FLUSHDB`): each is its own copy
//! of the keyspace layout (`keyspace`), under a one-byte prefix, its index.
//!
//! A store key of database `n` is `n` ++ the layout's key, so every database is one contiguous
//! range of the store (`[n, n+1)`): `SCAN` and `DBSIZE` walk one database's keys, `FLUSHDB`
//! deletes them, and `FLUSHALL` does so for each database in turn. A command runs against [`InDb`], a view of its
//! transaction that adds its database's prefix to every key it reads or writes and takes it
//! off every key a scan returns, so the commands and the layout know nothing of databases.
//! The few commands that span two databases (`MOVE`, `COPY … DB`, `SWAPDB`, `FLUSHALL`) hold
//! the transaction itself and open a view per database.
//!
//! The structures that name keys outside the store (latches, the write combiner, blocked
//! clients, `WATCH`) use [`qualify`]: the database byte, then the key.

use bytes::{BufMut, Bytes, BytesMut};

use crate::percolator::{Result, ScanLimits, ScanPage, Transaction};
use crate::scheduler::tso::TimeStamp;

/// A database's number (`SELECT`'s argument).
pub type DbIndex = u8;

/// The most databases there can be: the prefix is one byte.
pub const MAX_DATABASES: usize = 256;

/// A key qualified by its database: `db` ++ `key`.
pub fn qualify(db: DbIndex, key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(key.len() + 1);
    out.put_u8(db);
    out.put_slice(key);
    out.freeze()
}

/// The database and key of a [`qualify`]d key.
pub fn unqualify(qualified: &Bytes) -> (DbIndex, Bytes) {
    (qualified[0], qualified.slice(1..))
}

/// The store range of databases `first..last`: `[first, last)` as prefixes.
pub fn databases_range(first: DbIndex, last: usize) -> (Vec<u8>, Option<Vec<u8>>) {
    let end = (last < MAX_DATABASES).then(|| vec![last as u8]);
    (vec![first], end)
}

/// One database's view of a transaction.
pub struct InDb<'t, T> {
    txn: &'t mut T,
    db: DbIndex,
}

impl<'t, T: Transaction> InDb<'t, T> {
    pub fn new(txn: &'t mut T, db: DbIndex) -> Self {
        InDb { txn, db }
    }

    fn store_key(&self, key: &[u8]) -> Bytes {
        qualify(self.db, key)
    }
}

impl<T: Transaction> Transaction for InDb<'_, T> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>> {
        let key = self.store_key(key);
        self.txn.get(&key).await
    }

    fn start_ts(&self) -> TimeStamp {
        self.txn.start_ts()
    }

    fn put(&mut self, key: Bytes, value: Bytes) {
        let key = self.store_key(&key);
        self.txn.put(key, value);
    }

    fn delete(&mut self, key: Bytes) {
        let key = self.store_key(&key);
        self.txn.delete(key);
    }

    fn watch(&mut self, key: Bytes, since: TimeStamp) {
        let key = self.store_key(&key);
        self.txn.watch(key, since);
    }

    async fn scan_page(&mut self, start: &[u8], end: Option<&[u8]>, limits: ScanLimits) -> Result<ScanPage> {
        let start = self.store_key(start);
        let end = match end {
            Some(end) => Some(self.store_key(end)),
            // The end of this database: the next one's first key.
            None => databases_range(self.db, usize::from(self.db) + 1)
                .1
                .map(Bytes::from),
        };
        let page = self.txn.scan_page(&start, end.as_deref(), limits).await?;
        // Every key of the page, and where the next one starts, is in this database.
        Ok(ScanPage {
            pairs: page
                .pairs
                .into_iter()
                .map(|(key, value)| (key.slice(1..), value))
                .collect(),
            resume: page.resume.map(|key| key.slice(1..)),
        })
    }
}
