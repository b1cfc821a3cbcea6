//! The two records Percolator keeps besides values: locks (CF `lock`) and writes (CF `write`).
//!
//! Byte layouts, all integers big-endian:
//!
//! ```text
//! Lock:  kind:u8  start_ts:u64  ttl_ms:u64  primary_len:u32  primary  [optional fields]
//! Write: kind:u8  start_ts:u64  [optional fields]
//!
//! optional fields, each once, in this order:
//!   b'v' len:u32 bytes    short value: the value itself, when it is at most SHORT_VALUE_MAX_BYTES
//!   b'h' len:u32 bytes    value head: the first VALUE_HEAD_BYTES of a longer value
//!   b'c' min_commit_ts:u64   (lock only) the smallest commit_ts the transaction may take
//!   b'R'                  (write only) overlapped rollback: the transaction that started at
//!                         this record's commit_ts is rolled back on this key
//! ```
//!
//! Kinds: `P` put, `D` delete, `L` lock (checks a key without changing it), `R` rollback
//! (write only). A short value lives in the lock and then in the write record, so reading a
//! small value costs no read of CF `default`; only larger values go there, at
//! `(key, start_ts)`, and their records keep the value's head instead, so a scan that wants only
//! the first bytes of each value (keys and a type tag, say) never reads CF `default` either.

use super::MvccError;
use crate::scheduler::tso::TimeStamp;

/// Values up to this size are kept inline in the lock and write records.
pub const SHORT_VALUE_MAX_BYTES: usize = 255;

/// How much of a value too long to be short its lock and write records keep.
pub const VALUE_HEAD_BYTES: usize = 16;

const FIELD_SHORT_VALUE: u8 = b'v';
const FIELD_VALUE_HEAD: u8 = b'h';
const FIELD_MIN_COMMIT_TS: u8 = b'c';
/// A write record's flag (no payload): see [`Write::overlapped_rollback`].
const FLAG_OVERLAPPED_ROLLBACK: u8 = b'R';

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    Put,
    Delete,
    /// Locks the key for conflict checks without writing it (Redis `WATCH`).
    Lock,
}

/// A transaction's claim on a key between prewrite and commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    pub kind: LockKind,
    /// The user key of the transaction's primary lock, whose fate decides the transaction's.
    pub primary: Vec<u8>,
    pub start_ts: TimeStamp,
    /// How long after `start_ts` (physical part) the lock may be rolled back by others.
    pub ttl_ms: u64,
    pub short_value: Option<Vec<u8>>,
    /// The first [`VALUE_HEAD_BYTES`] of a put's value that is not short.
    pub value_head: Option<Vec<u8>>,
    /// For async commit and one-phase commit later: `ZERO` when unused.
    pub min_commit_ts: TimeStamp,
}

/// What a reader learns about a lock in its way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    pub key: Vec<u8>,
    pub primary: Vec<u8>,
    pub start_ts: TimeStamp,
    pub ttl_ms: u64,
}

impl Lock {
    pub fn new(kind: LockKind, primary: Vec<u8>, start_ts: TimeStamp, ttl_ms: u64) -> Self {
        Lock {
            kind,
            primary,
            start_ts,
            ttl_ms,
            short_value: None,
            value_head: None,
            min_commit_ts: TimeStamp::ZERO,
        }
    }

    /// Whether the lock's time is up at `current_ts`, comparing physical (millisecond) parts.
    pub fn is_expired(&self, current_ts: TimeStamp) -> bool {
        self.start_ts.physical().saturating_add(self.ttl_ms) < current_ts.physical()
    }

    /// Whether this lock stops a read at `read_ts`: only locks of transactions that may commit
    /// at or below `read_ts` do, and a `Lock` kind never changes the value.
    pub fn blocks_read_at(&self, read_ts: TimeStamp) -> bool {
        self.start_ts <= read_ts && self.kind != LockKind::Lock
    }

