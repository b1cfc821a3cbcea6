//! Keyspace commands: `DEL EXISTS TYPE KEYS SCAN DBSIZE` (expiry's are in `expire.rs`).

use bytes::{BufMut, Bytes, BytesMut};

use super::ExecContext;
use crate::percolator::Transaction;
use crate::resp::args::{ArgReader, int_arg, is_keyword};
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::glob::Glob;
use crate::resp::keyspace::{
    Entry, all_data_range, data_key, delete_entry, keyspace_range, now_ms, parts_prefixes, prefix_end,
    read_entry, read_value, user_key, write_entry,
};
use crate::resp::reply::Reply;

/// Keys read per store round trip when walking the whole keyspace.
const WALK_CHUNK_KEYS: usize = 1_000;
/// `SCAN`'s default `COUNT`.
const DEFAULT_SCAN_COUNT: usize = 10;
/// The most keys one `SCAN` call examines, whatever `COUNT` asks.
const MAX_SCAN_COUNT: usize = 100_000;

pub enum KeyCommand {
    Del(Vec<Bytes>),
    Exists(Vec<Bytes>),
    Type(Bytes),
    Keys(Bytes),
    Scan(ScanArgs),
    DbSize,
    /// `RENAME`/`RENAMENX` (`only_new`).
    Rename {
        source: Bytes,
        destination: Bytes,
        only_new: bool,
    },
    /// `FLUSHDB`/`FLUSHALL` inside `MULTI`: every key, in the transaction.
    Flush,
}

impl KeyCommand {
    /// `FLUSHDB [ASYNC|SYNC]`'s arguments, for a flush that runs inside a transaction.
    pub fn parse_flush(args: &[Bytes]) -> CommandResult<KeyCommand> {
        match args {
            [] => Ok(KeyCommand::Flush),
            [mode] if is_keyword(mode, "ASYNC") || is_keyword(mode, "SYNC") => Ok(KeyCommand::Flush),
            _ => Err(CommandError::Syntax),
        }
    }

    pub fn parse(name: &str, args: &[Bytes]) -> CommandResult<Option<KeyCommand>> {
        Ok(Some(match name {
            "del" | "unlink" => KeyCommand::Del(args.to_vec()),
            "exists" => KeyCommand::Exists(args.to_vec()),
            "type" => KeyCommand::Type(args[0].clone()),
            "keys" => KeyCommand::Keys(args[0].clone()),
            "scan" => KeyCommand::Scan(ScanArgs::parse(args, true)?),
            "dbsize" => KeyCommand::DbSize,
            "rename" | "renamenx" => KeyCommand::Rename {
                source: args[0].clone(),
                destination: args[1].clone(),
                only_new: name == "renamenx",
            },
            _ => return Ok(None),
        }))
    }

    pub async fn exec<T: Transaction>(&self, txn: &mut T, ctx: &mut ExecContext<'_>) -> CommandResult {
        match self {
            KeyCommand::Del(keys) => {
                let mut deleted = 0;
                for key in dedup(keys) {
                    if let Some(entry) = read_entry(txn, key).await? {
                        delete_entry(txn, key, &entry);
                        deleted += 1;
                    }
                }
                Ok(Reply::Integer(deleted))
            }
            KeyCommand::Exists(keys) => {
                // Redis counts a key named twice twice.
                let mut found = 0;
                for key in keys {
                    if read_entry(txn, key).await?.is_some() {
                        found += 1;
                    }
                }
                Ok(Reply::Integer(found))
            }
            KeyCommand::Type(key) => match read_value(txn, key).await? {
                Some(value) => Ok(Reply::Simple(value.type_name())),
                None => Ok(Reply::Simple("none")),
            },
            KeyCommand::Keys(pattern) => {
                let glob = Glob::new(pattern);
                let mut keys = Vec::new();
                walk_keyspace(txn, &glob, |key, _| keys.push(Reply::Bulk(key))).await?;
                Ok(Reply::Array(keys))
            }
            KeyCommand::Scan(args) => scan(txn, ctx, args).await,
            KeyCommand::DbSize => Ok(Reply::Integer(count_keys(txn).await? as i64)),
            KeyCommand::Rename {
                source,
                destination,
                only_new,
            } => {
                let Some(entry) = read_entry(txn, source).await? else {
                    return Err(CommandError::Other("no such key".into()));
                };
                let replaced = read_entry(txn, destination).await?;
                if *only_new && replaced.is_some() {
                    return Ok(Reply::Integer(0));
                }
                if source != destination {
                    rename(txn, source, destination, &entry, replaced.as_ref()).await?;
                }
                Ok(if *only_new { Reply::Integer(1) } else { Reply::OK })
            }
            KeyCommand::Flush => {
                let (start, end) = all_data_range();
                let everything = txn.scan(start, Some(end), usize::MAX).await?;
                for (key, _) in everything {
                    txn.delete(key);
                }
                Ok(Reply::OK)
            }
        }
    }
}

