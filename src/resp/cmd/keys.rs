//! Keyspace commands: `DEL EXISTS TYPE KEYS SCAN DBSIZE RENAME RENAMENX COPY DUMP RESTORE
//! MEMORY USAGE TOUCH RANDOMKEY OBJECT`, and those that span databases, `MOVE SWAPDB COPY … DB`
//! and `FLUSHALL` inside `MULTI` (expiry's are in `expire.rs`).
//!
//! `MEMORY USAGE` answers the bytes of the key's entries in the store (keys and values, before
//! MVCC versions and compression): its meta entry, and for a collection its parts, estimated
//! from `SAMPLES` of them (default 5, 0 for all) as Redis estimates.

use bytes::Bytes;

use super::DbScope;
use super::ExecContext;
use super::contents::{copy_value, read_contents, read_parts, write_contents, write_copy};
use super::rdb;
use super::table::CommandSpec;
use crate::percolator::{ScanLimits, Transaction};
use crate::resp::args::{ArgReader, int_arg, is_keyword};
use crate::resp::blocked::BlockedClients;
use crate::resp::db::{DbIndex, InDb, databases_range, qualify};
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::glob::Glob;
use crate::resp::keyspace::{
    ENTRY_HEAD_BYTES, Entry, EntryHead, Value, data_key, delete_entry, key_after, key_naming_ranges,
    keyspace_range, now_ms, parts_expected, parts_prefixes, prefix_end, read_entry, read_value, user_key,
};
use crate::resp::reply::Reply;

/// Keys read per store round trip when walking the whole keyspace.
const WALK_CHUNK_KEYS: usize = 1_000;
/// `SCAN`'s default `COUNT`.
const DEFAULT_SCAN_COUNT: usize = 10;
/// Random points `RANDOMKEY` tries before walking to a live key.
const RANDOM_KEY_TRIES: usize = 8;
/// The parts of each kind `MEMORY USAGE` reads unless told otherwise (Redis's default).
const DEFAULT_MEMORY_SAMPLES: u64 = 5;
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
    Dump(Bytes),
    Restore(Restore),
    /// `TOUCH key...`: how many exist (there are no access times to update).
    Touch(Vec<Bytes>),
    RandomKey,
    /// `OBJECT ENCODING key`.
    Encoding(Bytes),
    /// `OBJECT REFCOUNT key`: 1 for an existing key (values are never shared).
    RefCount(Bytes),
    /// `MEMORY USAGE key [SAMPLES count]` (`None`: every part).
    MemoryUsage(Bytes, Option<u64>),
}

/// A command that spans databases: it runs against the whole transaction, opening a view
/// per database (see `db`).
pub enum AcrossCommand {
    /// `MOVE key db`.
    Move { key: Bytes, to: DbIndex },
    /// `COPY source destination [DB destination-db] [REPLACE]`.
    Copy {
        source: Bytes,
        destination: Bytes,
        to: Option<DbIndex>,
        replace: bool,
    },
    /// `SWAPDB index1 index2`.
    SwapDb(DbIndex, DbIndex),
    /// `FLUSHALL` inside `MULTI`: every database, in the transaction.
    FlushAll { databases: usize },
}

/// The most store entries `SWAPDB` moves: both databases are rewritten in one transaction,
/// which holds them in memory.
pub const SWAPDB_MAX_ENTRIES: usize = 1_000_000;

impl AcrossCommand {
    pub fn parse(name: &str, args: &[Bytes], scope: DbScope) -> CommandResult<Option<AcrossCommand>> {
        let db_arg = |arg: &Bytes| -> CommandResult<DbIndex> {
            let index = int_arg(arg)?;
            if !(0..scope.databases as i64).contains(&index) {
                return Err(CommandError::DbIndexOutOfRange);
            }
            Ok(index as DbIndex)
        };
        Ok(Some(match name {
            "move" => {
                let to = db_arg(&args[1])?;
                if to == scope.db {
                    return Err(CommandError::Other(
                        "source and destination objects are the same".into(),
                    ));
                }
                AcrossCommand::Move {
                    key: args[0].clone(),
                    to,
                }
            }
            "copy" => {
                let (mut to, mut replace) = (None, false);
                let mut reader = ArgReader::new(&args[2..]);
                while let Some(option) = reader.next() {
                    if is_keyword(option, "REPLACE") {
                        replace = true;
                    } else if is_keyword(option, "DB") {
                        to = Some(db_arg(reader.value()?)?);
                    } else {
                        return Err(CommandError::Syntax);
                    }
                }
                AcrossCommand::Copy {
                    source: args[0].clone(),
                    destination: args[1].clone(),
                    to,
                    replace,
                }
            }
            "swapdb" => {
                // Redis names which index is not a number.
                let index = |arg: &Bytes, which: &str| {
                    db_arg(arg).map_err(|e| match e {
                        CommandError::NotInteger => CommandError::Other(format!("invalid {which} DB index")),
                        other => other,
                    })
                };
                AcrossCommand::SwapDb(index(&args[0], "first")?, index(&args[1], "second")?)
            }
            _ => return Ok(None),
        }))
    }