    pub fn info(&self, key: &[u8]) -> LockInfo {
        LockInfo {
            key: key.to_vec(),
            primary: self.primary.clone(),
            start_ts: self.start_ts,
            ttl_ms: self.ttl_ms,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            21 + self.primary.len() + inline_len(&self.short_value) + inline_len(&self.value_head),
        );
        out.push(match self.kind {
            LockKind::Put => b'P',
            LockKind::Delete => b'D',
            LockKind::Lock => b'L',
        });
        out.extend_from_slice(&self.start_ts.into_inner().to_be_bytes());
        out.extend_from_slice(&self.ttl_ms.to_be_bytes());
        out.extend_from_slice(&(self.primary.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.primary);
        put_field(&mut out, FIELD_SHORT_VALUE, self.short_value.as_deref());
        put_field(&mut out, FIELD_VALUE_HEAD, self.value_head.as_deref());
        if self.min_commit_ts != TimeStamp::ZERO {
            out.push(FIELD_MIN_COMMIT_TS);
            out.extend_from_slice(&self.min_commit_ts.into_inner().to_be_bytes());
        }
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Lock, MvccError> {
        let mut reader = Reader::new(bytes, "lock");
        let kind = match reader.u8()? {
            b'P' => LockKind::Put,
            b'D' => LockKind::Delete,
            b'L' => LockKind::Lock,
            other => return Err(reader.bad(format!("kind {other:#x}"))),
        };
        let start_ts = TimeStamp::new(reader.u64()?);
        let ttl_ms = reader.u64()?;
        let primary_len = reader.u32()? as usize;
        let primary = reader.bytes(primary_len)?.to_vec();
        let mut lock = Lock {
            kind,
            primary,
            start_ts,
            ttl_ms,
            short_value: None,
            value_head: None,
            min_commit_ts: TimeStamp::ZERO,
        };
        while !reader.is_done() {
            match reader.u8()? {
                FIELD_SHORT_VALUE => lock.short_value = Some(reader.field()?),
                FIELD_VALUE_HEAD => lock.value_head = Some(reader.field()?),
                FIELD_MIN_COMMIT_TS => lock.min_commit_ts = TimeStamp::new(reader.u64()?),
                other => return Err(reader.bad(format!("field {other:#x}"))),
            }
        }
        Ok(lock)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    Put,
    Delete,
    Rollback,
    Lock,
}

impl WriteKind {
    pub fn from_lock(kind: LockKind) -> WriteKind {
        match kind {
            LockKind::Put => WriteKind::Put,
            LockKind::Delete => WriteKind::Delete,
            LockKind::Lock => WriteKind::Lock,
        }
    }
}

/// A commit record (or a rollback record) of one transaction on one key, stored at
/// `(key, commit_ts)`; a rollback is stored at `(key, start_ts)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub kind: WriteKind,
    pub start_ts: TimeStamp,
    pub short_value: Option<Vec<u8>>,
    /// The first [`VALUE_HEAD_BYTES`] of a put's value that is not short.
    pub value_head: Option<Vec<u8>>,
    /// The transaction that *started* at this record's commit timestamp was rolled back on
    /// this key: its rollback record would have had this record's place, so this record
    /// carries it (a one-phase commit picks its own commit timestamp, which the oracle may
    /// also have given out as a start; see `percolator::server`). TiKV's flag of that name.
    pub overlapped_rollback: bool,
}

impl Write {
    pub fn new(kind: WriteKind, start_ts: TimeStamp, short_value: Option<Vec<u8>>) -> Self {
        Write {
            kind,
            start_ts,
            short_value,
            value_head: None,
            overlapped_rollback: false,
        }
    }

    /// The commit record of `lock`, carrying what the lock kept of the value.
    pub fn committing(lock: Lock) -> Self {
        Write {
            kind: WriteKind::from_lock(lock.kind),
            start_ts: lock.start_ts,
            short_value: lock.short_value,
            value_head: lock.value_head,
            overlapped_rollback: false,
        }
    }

    /// Whether this record changed the key's value (puts and deletes do; rollbacks and locks
    /// do not).
    pub fn changes_value(&self) -> bool {
        matches!(self.kind, WriteKind::Put | WriteKind::Delete)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + inline_len(&self.short_value) + inline_len(&self.value_head));
        out.push(match self.kind {
            WriteKind::Put => b'P',
            WriteKind::Delete => b'D',
            WriteKind::Rollback => b'R',
            WriteKind::Lock => b'L',
        });
        out.extend_from_slice(&self.start_ts.into_inner().to_be_bytes());
        put_field(&mut out, FIELD_SHORT_VALUE, self.short_value.as_deref());
        put_field(&mut out, FIELD_VALUE_HEAD, self.value_head.as_deref());
        if self.overlapped_rollback {
            out.push(FLAG_OVERLAPPED_ROLLBACK);
        }
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Write, MvccError> {
        let mut reader = Reader::new(bytes, "write");
        let kind = match reader.u8()? {
            b'P' => WriteKind::Put,
            b'D' => WriteKind::Delete,
            b'R' => WriteKind::Rollback,
            b'L' => WriteKind::Lock,
            other => return Err(reader.bad(format!("kind {other:#x}"))),
        };
        let start_ts = TimeStamp::new(reader.u64()?);
        let mut write = Write::new(kind, start_ts, None);
        while !reader.is_done() {
            match reader.u8()? {
                FIELD_SHORT_VALUE => write.short_value = Some(reader.field()?),
                FIELD_VALUE_HEAD => write.value_head = Some(reader.field()?),
                FLAG_OVERLAPPED_ROLLBACK => write.overlapped_rollback = true,
                other => return Err(reader.bad(format!("field {other:#x}"))),
            }
        }
        Ok(write)
    }
}

/// The encoded size of an optional length-prefixed field.
fn inline_len(value: &Option<Vec<u8>>) -> usize {
    value.as_ref().map_or(0, |v| v.len() + 5)
}

fn put_field(out: &mut Vec<u8>, field: u8, value: Option<&[u8]>) {
    if let Some(value) = value {
        out.push(field);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
}

/// Reads fixed-size fields off the front of a record, with errors that say which record.
struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, what }
    }

