//! A key's whole value, read out of the store and written back in: what `DUMP` serializes and
//! `RESTORE` loads ([`Contents`]), and the copy of a key's parts under a new name (or in
//! another database) that `COPY`, `RENAME` and `MOVE` make ([`copy_value`], [`read_parts`]).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::ExecContext;
use super::zsets::write_new_members;
use crate::percolator::{KvPair, Transaction};
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::keyspace::{
    CollectionMeta, Entry, ListMeta, Value, decode_score, hash_field_key, list_element_key, parts_prefixes,
    prefix_end, set_member, set_member_key, write_entry,
};

/// Every element of a value, in the value's order.
#[derive(Clone, Debug, PartialEq)]
pub enum Contents {
    String(Bytes),
    List(Vec<Bytes>),
    /// Members in no particular order.
    Set(Vec<Bytes>),
    /// Members and scores, in no particular order.
    ZSet(Vec<(Bytes, f64)>),
    /// Fields and values, in no particular order.
    Hash(Vec<(Bytes, Bytes)>),
}

impl Contents {
    /// Elements (fields, members) in the value; 1 for a string.
    pub fn len(&self) -> usize {
        match self {
            Contents::String(_) => 1,
            Contents::List(items) | Contents::Set(items) => items.len(),
            Contents::ZSet(items) => items.len(),
            Contents::Hash(items) => items.len(),
        }
    }
}

/// The contents of the value at `key`. O(N) in its elements.
pub async fn read_contents<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    value: &Value,
) -> CommandResult<Contents> {
    // The first prefix holds every element (a sorted set's others are its order indexes); a
    // string has none.
    let (prefix, parts) = match parts_prefixes(key, value).into_iter().next() {
        Some(prefix) => {
            let end = prefix_end(&prefix);
            let parts = txn.scan(&prefix, end.as_deref(), usize::MAX).await?;
            (prefix, parts)
        }
        None => (Vec::new(), Vec::new()),
    };
    let name = |store_key: &Bytes| store_key.slice(prefix.len()..);
    Ok(match value {
        Value::String(payload) => Contents::String(payload.clone()),
        // Positions sort as numbers, so a scan reads a list left to right.
        Value::List(_) => Contents::List(parts.into_iter().map(|(_, element)| element).collect()),
        Value::Hash(_) => Contents::Hash(parts.into_iter().map(|(k, v)| (name(&k), v)).collect()),
        Value::Set(_) => Contents::Set(parts.iter().map(|(k, _)| set_member(&prefix, k)).collect()),
        Value::ZSet(_) => Contents::ZSet(
            parts
                .iter()
                .map(|(k, score)| Ok((name(k), decode_score(score)?)))
                .collect::<CommandResult<_>>()?,
        ),
    })
}

/// Makes `key` hold `contents` as a new value (a collection gets a new version), expiring at
/// `expires_at`; `replaced` is the entry it replaces, if any. Empty collections and repeated
/// fields or members are refused: no command could have made them.
pub async fn write_contents<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
    contents: Contents,
    expires_at: Option<u64>,
    replaced: Option<&Entry>,
) -> CommandResult<()> {
    if contents.len() == 0 {
        return Err(CommandError::Other("Bad data format".into()));
    }
    let repeated = || CommandError::Other("Bad data format: a field or member appears twice".into());
    let value = match contents {
        Contents::String(payload) => Value::String(payload),
        Contents::List(elements) => {
            let meta = ListMeta {
                len: elements.len() as u64,
                head: 0,
                version: ctx.new_version(txn),
            };
            for (i, element) in elements.into_iter().enumerate() {
                txn.put(
                    list_element_key(key, &meta.version, meta.position(i as u64)),
                    element,
                );
            }
            Value::List(meta)
        }
        Contents::Hash(pairs) => {
            let len = pairs.len() as u64;
            let fields: BTreeMap<Bytes, Bytes> = pairs.into_iter().collect();
            if fields.len() as u64 != len {
                return Err(repeated());
            }
            let meta = CollectionMeta {
                len,
                version: ctx.new_version(txn),
            };
            for (field, value) in fields {
                txn.put(hash_field_key(key, &meta.version, &field), value);
            }
            Value::Hash(meta)
        }
        Contents::Set(members) => {
            let len = members.len() as u64;
            let members: std::collections::BTreeSet<Bytes> = members.into_iter().collect();
            if members.len() as u64 != len {
                return Err(repeated());
            }
            let meta = CollectionMeta {
                len,
                version: ctx.new_version(txn),
            };
            for member in members {
                txn.put(set_member_key(key, &meta.version, &member), Bytes::new());
            }
            Value::Set(meta)
        }
        Contents::ZSet(members) => {
            let len = members.len();
            let members: BTreeMap<Bytes, f64> = members.into_iter().collect();
            if members.len() != len || members.values().any(|s| s.is_nan()) {
                return Err(CommandError::Other("Bad data format".into()));
            }
            let mut meta = CollectionMeta {
                len: 0,
                version: ctx.new_version(txn),
            };
            let members: Vec<(Bytes, f64)> = members.into_iter().collect();
            write_new_members(txn, key, &mut meta, &members);
            Value::ZSet(meta)
        }
    };
    write_entry(txn, key, &Entry::new(value, expires_at), replaced);
    Ok(())
}

/// Writes a copy of `entry`, the value at `source`, to `destination` (whose current entry is
/// `replaced`), with the same timeout, and returns it. See [`write_copy`].
pub async fn copy_value<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    source: &[u8],
    entry: &Entry,
    destination: &[u8],
    replaced: Option<&Entry>,
) -> CommandResult<Entry> {
    let parts = read_parts(txn, source, entry).await?;
    Ok(write_copy(txn, ctx, destination, entry, parts, replaced))
}

/// The parts of the value `entry` at `key`: per kind of part, each part's store key after the
/// prefix, and its value.
pub async fn read_parts<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    entry: &Entry,
) -> CommandResult<Vec<Vec<KvPair>>> {
    let mut parts = Vec::new();
    for prefix in parts_prefixes(key, &entry.value) {
        let end = prefix_end(&prefix);
        let found = txn.scan(&prefix, end.as_deref(), usize::MAX).await?;
        parts.push(
            found
                .into_iter()
                .map(|(store_key, value)| (store_key.slice(prefix.len()..), value))
                .collect(),
        );
    }
    Ok(parts)
}

/// Writes the value `entry` with `parts` (from [`read_parts`]) at `destination`, replacing
/// `replaced`, and returns the new entry. A collection's parts are keyed by its name, so a
/// copy is O(N), and it takes a new version: parts another incarnation left at the
/// destination under the source's version, not yet collected, must not join the copy.
pub fn write_copy<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    destination: &[u8],
    entry: &Entry,
    parts: Vec<Vec<KvPair>>,
    replaced: Option<&Entry>,
) -> Entry {
    let copy = match &entry.value {
        Value::String(_) => entry.clone(),
        value => Entry::new(value.with_version(ctx.new_version(txn)), entry.expires_at),
    };
    for (prefix, parts) in parts_prefixes(destination, &copy.value).into_iter().zip(parts) {
        for (suffix, value) in parts {
            let mut store_key = prefix.clone();
            store_key.extend_from_slice(&suffix);
            txn.put(Bytes::from(store_key), value);
        }
    }
    write_entry(txn, destination, &copy, replaced);
    copy
}