    /// Runs the command in `txn`, given in database `db`.
    pub async fn exec<T: Transaction>(
        &self,
        txn: &mut T,
        db: DbIndex,
        ctx: &mut ExecContext<'_>,
    ) -> CommandResult {
        match self {
            AcrossCommand::Move { key, to } => {
                let Some(entry) = read_entry(&mut InDb::new(txn, db), key).await? else {
                    return Ok(Reply::Integer(0));
                };
                if read_entry(&mut InDb::new(txn, *to), key).await?.is_some() {
                    return Ok(Reply::Integer(0));
                }
                let parts = read_parts(&mut InDb::new(txn, db), key, &entry).await?;
                write_copy(&mut InDb::new(txn, *to), ctx, key, &entry, parts, None);
                delete_entry(&mut InDb::new(txn, db), key, &entry);
                Ok(Reply::Integer(1))
            }
            AcrossCommand::Copy {
                source,
                destination,
                to,
                replace,
            } => {
                let to = to.unwrap_or(db);
                if source == destination && to == db {
                    return Err(CommandError::Other(
                        "source and destination objects are the same".into(),
                    ));
                }
                let Some(entry) = read_entry(&mut InDb::new(txn, db), source).await? else {
                    return Ok(Reply::Integer(0));
                };
                let replaced = read_entry(&mut InDb::new(txn, to), destination).await?;
                if replaced.is_some() && !replace {
                    return Ok(Reply::Integer(0));
                }
                let parts = read_parts(&mut InDb::new(txn, db), source, &entry).await?;
                let target = &mut InDb::new(txn, to);
                if let Some(replaced) = &replaced {
                    delete_entry(target, destination, replaced);
                }
                write_copy(target, ctx, destination, &entry, parts, None);
                Ok(Reply::Integer(1))
            }
            AcrossCommand::SwapDb(first, second) => {
                if first != second {
                    swap_databases(txn, *first, *second).await?;
                }
                Ok(Reply::OK)
            }
            AcrossCommand::FlushAll { databases } => {
                let (start, end) = databases_range(0, *databases);
                for (key, _) in txn.scan(&start, end.as_deref(), usize::MAX).await? {
                    txn.delete(key);
                }
                Ok(Reply::OK)
            }
        }
    }

    /// The keys (qualified) that may have gained elements for blocked clients: after
    /// `SWAPDB`, every key a client waits for in either database; after a move or copy, its
    /// destination.
    pub fn filled_keys(&self, db: DbIndex, blocked: &BlockedClients) -> Vec<Bytes> {
        match self {
            AcrossCommand::Move { key, to } => vec![qualify(*to, key)],
            AcrossCommand::Copy { destination, to, .. } => vec![qualify(to.unwrap_or(db), destination)],
            AcrossCommand::SwapDb(first, second) => blocked
                .waited_keys()
                .into_iter()
                .filter(|key| key.first().is_some_and(|d| d == first || d == second))
                .collect(),
            AcrossCommand::FlushAll { .. } => Vec::new(),
        }
    }
}

/// Exchanges the contents of two databases, in one transaction: every entry of each is
/// rewritten under the other's prefix (O(N) in both, where Redis's `SWAPDB` is O(1)).
async fn swap_databases<T: Transaction>(txn: &mut T, first: DbIndex, second: DbIndex) -> CommandResult<()> {
    let mut entries = Vec::new();
    for db in [first, second] {
        let (start, end) = databases_range(db, usize::from(db) + 1);
        let found = txn.scan(&start, end.as_deref(), SWAPDB_MAX_ENTRIES + 1).await?;
        entries.push(found);
    }
    if entries.iter().map(Vec::len).sum::<usize>() > SWAPDB_MAX_ENTRIES {
        return Err(CommandError::Other(format!(
            "SWAPDB rewrites both databases in one transaction here, and they hold more than \
             {SWAPDB_MAX_ENTRIES} entries"
        )));
    }
    for found in &entries {
        for (key, _) in found {
            txn.delete(key.clone());
        }
    }
    for (found, to) in entries.into_iter().zip([second, first]) {
        for (key, value) in found {
            txn.put(qualify(to, &key[1..]), value);
        }
    }
    Ok(())
}