/// Moves the key `source` (holding `entry`) to `destination`, replacing whatever that held, with
/// its timeout. A collection's parts are keyed by its name, so they are copied under the new
/// name (O(N), where Redis's RENAME is O(1)); the old ones are orphans for GC, as after `DEL`.
async fn rename<T: Transaction>(
    txn: &mut T,
    source: &[u8],
    destination: &[u8],
    entry: &Entry,
    replaced: Option<&Entry>,
) -> CommandResult<()> {
    let sources = parts_prefixes(source, &entry.value);
    let destinations = parts_prefixes(destination, &entry.value);
    for (from, to) in sources.into_iter().zip(destinations) {
        let end = prefix_end(&from);
        for (store_key, value) in txn.scan(&from, end.as_deref(), usize::MAX).await? {
            let mut moved = to.clone();
            moved.extend_from_slice(&store_key[from.len()..]);
            txn.put(Bytes::from(moved), value);
        }
    }
    delete_entry(txn, source, entry);
    write_entry(txn, destination, entry, replaced);
    Ok(())
}

/// The keys in order of first appearance, each once.
fn dedup(keys: &[Bytes]) -> Vec<&Bytes> {
    let mut seen = std::collections::HashSet::new();
    keys.iter().filter(|k| seen.insert(*k)).collect()
}

/// The arguments of `SCAN` and of the collection scans (`SSCAN`, `HSCAN`...): `cursor [MATCH
/// pattern] [COUNT count]`, and `[TYPE type]` for `SCAN`.
#[derive(Clone)]
pub struct ScanArgs {
    cursor: u64,
    /// `None`: every name matches.
    glob: Option<Glob>,
    count: usize,
    type_filter: Option<Bytes>,
}

impl ScanArgs {
    pub fn parse(args: &[Bytes], allow_type: bool) -> CommandResult<ScanArgs> {
        let cursor = std::str::from_utf8(&args[0])
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .ok_or(CommandError::InvalidCursor)?;
        let mut reader = ArgReader::new(&args[1..]);
        let (mut glob, mut count, mut type_filter) = (None, DEFAULT_SCAN_COUNT, None);
        while let Some(option) = reader.next() {
            if is_keyword(option, "MATCH") {
                glob = Some(Glob::new(reader.value()?)).filter(|g| !g.matches_all());
            } else if is_keyword(option, "COUNT") {
                let n = int_arg(reader.value()?)?;
                if n < 1 {
                    return Err(CommandError::Syntax);
                }
                count = (n as u64).min(MAX_SCAN_COUNT as u64) as usize;
            } else if allow_type && is_keyword(option, "TYPE") {
                type_filter = Some(reader.value()?.clone());
            } else {
                return Err(CommandError::Syntax);
            }
        }
        Ok(ScanArgs {
            cursor,
            glob,
            count,
            type_filter,
        })
    }

    /// Whether `name` (a key, member or field) passes `MATCH`.
    pub fn matches(&self, name: &[u8]) -> bool {
        self.glob.as_ref().is_none_or(|g| g.matches(name))
    }
}

/// One step of a collection scan over the parts under `prefix`: at most `COUNT` parts from where
/// the cursor stopped, and the cursor to continue from (`0` once the collection is exhausted).
/// A cursor that does not resume inside this collection starts from its beginning.
pub async fn scan_parts<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    prefix: &[u8],
    args: &ScanArgs,
) -> CommandResult<(u64, Vec<(Bytes, Bytes)>)> {
    let mut start = prefix.to_vec();
    if let Some(resume) = (args.cursor != 0)
        .then(|| ctx.cursors.resume_key(args.cursor))
        .flatten()
        .filter(|resume| resume.starts_with(prefix))
    {
        start = resume.to_vec();
    }
    let end = prefix_end(prefix);
    let parts = txn.scan(&start, end.as_deref(), args.count).await?;
    let mut next_cursor = 0;
    if parts.len() == args.count
        && let Some((last, _)) = parts.last()
    {
        next_cursor = ctx.cursors.register(successor(last));
    }
    Ok((next_cursor, parts))
}