    fn bad(&self, detail: String) -> MvccError {
        MvccError::BadFormat(format!("{} record: {detail}", self.what))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], MvccError> {
        if self.bytes.len() < n {
            return Err(self.bad(format!("truncated, wanted {n} more bytes")));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    /// A length-prefixed field's bytes.
    fn field(&mut self) -> Result<Vec<u8>, MvccError> {
        let len = self.u32()? as usize;
        Ok(self.bytes(len)?.to_vec())
    }

    fn u8(&mut self) -> Result<u8, MvccError> {
        Ok(self.bytes(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, MvccError> {
        Ok(u32::from_be_bytes(self.bytes(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, MvccError> {
        Ok(u64::from_be_bytes(self.bytes(8)?.try_into().expect("8 bytes")))
    }

    fn is_done(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_layout_is_as_documented() {
        let lock = Lock::new(LockKind::Put, vec![1], TimeStamp::new(100), 1000);
        let mut expected = vec![b'P'];
        expected.extend(100u64.to_be_bytes());
        expected.extend(1000u64.to_be_bytes());
        expected.extend(1u32.to_be_bytes());
        expected.push(1);
        assert_eq!(lock.to_bytes(), expected);
        assert_eq!(Lock::parse(&expected).unwrap(), lock);
    }

    #[test]
    fn lock_optional_fields_round_trip() {
        let mut lock = Lock::new(LockKind::Delete, b"primary".to_vec(), TimeStamp::new(7), 3);
        lock.short_value = Some(b"v".to_vec());
        lock.min_commit_ts = TimeStamp::new(9);
        assert_eq!(Lock::parse(&lock.to_bytes()).unwrap(), lock);
        lock.short_value = None;
        lock.value_head = Some(b"0123456789abcdef".to_vec());
        assert_eq!(Lock::parse(&lock.to_bytes()).unwrap(), lock);
        let write = Write::committing(lock);
        assert_eq!(write.value_head.as_deref(), Some(&b"0123456789abcdef"[..]));
        let mut expected = vec![b'D'];
        expected.extend(7u64.to_be_bytes());
        expected.push(b'h');
        expected.extend(16u32.to_be_bytes());
        expected.extend(b"0123456789abcdef");
        assert_eq!(write.to_bytes(), expected);
        assert_eq!(Write::parse(&expected).unwrap(), write);
        let empty_primary = Lock::new(LockKind::Lock, Vec::new(), TimeStamp::new(1), 0);
        assert_eq!(Lock::parse(&empty_primary.to_bytes()).unwrap(), empty_primary);
    }

    #[test]
    fn write_layout_is_as_documented() {
        let write = Write::new(WriteKind::Rollback, TimeStamp::new(100), None);
        let mut expected = vec![b'R'];
        expected.extend(100u64.to_be_bytes());
        assert_eq!(write.to_bytes(), expected);
        assert_eq!(Write::parse(&expected).unwrap(), write);
        let mut with_value = Write::new(WriteKind::Put, TimeStamp::new(5), Some(b"hello".to_vec()));
        assert_eq!(Write::parse(&with_value.to_bytes()).unwrap(), with_value);
        with_value.overlapped_rollback = true;
        let bytes = with_value.to_bytes();
        assert_eq!(bytes.last(), Some(&b'R'));
        assert_eq!(Write::parse(&bytes).unwrap(), with_value);
    }

    #[test]
    fn corrupt_records_are_errors() {
        assert!(Lock::parse(&[]).is_err());
        assert!(Lock::parse(b"X").is_err());
        assert!(Write::parse(&[b'P', 0, 0]).is_err());
        let mut bytes = Write::new(WriteKind::Put, TimeStamp::new(1), None).to_bytes();
        bytes.push(b'?');
        assert!(Write::parse(&bytes).is_err());
    }

    #[test]
    fn expiry_compares_physical_milliseconds() {
        let lock = Lock::new(LockKind::Put, vec![], TimeStamp::compose(5_000, 7), 8);
        assert!(!lock.is_expired(TimeStamp::compose(5_008, 999)));
        assert!(lock.is_expired(TimeStamp::compose(5_009, 0)));
        assert!(
            !Lock::new(LockKind::Put, vec![], TimeStamp::compose(5_000, 0), u64::MAX)
                .is_expired(TimeStamp::MAX)
        );
    }
}
