//! A sorted set's rank index: counts over the ascending order index, so that a rank is found
//! by reading a few hundred entries whatever the set's size, not by walking to it.
//!
//! The index is a tree of counted nodes stored level by level (layout: `keyspace::RankNode`).
//! Each level partitions the positions of the order index into consecutive intervals
//! `[lower, bound)`, the last one ending at `RANK_BOUND_END`; a node of level `k + 1` covers
//! exactly the nodes of level `k` whose intervals lie inside its own, and a node of level 1
//! the members whose positions do. Each node keeps how many members it covers and how many
//! children it has. The top level, found by one seek (levels are stored top first), is one
//! node, the root, covering every position.
//!
//! - Adding a member adds one to the count of the node containing its position at every level
//!   (one seek per level: a node is stored under its `bound`, so the first node past the
//!   position holds it). A node with more than [`MAX_CHILDREN`] children splits in two halves,
//!   its parent gaining a child; a root that splits gets a new root above it.
//! - Removing a member subtracts one along the same path. A node left without children goes:
//!   its interval joins its next sibling's (or, when it is its parent's last child, its
//!   previous sibling's), and a parent left without children goes the same way, in the same
//!   direction, so the levels stay nested.
//! - Finding rank `r` reads the root, then, level by level, the children of the node holding
//!   `r`, and finally seeks into the order index at that level-1 node's `lower`: at most
//!   `MAX_CHILDREN` entries per level, and there are 3 levels below the root for up to about
//!   16 million members.
//!
//! The index is written in the command's transaction with the members it counts, so it is as
//! consistent as they are, and it is part of the set's parts (copied by `RENAME` and `COPY`,
//! collected with the set's other parts once the set is gone).

use bytes::Bytes;

use crate::percolator::Transaction;
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::keyspace::{
    LiveSpan, RANK_BOUND_END, RANK_NODE_CHILDREN, RankNode, Version, key_after, prefix_end,
    zset_order_prefix, zset_rank_level_prefix, zset_rank_prefix,
};

/// The most children a node keeps before it splits in two.
pub const MAX_CHILDREN: u32 = 256;
/// Children per node when an index is built whole: room to grow before the first splits.
const BUILD_CHILDREN: usize = RANK_NODE_CHILDREN as usize;

/// The rank index of one incarnation of a sorted set.
pub struct RankIndex {
    prefix: Vec<u8>,
    order_prefix: Vec<u8>,
    /// [`MAX_CHILDREN`] and [`BUILD_CHILDREN`]; smaller in tests, for deep trees.
    max_children: u32,
    build_children: usize,
}

fn corrupt() -> CommandError {
    CommandError::Other("corrupt sorted set rank index".into())
}

impl RankIndex {
    pub fn new(key: &[u8], version: &Version) -> Self {
        RankIndex {
            prefix: zset_rank_prefix(key, version),
            order_prefix: zset_order_prefix(key, version, false),
            max_children: MAX_CHILDREN,
            build_children: BUILD_CHILDREN,
        }
    }