/// `RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]`.
/// There is no eviction here, so the idle time and frequency are checked and dropped.
pub struct Restore {
    key: Bytes,
    /// Milliseconds to live, or the deadline with `ABSTTL`; 0: no timeout.
    ttl: u64,
    absolute: bool,
    payload: Bytes,
    replace: bool,
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

    pub fn parse(spec: &CommandSpec, args: &[Bytes]) -> CommandResult<Option<KeyCommand>> {
        Ok(Some(match spec.name {
            "del" | "unlink" => KeyCommand::Del(args.to_vec()),
            "exists" => KeyCommand::Exists(args.to_vec()),
            "type" => KeyCommand::Type(args[0].clone()),
            "keys" => KeyCommand::Keys(args[0].clone()),
            "scan" => KeyCommand::Scan(ScanArgs::parse(args, true)?),
            "dbsize" => KeyCommand::DbSize,
            "rename" | "renamenx" => KeyCommand::Rename {
                source: args[0].clone(),
                destination: args[1].clone(),
                only_new: spec.name == "renamenx",
            },
            "dump" => KeyCommand::Dump(args[0].clone()),
            "touch" => KeyCommand::Touch(args.to_vec()),
            "randomkey" => KeyCommand::RandomKey,
            "object" => {
                let sub = spec.subcommand_called(&args[0], args.len() + 1)?;
                match sub.name {
                    "object|encoding" => KeyCommand::Encoding(args[1].clone()),
                    "object|freq" | "object|idletime" => {
                        return Err(CommandError::Other(format!(
                            "OBJECT {} is not available: ferrokv keeps no access times or \
                             frequencies (there is no eviction)",
                            sub.name.trim_start_matches("object|").to_uppercase()
                        )));
                    }
                    _ => KeyCommand::RefCount(args[1].clone()),
                }
            }
            "restore" => KeyCommand::Restore(parse_restore(args)?),
            "memory" => {
                let sub = spec.subcommand_called(&args[0], args.len() + 1)?;
                match sub.name {
                    "memory|usage" => parse_memory_usage(&args[1..])?,
                    other => return Err(CommandError::Other(format!("{other} has no implementation"))),
                }
            }
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
            KeyCommand::Touch(keys) => {
                let mut found = 0;
                for key in keys {
                    if ctx.counted(read_entry(txn, key).await?).is_some() {
                        found += 1;
                    }
                }
                Ok(Reply::Integer(found))
            }
            KeyCommand::RandomKey => Ok(Reply::bulk_or_nil(random_key(txn).await?)),
            KeyCommand::Encoding(key) => match ctx.counted(read_value(txn, key).await?) {
                Some(value) => Ok(Reply::bulk_str(encoding_name(&value))),
                None => Ok(Reply::Nil),
            },
            KeyCommand::RefCount(key) => match read_entry(txn, key).await? {
                Some(_) => Ok(Reply::Integer(1)),
                None => Ok(Reply::Nil),
            },
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
                    copy_value(txn, ctx, source, &entry, destination, replaced.as_ref()).await?;
                    delete_entry(txn, source, &entry);
                }
                Ok(if *only_new { Reply::Integer(1) } else { Reply::OK })
            }
            KeyCommand::Dump(key) => {
                let Some(value) = ctx.counted(read_value(txn, key).await?) else {
                    return Ok(Reply::Nil);
                };
                let contents = read_contents(txn, key, &value).await?;
                Ok(Reply::Bulk(rdb::encode(&contents)))
            }
            KeyCommand::Restore(restore) => restore.exec(txn, ctx).await,
            KeyCommand::MemoryUsage(key, samples) => {
                let Some(entry) = read_entry(txn, key).await? else {
                    return Ok(Reply::Nil);
                };
                Ok(Reply::Integer(
                    memory_usage(txn, key, &entry, *samples).await? as i64,
                ))
            }
            KeyCommand::Flush => {
                let mut eraser = KeyEraser::default();
                while eraser.step(txn, usize::MAX).await? {}
                Ok(Reply::OK)
            }
        }
    }
}