/// Examines at most `COUNT` keys from where the cursor stopped and returns those that pass the
/// filters, with the cursor to continue from (`0` when the keyspace is exhausted).
async fn scan<T: Transaction>(txn: &mut T, ctx: &mut ExecContext<'_>, args: &ScanArgs) -> CommandResult {
    let (mut start, mut end) = prefix_bounds(args.glob.as_ref());
    if let Some(resume) = (args.cursor != 0)
        .then(|| ctx.cursors.resume_key(args.cursor))
        .flatten()
    {
        start = start.max(resume.to_vec());
    }
    if let Some(stop) = &end
        && start >= *stop
    {
        end = None;
        start = keyspace_range().1.to_vec();
    }
    let end = end.unwrap_or_else(|| keyspace_range().1.to_vec());
    let examined = txn.scan(&start, Some(&end), args.count).await?;
    let exhausted = examined.len() < args.count;
    let mut next_cursor = 0;
    if !exhausted && let Some((last, _)) = examined.last() {
        next_cursor = ctx.cursors.register(successor(last));
    }
    let now = now_ms(txn);
    let mut keys = Vec::new();
    for (store_key, raw) in examined {
        let key = user_key(&store_key);
        if !args.matches(&key) {
            continue;
        }
        let entry = Entry::decode(raw)?;
        if entry.is_expired(now) {
            continue;
        }
        if let Some(wanted) = &args.type_filter
            && !wanted.eq_ignore_ascii_case(entry.value.type_name().as_bytes())
        {
            continue;
        }
        keys.push(Reply::Bulk(key));
    }
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from(next_cursor.to_string())),
        Reply::Array(keys),
    ]))
}

/// The store range a pattern can match: all keys share its literal prefix.
fn prefix_bounds(glob: Option<&Glob>) -> (Vec<u8>, Option<Vec<u8>>) {
    match glob.map(Glob::literal_prefix).filter(|p| !p.is_empty()) {
        Some(prefix) => {
            let start = data_key(&prefix).to_vec();
            let end = prefix_end(&start);
            (start, end)
        }
        None => (keyspace_range().0.to_vec(), None),
    }
}

/// The smallest key greater than `key`.
fn successor(key: &[u8]) -> Bytes {
    let mut next = BytesMut::with_capacity(key.len() + 1);
    next.put_slice(key);
    next.put_u8(0);
    next.freeze()
}

/// Calls `visit` with every existing (unexpired) key matching `glob` and its entry, in key
/// order.
async fn walk_keyspace<T: Transaction>(
    txn: &mut T,
    glob: &Glob,
    mut visit: impl FnMut(Bytes, Entry),
) -> CommandResult<()> {
    let now = now_ms(txn);
    let check = !glob.matches_all();
    let (mut start, end) = prefix_bounds(check.then_some(glob));
    let end = end.unwrap_or_else(|| keyspace_range().1.to_vec());
    loop {
        let chunk = txn.scan(&start, Some(&end), WALK_CHUNK_KEYS).await?;
        let done = chunk.len() < WALK_CHUNK_KEYS;
        if let Some((last, _)) = chunk.last() {
            start = successor(last).to_vec();
        }
        for (store_key, raw) in chunk {
            let key = user_key(&store_key);
            if check && !glob.matches(&key) {
                continue;
            }
            let entry = Entry::decode(raw)?;
            if !entry.is_expired(now) {
                visit(key, entry);
            }
        }
        if done {
            return Ok(());
        }
    }
}

/// What `INFO keyspace` reports of a database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyspaceCounts {
    pub keys: u64,
    /// Keys with a timeout.
    pub expires: u64,
    /// The mean time left of the keys with a timeout, in milliseconds (0 if none).
    pub avg_ttl_ms: u64,
}

/// The number of keys, counted in the transaction's snapshot.
pub async fn count_keys<T: Transaction>(txn: &mut T) -> CommandResult<u64> {
    Ok(keyspace_counts(txn).await?.keys)
}

/// Keys and timeouts, counted in the transaction's snapshot.
pub async fn keyspace_counts<T: Transaction>(txn: &mut T) -> CommandResult<KeyspaceCounts> {
    let now = now_ms(txn);
    let mut counts = KeyspaceCounts::default();
    let mut ttl_total: u128 = 0;
    walk_keyspace(txn, &Glob::new(b"*"), |_, entry| {
        counts.keys += 1;
        if let Some(deadline) = entry.expires_at {
            counts.expires += 1;
            ttl_total += u128::from(deadline.saturating_sub(now));
        }
    })
    .await?;
    if counts.expires > 0 {
        counts.avg_ttl_ms = (ttl_total / u128::from(counts.expires)) as u64;
    }
    Ok(counts)
}