    /// The position of an ascending order-index key.
    pub fn position<'k>(&self, order_key: &'k [u8]) -> &'k [u8] {
        &order_key[self.order_prefix.len()..]
    }

    /// [`position`](Self::position), sharing the key's bytes.
    pub fn position_of(&self, order_key: &Bytes) -> Bytes {
        order_key.slice(self.order_prefix.len()..)
    }

    /// The root (the one node of the top level, stored first), if the index has any node.
    async fn root<T: Transaction>(&self, txn: &mut T) -> CommandResult<Option<RankNode>> {
        let end = prefix_end(&self.prefix);
        let mut found = txn.scan(&self.prefix, end.as_deref(), 1).await?;
        found
            .pop()
            .map(|(key, raw)| RankNode::decode(&self.prefix, &key, &raw))
            .transpose()
    }

    /// The node of `level` whose interval holds `position`.
    async fn containing<T: Transaction>(
        &self,
        txn: &mut T,
        level: u8,
        position: &[u8],
    ) -> CommandResult<RankNode> {
        let level_prefix = zset_rank_level_prefix(&self.prefix, level);
        let end = prefix_end(&level_prefix);
        let mut seek = level_prefix;
        seek.extend_from_slice(&key_after(position));
        let (key, raw) = txn
            .scan(&seek, end.as_deref(), 1)
            .await?
            .pop()
            .ok_or_else(corrupt)?;
        RankNode::decode(&self.prefix, &key, &raw)
    }

    /// The path from level 1 up to the top to the nodes holding `position`; empty if the index
    /// has no nodes.
    async fn path<T: Transaction>(&self, txn: &mut T, position: &[u8]) -> CommandResult<Vec<RankNode>> {
        let Some(root) = self.root(txn).await? else {
            return Ok(Vec::new());
        };
        let mut path = Vec::with_capacity(usize::from(root.level));
        for level in 1..root.level {
            path.push(self.containing(txn, level, position).await?);
        }
        path.push(root);
        Ok(path)
    }

    fn put<T: Transaction>(&self, txn: &mut T, node: &RankNode) {
        txn.put(node.store_key(&self.prefix), node.encode());
    }

    /// Counts the member at `position`, whose order-index entry the transaction has written.
    pub async fn insert<T: Transaction>(&self, txn: &mut T, position: &[u8]) -> CommandResult<()> {
        let mut path = self.path(txn, position).await?;
        match path.last_mut() {
            None => path.push(RankNode {
                level: 1,
                bound: Bytes::from_static(RANK_BOUND_END),
                lower: Bytes::new(),
                count: 0,
                children: 0,
                span: Some(LiveSpan::at(&Bytes::copy_from_slice(position))),
            }),
            Some(root) => {
                if let Some(span) = &mut root.span {
                    span.cover(position);
                }
            }
        }
        for node in &mut path {
            node.count += 1;
        }
        path[0].children += 1;
        for i in 0..path.len() {
            if path[i].children > self.max_children {
                let left = self.split(txn, &mut path[i]).await?;
                match path.get_mut(i + 1) {
                    Some(parent) => parent.children += 1,
                    None => {
                        let root = RankNode {
                            level: path[i].level + 1,
                            bound: Bytes::from_static(RANK_BOUND_END),
                            lower: Bytes::new(),
                            count: left.count + path[i].count,
                            children: 2,
                            span: path[i].span.take(),
                        };
                        self.put(txn, &root);
                    }
                }
            }
            self.put(txn, &path[i]);
        }
        Ok(())
    }

    /// Splits `node` in two halves: writes the left one and leaves `node` as the right one
    /// (for the caller to write). Returns the left one.
    async fn split<T: Transaction>(&self, txn: &mut T, node: &mut RankNode) -> CommandResult<RankNode> {
        let children = self.children(txn, node).await?;
        let half = children.len() / 2;
        let (bound, count) = if node.level == 1 {
            (children[half].0.clone(), half as u64)
        } else {
            (
                children[half - 1].0.clone(),
                children[..half].iter().map(|(_, count)| count).sum(),
            )
        };
        let left = RankNode {
            level: node.level,
            bound: bound.clone(),
            lower: node.lower.clone(),
            count,
            children: half as u32,
            span: None,
        };
        self.put(txn, &left);
        node.lower = bound;
        node.count -= count;
        node.children -= half as u32;
        Ok(left)
    }

    /// What `node` covers: for level 1, the positions of its members (each counting one); above,
    /// its children's bounds and counts.
    async fn children<T: Transaction>(
        &self,
        txn: &mut T,
        node: &RankNode,
    ) -> CommandResult<Vec<(Bytes, u64)>> {
        if node.level == 1 {
            let mut start = self.order_prefix.clone();
            start.extend_from_slice(&node.lower);
            let end = if node.bound == RANK_BOUND_END {
                prefix_end(&self.order_prefix)
            } else {
                let mut end = self.order_prefix.clone();
                end.extend_from_slice(&node.bound);
                Some(end)
            };
            let found = txn.scan(&start, end.as_deref(), usize::MAX).await?;
            return Ok(found
                .into_iter()
                .map(|(key, _)| (key.slice(self.order_prefix.len()..), 1))
                .collect());
        }
        let nodes = self
            .nodes_within(txn, node.level - 1, &node.lower, &node.bound)
            .await?;
        Ok(nodes.into_iter().map(|n| (n.bound, n.count)).collect())
    }

    /// The nodes of `level` inside `[lower, bound)`: those whose bound is in `(lower, bound]`.
    async fn nodes_within<T: Transaction>(
        &self,
        txn: &mut T,
        level: u8,
        lower: &[u8],
        bound: &[u8],
    ) -> CommandResult<Vec<RankNode>> {
        let level_prefix = zset_rank_level_prefix(&self.prefix, level);
        let mut start = level_prefix.clone();
        if !lower.is_empty() {
            start.extend_from_slice(&key_after(lower));
        }
        let mut end = level_prefix;
        end.extend_from_slice(&key_after(bound));
        txn.scan(&start, Some(&end), usize::MAX)
            .await?
            .into_iter()
            .map(|(key, raw)| RankNode::decode(&self.prefix, &key, &raw))
            .collect()
    }

    /// Stops counting the member at `position`, whose order-index entry the transaction has
    /// deleted.
    pub async fn remove<T: Transaction>(&self, txn: &mut T, position: &[u8]) -> CommandResult<()> {
        let mut path = self.path(txn, position).await?;
        if path.is_empty() {
            return Err(corrupt());
        }
        for node in &mut path {
            node.count = node.count.checked_sub(1).ok_or_else(corrupt)?;
        }
        path[0].children -= 1;
        // The nodes left without children, from the bottom up; the root always stays.
        let mut emptied = 0;
        while emptied < path.len() && path[emptied].children == 0 && !is_root(&path[emptied]) {
            emptied += 1;
            if let Some(parent) = path.get_mut(emptied) {
                parent.children -= 1;
            }
        }
        if emptied > 0 {
            // The highest emptied node's next sibling shares its parent unless it is the
            // parent's last child; then its previous one does (it is not the only child,
            // or the parent would have been emptied too).
            let highest = &path[emptied - 1];
            let next = highest.bound
                != path
                    .get(emptied)
                    .map_or(RANK_BOUND_END, |parent| &parent.bound[..]);
            for node in &path[..emptied] {
                self.merge_away(txn, node, next).await?;
            }
        }
        for node in &path[emptied..] {
            self.put(txn, node);
        }
        Ok(())
    }

    /// Deletes the empty `node`, its interval joining its next sibling's (`next`) or its
    /// previous one's.
    async fn merge_away<T: Transaction>(
        &self,
        txn: &mut T,
        node: &RankNode,
        next: bool,
    ) -> CommandResult<()> {
        txn.delete(node.store_key(&self.prefix));
        if next {
            let mut sibling = self.containing(txn, node.level, &node.bound).await?;
            sibling.lower = node.lower.clone();
            self.put(txn, &sibling);
        } else {
            let level_prefix = zset_rank_level_prefix(&self.prefix, node.level);
            let mut key = level_prefix;
            key.extend_from_slice(&node.lower);
            let raw = txn.get(&key).await?.ok_or_else(corrupt)?;
            let mut sibling = RankNode::decode(&self.prefix, &Bytes::from(key), &raw)?;
            txn.delete(sibling.store_key(&self.prefix));
            sibling.bound = node.bound.clone();
            self.put(txn, &sibling);
        }
        Ok(())
    }

    /// Bounds on the positions of the set's members (see [`LiveSpan`]); `None` if the index
    /// has no nodes, or a root without a span.
    pub async fn span<T: Transaction>(&self, txn: &mut T) -> CommandResult<Option<LiveSpan>> {
        Ok(self.root(txn).await?.and_then(|root| root.span))
    }

    /// Records that no member is below `first` (if given) and none above `last`: the caller
    /// has just removed every member there, from that end of the set.
    pub async fn narrow<T: Transaction>(
        &self,
        txn: &mut T,
        first: Option<&Bytes>,
        last: Option<&Bytes>,
    ) -> CommandResult<()> {
        let Some(mut root) = self.root(txn).await? else {
            return Ok(());
        };
        let Some(span) = &mut root.span else {
            return Ok(());
        };
        let mut changed = false;
        if let Some(first) = first.filter(|first| **first > span.first) {
            span.first = first.clone();
            changed = true;
        }
        if let Some(last) = last.filter(|last| **last < span.last) {
            span.last = last.clone();
            changed = true;
        }
        if changed {
            self.put(txn, &root);
        }
        Ok(())
    }

    /// The level-1 node's `lower` from which the member of ascending rank `rank` is `skip`
    /// entries on: `(lower, skip)`. `None` if the index has no nodes.
    pub async fn locate<T: Transaction>(
        &self,
        txn: &mut T,
        rank: u64,
    ) -> CommandResult<Option<(Bytes, u64)>> {
        let Some(root) = self.root(txn).await? else {
            return Ok(None);
        };
        if rank >= root.count {
            return Err(corrupt());
        }
        // The root covers every position: the descent starts among its children.
        let (mut lower, mut bound) = (root.lower.clone(), root.bound.clone());
        let mut left = rank;
        for level in (1..root.level).rev() {
            let nodes = self.nodes_within(txn, level, &lower, &bound).await?;
            let mut chosen = None;
            for node in nodes {
                if left < node.count {
                    chosen = Some(node);
                    break;
                }
                left -= node.count;
            }
            let node = chosen.ok_or_else(corrupt)?;
            (lower, bound) = (node.lower, node.bound);
        }
        Ok(Some((past_removed(&root, lower), left)))
    }

    /// How many members sit before `position`: the counts of the nodes before it at each level,
    /// then the members before it in its level-1 node. `None` if the index has no nodes.
    pub async fn rank_of<T: Transaction>(&self, txn: &mut T, position: &[u8]) -> CommandResult<Option<u64>> {
        let Some(root) = self.root(txn).await? else {
            return Ok(None);
        };
        let (mut lower, mut bound) = (root.lower.clone(), root.bound.clone());
        let mut before = 0;
        for level in (1..root.level).rev() {
            let nodes = self.nodes_within(txn, level, &lower, &bound).await?;
            let node = nodes
                .into_iter()
                .find(|node| {
                    let holds = position < &node.bound[..];
                    if !holds {
                        before += node.count;
                    }
                    holds
                })
                .ok_or_else(corrupt)?;
            (lower, bound) = (node.lower, node.bound);
        }
        let mut start = self.order_prefix.clone();
        start.extend_from_slice(&past_removed(&root, lower));
        let mut end = self.order_prefix.clone();
        end.extend_from_slice(position);
        before += txn.scan(&start, Some(&end), usize::MAX).await?.len() as u64;
        Ok(Some(before))
    }

    /// Writes the index of a new set whose members' positions are `positions`, ascending.
    pub fn build<T: Transaction>(&self, txn: &mut T, positions: &[Bytes]) {
        if positions.is_empty() {
            return;
        }
        let span = LiveSpan {
            first: positions[0].clone(),
            last: positions[positions.len() - 1].clone(),
        };
        let mut level = 1;
        let chunk = self.build_children;
        let mut nodes = chunk_nodes(positions.iter().map(|p| (p.clone(), 1)).collect(), chunk, true);
        loop {
            let top = nodes.len() == 1;
            for (bound, lower, count, children) in &nodes {
                let node = RankNode {
                    level,
                    bound: bound.clone(),
                    lower: lower.clone(),
                    count: *count,
                    children: *children,
                    span: top.then(|| span.clone()),
                };
                self.put(txn, &node);
            }
            if top {
                return;
            }
            level += 1;
            let below: Vec<(Bytes, u64)> = nodes
                .into_iter()
                .map(|(bound, _, count, _)| (bound, count))
                .collect();
            nodes = chunk_nodes(below, chunk, false);
        }
    }

    /// The level of the index's top, if it has nodes (tests check the tree's shape).
    #[cfg(test)]
    pub async fn levels<T: Transaction>(&self, txn: &mut T) -> CommandResult<u8> {
        Ok(self.root(txn).await?.map_or(0, |n| n.level))
    }

    /// Every node, by level from the top (tests check the invariants).
    #[cfg(test)]
    pub async fn all_nodes<T: Transaction>(&self, txn: &mut T) -> CommandResult<Vec<RankNode>> {
        let end = prefix_end(&self.prefix);
        let found = txn.scan(&self.prefix, end.as_deref(), usize::MAX).await?;
        found
            .into_iter()
            .map(|(key, raw)| RankNode::decode(&self.prefix, &key, &raw))
            .collect()
    }
}