fn parse_restore(args: &[Bytes]) -> CommandResult<Restore> {
    let ttl = int_arg(&args[1])?;
    let ttl =
        u64::try_from(ttl).map_err(|_| CommandError::Other("Invalid TTL value, must be >= 0".into()))?;
    let (mut replace, mut absolute) = (false, false);
    let mut reader = ArgReader::new(&args[3..]);
    while let Some(option) = reader.next() {
        if is_keyword(option, "REPLACE") {
            replace = true;
        } else if is_keyword(option, "ABSTTL") {
            absolute = true;
        } else if is_keyword(option, "IDLETIME") {
            if int_arg(reader.value()?)? < 0 {
                return Err(CommandError::Other("Invalid IDLETIME value, must be >= 0".into()));
            }
        } else if is_keyword(option, "FREQ") {
            if !(0..=255).contains(&int_arg(reader.value()?)?) {
                return Err(CommandError::Other(
                    "Invalid FREQ value, must be >= 0 and <= 255".into(),
                ));
            }
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(Restore {
        key: args[0].clone(),
        ttl,
        absolute,
        payload: args[2].clone(),
        replace,
    })
}

impl Restore {
    async fn exec<T: Transaction>(&self, txn: &mut T, ctx: &mut ExecContext<'_>) -> CommandResult {
        let replaced = read_entry(txn, &self.key).await?;
        if replaced.is_some() && !self.replace {
            return Err(CommandError::BusyKey);
        }
        let contents = rdb::decode(&self.payload).map_err(|e| CommandError::Other(e.to_string()))?;
        let now = now_ms(txn);
        let deadline = match (self.ttl, self.absolute) {
            (0, _) => None,
            (at, true) => Some(at),
            (ttl, false) => Some(now.saturating_add(ttl)),
        };
        if let Some(replaced) = &replaced {
            delete_entry(txn, &self.key, replaced);
        }
        // A deadline already passed: the key is restored and expires at once, as in Redis.
        if deadline.is_some_and(|d| d <= now) {
            return Ok(Reply::OK);
        }
        write_contents(txn, ctx, &self.key, contents, deadline, None).await?;
        Ok(Reply::OK)
    }
}

fn parse_memory_usage(args: &[Bytes]) -> CommandResult<KeyCommand> {
    let mut samples = Some(DEFAULT_MEMORY_SAMPLES);
    let mut reader = ArgReader::new(&args[1..]);
    while let Some(option) = reader.next() {
        if !is_keyword(option, "SAMPLES") {
            return Err(CommandError::Syntax);
        }
        let count = int_arg(reader.value()?)?;
        if count < 0 {
            return Err(CommandError::Syntax);
        }
        samples = (count > 0).then_some(count as u64);
    }
    Ok(KeyCommand::MemoryUsage(args[0].clone(), samples))
}

/// The bytes the entries of `key` (holding `entry`) take in the store: its meta entry and
/// its parts, `samples` of each kind read and the rest counted at their mean size (all read
/// if `None`).
async fn memory_usage<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    entry: &Entry,
    samples: Option<u64>,
) -> CommandResult<u64> {
    let mut total = (data_key(key).len() + entry.encode().len()) as u64;
    let len = match &entry.value {
        Value::String(_) => 0,
        Value::List(meta) => meta.len,
        Value::Hash(meta) | Value::Set(meta) | Value::ZSet(meta) => meta.len,
    };
    for prefix in parts_prefixes(key, &entry.value) {
        let parts = parts_expected(&prefix, len);
        let end = prefix_end(&prefix);
        let limit = samples.map_or(usize::MAX, |n| n.min(parts) as usize);
        let sampled = txn.scan(&prefix, end.as_deref(), limit).await?;
        if sampled.is_empty() {
            continue;
        }
        let bytes: u64 = sampled.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        // Fewer than asked for: that is all of them, counted exactly.
        total += if sampled.len() < limit {
            bytes
        } else {
            bytes * parts / sampled.len() as u64
        };
    }
    Ok(total)
}

/// `OBJECT ENCODING`'s answer: the name of Redis's encoding whose costs match how the value
/// is stored here. A string is its bytes (`raw`: no integer or embedded forms); a collection
/// keeps each element in its own entry, one lookup away (`hashtable` for hashes and sets), in
/// order by position (`quicklist` for lists), or in order by score (`skiplist` for sorted
/// sets), whatever its size: there are no compact small encodings.
fn encoding_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "raw",
        Value::Hash(_) | Value::Set(_) => "hashtable",
        Value::List(_) => "quicklist",
        Value::ZSet(_) => "skiplist",
    }
}

/// A key picked at random: the first unexpired key at or after a random point of the key
/// order (wrapping around), a few tries. Keys after a wide gap in the order are likelier
/// than others; Redis's pick is closer to uniform.
async fn random_key<T: Transaction>(txn: &mut T) -> CommandResult<Option<Bytes>> {
    let now = now_ms(txn);
    let (start, end) = keyspace_range();
    let first_head = ScanLimits {
        limit: 1,
        ..ScanLimits::heads(usize::MAX, ENTRY_HEAD_BYTES)
    };
    for _ in 0..RANDOM_KEY_TRIES {
        let mut seek = start.to_vec();
        seek.extend_from_slice(&fastrand::u64(..).to_be_bytes());
        let mut found = txn.scan_page(&seek, Some(end), first_head).await?.pairs;
        if found.is_empty() {
            found = txn.scan_page(start, Some(end), first_head).await?.pairs;
        }
        let Some((store_key, head)) = found.pop() else {
            return Ok(None);
        };
        if !EntryHead::decode(&head)?.is_expired(now) {
            return Ok(Some(user_key(&store_key)));
        }
    }
    // Mostly expired keys: walk to the first live one.
    let mut live = None;
    walk_keyspace(txn, &Glob::new(b"*"), |key, _| {
        live.get_or_insert(key);
    })
    .await?;
    Ok(live)
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
        next_cursor = ctx.cursors.register(Bytes::from(key_after(last)));
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
    // `COUNT` bounds the keys looked at, also deleted ones not yet collected.
    let page = txn
        .scan_page(
            &start,
            Some(&end),
            ScanLimits::heads(args.count, ENTRY_HEAD_BYTES),
        )
        .await?;
    let next_cursor = page.resume.map_or(0, |resume| ctx.cursors.register(resume));
    let now = now_ms(txn);
    let mut keys = Vec::new();
    for (store_key, head) in page.pairs {
        let key = user_key(&store_key);
        if !args.matches(&key) {
            continue;
        }
        let head = EntryHead::decode(&head)?;
        if head.is_expired(now) {
            continue;
        }
        if let Some(wanted) = &args.type_filter
            && !wanted.eq_ignore_ascii_case(head.type_name().as_bytes())
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

/// Calls `visit` with every existing (unexpired) key matching `glob` and its entry's head, in
/// key order. Reads keys and entry heads, never a string's bytes.
async fn walk_keyspace<T: Transaction>(
    txn: &mut T,
    glob: &Glob,
    mut visit: impl FnMut(Bytes, EntryHead),
) -> CommandResult<()> {
    let now = now_ms(txn);
    let check = !glob.matches_all();
    let (start, end) = prefix_bounds(check.then_some(glob));
    let end = end.unwrap_or_else(|| keyspace_range().1.to_vec());
    let mut from = Some(Bytes::from(start));
    while let Some(start) = from {
        let page = txn
            .scan_page(
                &start,
                Some(&end),
                ScanLimits::heads(WALK_CHUNK_KEYS, ENTRY_HEAD_BYTES),
            )
            .await?;
        for (store_key, head) in page.pairs {
            let key = user_key(&store_key);
            if check && !glob.matches(&key) {
                continue;
            }
            let head = EntryHead::decode(&head)?;
            if !head.is_expired(now) {
                visit(key, head);
            }
        }
        from = page.resume;
    }
    Ok(())
}

/// Deletes every key of a database, in steps that read at most a given number of stored keys
/// each, and only their keys: it deletes the entries that name keys ([`key_naming_ranges`]),
/// leaving collections' parts to garbage collection as `DEL` does.
#[derive(Clone, Debug, Default)]
pub struct KeyEraser {
    /// Which of the key-naming ranges the next step starts in.
    range: usize,
    /// Where in it (`None`: at its start).
    from: Option<Bytes>,
}

impl KeyEraser {
    /// Buffers in `txn` the deletes of the key-naming entries among the next `examine` stored
    /// keys; `false` once nothing is left. Steps go on from where the last one stopped, also
    /// in a new transaction, so no step looks again at what an earlier one deleted.
    pub async fn step<T: Transaction>(&mut self, txn: &mut T, examine: usize) -> CommandResult<bool> {
        let ranges = key_naming_ranges();
        while let Some(&(start, end)) = ranges.get(self.range) {
            let from = self.from.clone().unwrap_or_else(|| Bytes::from_static(start));
            let page = txn
                .scan_page(&from, Some(end), ScanLimits::heads(examine, 0))
                .await?;
            let deleted = !page.pairs.is_empty();
            for (key, _) in page.pairs {
                txn.delete(key);
            }
            self.from = page.resume;
            if self.from.is_none() {
                self.range += 1;
            }
            if deleted || self.from.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
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