/// `lower`, or the root's span's `first` if that is past it: no member lies between them.
fn past_removed(root: &RankNode, lower: Bytes) -> Bytes {
    match &root.span {
        Some(span) if span.first > lower => span.first.clone(),
        _ => lower,
    }
}

/// Whether `node` is the root: the one node of the top level, covering every position.
fn is_root(node: &RankNode) -> bool {
    node.lower.is_empty() && node.bound == RANK_BOUND_END
}

/// Groups `items` (positions of members for level 1, else the bounds and counts of the
/// level below) into nodes of `chunk` children: `(bound, lower, count, children)`. A level-1
/// node ends where the next one's first member is; a higher one at its last child's bound.
fn chunk_nodes(items: Vec<(Bytes, u64)>, chunk: usize, members: bool) -> Vec<(Bytes, Bytes, u64, u32)> {
    let chunks: Vec<&[(Bytes, u64)]> = items.chunks(chunk).collect();
    let mut nodes = Vec::with_capacity(chunks.len());
    let mut lower = Bytes::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let bound = match chunks.get(i + 1) {
            None => Bytes::from_static(RANK_BOUND_END),
            Some(next) if members => next[0].0.clone(),
            Some(_) => chunk[chunk.len() - 1].0.clone(),
        };
        let count = chunk.iter().map(|(_, count)| count).sum();
        nodes.push((bound.clone(), lower, count, chunk.len() as u32));
        lower = bound;
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::super::test_txn::MapTxn;
    use super::*;
    use crate::scheduler::tso::TimeStamp;

    const VERSION: Version = Version {
        created_at: TimeStamp::new(7),
        seq: 0,
    };

    fn index(max_children: u32, build_children: usize) -> RankIndex {
        RankIndex {
            max_children,
            build_children,
            ..RankIndex::new(b"z", &VERSION)
        }
    }

    /// A position: an order-index key's tail, here any 8 bytes.
    fn position(n: u64) -> Bytes {
        Bytes::copy_from_slice(&n.to_be_bytes())
    }

    fn order_key(index: &RankIndex, n: u64) -> Bytes {
        let mut key = index.order_prefix.clone();
        key.extend_from_slice(&position(n));
        Bytes::from(key)
    }

    async fn insert(index: &RankIndex, txn: &mut MapTxn, n: u64) {
        txn.put(order_key(index, n), Bytes::new());
        index.insert(txn, &position(n)).await.unwrap();
    }

    async fn remove(index: &RankIndex, txn: &mut MapTxn, n: u64) {
        txn.delete(order_key(index, n));
        index.remove(txn, &position(n)).await.unwrap();
    }

    /// Checks every rule of the module docs against the members `model` (ascending).
    async fn check(index: &RankIndex, txn: &mut MapTxn, model: &[u64]) {
        let nodes = index.all_nodes(txn).await.unwrap();
        let top = index.levels(txn).await.unwrap();
        let at = |level: u8| -> Vec<&RankNode> { nodes.iter().filter(|n| n.level == level).collect() };
        let root = at(top);
        assert_eq!(root.len(), 1, "one root");
        assert!(is_root(root[0]));
        assert_eq!(root[0].count, model.len() as u64);
        let span = root[0].span.as_ref().expect("the root keeps the live span");
        if let (Some(min), Some(max)) = (model.first(), model.last()) {
            assert!(span.first <= position(*min), "{span:?} holds {min}");
            assert!(position(*max) <= span.last, "{span:?} holds {max}");
        }
        for level in 1..=top {
            let nodes = at(level);
            let mut lower = Bytes::new();
            for node in &nodes {
                assert_eq!(node.lower, lower, "level {level} partitions the positions");
                lower = node.bound.clone();
                assert!(node.children <= index.max_children);
                if !is_root(node) {
                    assert!(node.children > 0, "no empty node but the root");
                    assert_eq!(node.span, None, "only the root has a span");
                }
                let inside = |p: &[u8]| node.lower[..] <= *p && *p < node.bound[..];
                if level == 1 {
                    let members = model.iter().filter(|n| inside(&position(**n))).count() as u64;
                    assert_eq!((node.count, u64::from(node.children)), (members, members));
                } else {
                    let children: Vec<&RankNode> = at(level - 1)
                        .into_iter()
                        .filter(|c| node.lower < c.bound && c.bound <= node.bound)
                        .collect();
                    assert_eq!(node.children as usize, children.len());
                    assert_eq!(node.count, children.iter().map(|c| c.count).sum::<u64>());
                    assert_eq!(children[0].lower, node.lower, "children nest in their parent");
                }
            }
            assert_eq!(&lower[..], RANK_BOUND_END);
        }
        for (rank, n) in model.iter().enumerate() {
            let (lower, skip) = index.locate(txn, rank as u64).await.unwrap().unwrap();
            let mut start = index.order_prefix.clone();
            start.extend_from_slice(&lower);
            let found = txn.scan(&start, None, skip as usize + 1).await.unwrap();
            assert_eq!(found.last().unwrap().0, order_key(index, *n), "rank {rank}");
            assert_eq!(
                index.rank_of(txn, &position(*n)).await.unwrap(),
                Some(rank as u64)
            );
        }
    }

    #[tokio::test]
    async fn inserts_and_removes_keep_every_count_and_find_every_rank() {
        let index = index(4, 3);
        let mut txn = MapTxn::default();
        let mut rng = fastrand::Rng::with_seed(11);
        let mut model: Vec<u64> = Vec::new();
        for round in 0..300u32 {
            let n = rng.u64(..1_000);
            if let Err(at) = model.binary_search(&n) {
                model.insert(at, n);
                insert(&index, &mut txn, n).await;
            }
            if round.is_multiple_of(25) {
                check(&index, &mut txn, &model).await;
            }
        }
        check(&index, &mut txn, &model).await;
        assert!(index.levels(&mut txn).await.unwrap() >= 4, "a deep tree");
        // Removing in random order empties nodes everywhere: first and last children,
        // only children (and their parents), the first and last nodes of each level.
        while !model.is_empty() {
            let n = model.remove(rng.usize(..model.len()));
            remove(&index, &mut txn, n).await;
            if model.len().is_multiple_of(20) && !model.is_empty() {
                check(&index, &mut txn, &model).await;
            }
        }
        for n in [5, 3, 9] {
            model.push(n);
            insert(&index, &mut txn, n).await;
        }
        model.sort();
        check(&index, &mut txn, &model).await;
    }

    #[tokio::test]
    async fn a_queue_pattern_leaves_no_empty_nodes_behind() {
        // Add at the top, take from the bottom: nodes empty out on the left over and over.
        let index = index(4, 3);
        let mut txn = MapTxn::default();
        let mut model = std::collections::VecDeque::new();
        for n in 0..400u64 {
            model.push_back(n);
            insert(&index, &mut txn, n).await;
            if model.len() > 30 {
                let oldest = model.pop_front().unwrap();
                remove(&index, &mut txn, oldest).await;
            }
        }
        let model: Vec<u64> = model.into_iter().collect();
        check(&index, &mut txn, &model).await;
        let nodes = index.all_nodes(&mut txn).await.unwrap();
        assert!(
            nodes.len() < 30,
            "nodes track the members, not the history: {}",
            nodes.len()
        );
    }

    #[tokio::test]
    async fn a_built_index_is_the_same_tree_shape_rules() {
        for count in [1u64, 2, 3, 4, 10, 37, 200] {
            let index = index(4, 3);
            let mut txn = MapTxn::default();
            let model: Vec<u64> = (0..count).map(|n| n * 3).collect();
            for n in &model {
                txn.put(order_key(&index, *n), Bytes::new());
            }
            let positions: Vec<Bytes> = model.iter().map(|n| position(*n)).collect();
            index.build(&mut txn, &positions);
            check(&index, &mut txn, &model).await;
            // And it goes on growing and shrinking by the same rules.
            insert(&index, &mut txn, 1).await;
            remove(&index, &mut txn, 0).await;
            let mut model: Vec<u64> = model.into_iter().filter(|n| *n != 0).collect();
            model.insert(0, 1);
            check(&index, &mut txn, &model).await;
        }
    }

    #[tokio::test]
    async fn the_full_size_fanout_reads_a_bounded_number_of_nodes() {
        let index = RankIndex::new(b"z", &VERSION);
        let mut txn = MapTxn::default();
        let model: Vec<u64> = (0..100_000).collect();
        let positions: Vec<Bytes> = model.iter().map(|n| position(*n)).collect();
        index.build(&mut txn, &positions);
        assert_eq!(index.levels(&mut txn).await.unwrap(), 3);
        let nodes = index.all_nodes(&mut txn).await.unwrap();
        let widest = nodes.iter().map(|n| n.children).max().unwrap();
        assert!(widest <= MAX_CHILDREN, "{widest}");
        let (lower, skip) = index.locate(&mut txn, 54_321).await.unwrap().unwrap();
        assert_eq!(u64::from_be_bytes(lower[..].try_into().unwrap()) + skip, 54_321);
    }
}
