//! The timestamp oracle.
//!
//! A [`TimeStamp`] is `physical_ms << 18 | logical`. The oracle hands out timestamps that are
//! strictly increasing: a caller always gets a timestamp greater than every timestamp handed
//! out before its request arrived, whatever the wall clock does and across restarts.
//!
//! **How it survives restarts.** The oracle persists an upper bound on the physical part of
//! everything it will issue, a window (`window_ms`, 3 s by default) ahead of the clock. It
//! issues a timestamp only while its physical part is below the persisted bound, extending the
//! bound (one synced write; with the scheduler replicated, one raft proposal) when it gets
//! there. On start it begins at the old bound, so even a clock that went backwards cannot make
//! it repeat itself. The scheduler extends the bound ahead of need, once less than half the
//! window is left, and the oracle's lock is never held while a bound is persisted: callers on
//! tokio workers ([`Tso::try_get_timestamps`]) must never wait for a raft round trip whose
//! messages those same workers carry.
//!
//! **Logical overflow.** More than 2^18 timestamps in one millisecond borrow the next
//! millisecond, the same way a clock that stands still is stepped past.
//!
//! **Batching.** [`TsoClient`] collects the requests that arrive while one call is in flight and
//! asks for all of them in the next call, handing out the consecutive range it gets back
//! (leader/follower, without a task of its own: see [`TsoClient`]).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, MutexGuard};
use tokio::sync::oneshot;

use super::SCHEDULER_PREFIX;
use crate::storage::{Cf, Engine, StorageError, WriteBatch, WriteOptions};

/// Bits of the logical counter.
pub const LOGICAL_BITS: u32 = 18;
/// Timestamps one millisecond can hold.
pub const MAX_LOGICAL: u64 = 1 << LOGICAL_BITS;

/// A transaction timestamp: physical milliseconds since the Unix epoch, shifted left by
/// [`LOGICAL_BITS`], plus a logical counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeStamp(u64);

impl TimeStamp {
    pub const ZERO: TimeStamp = TimeStamp(0);
    pub const MAX: TimeStamp = TimeStamp(u64::MAX);

    pub const fn new(raw: u64) -> Self {
        TimeStamp(raw)
    }

    pub fn compose(physical_ms: u64, logical: u64) -> Self {
        assert!(
            logical < MAX_LOGICAL,
            "logical part {logical} overflows {LOGICAL_BITS} bits"
        );
        TimeStamp(physical_ms << LOGICAL_BITS | logical)
    }

    pub const fn into_inner(self) -> u64 {
        self.0
    }

    /// Milliseconds since the Unix epoch. Lock TTLs are compared on this part only.
    pub const fn physical(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    pub const fn logical(self) -> u64 {
        self.0 & (MAX_LOGICAL - 1)
    }

    /// The next timestamp (saturating at `MAX`).
    pub const fn next(self) -> Self {
        TimeStamp(self.0.saturating_add(1))
    }

    /// The previous timestamp (saturating at `ZERO`).
    pub const fn prev(self) -> Self {
        TimeStamp(self.0.saturating_sub(1))
    }
}

impl fmt::Display for TimeStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TsoError {
    #[error("a timestamp request must ask for at least one timestamp")]
    ZeroCount,
    #[error("a timestamp request may ask for at most {MAX_LOGICAL} timestamps, not {0}")]
    TooMany(u32),
    #[error("persisting the timestamp window: {0}")]
    Storage(#[from] StorageError),
    #[error("the timestamp oracle is gone")]
    Closed,
    /// The scheduler could not replicate or serve the request (not its leader, stopped...).
    #[error("scheduler: {0}")]
    Scheduler(String),
}

/// Where the oracle keeps its persisted bound.
pub trait TsoStore: Send + Sync + 'static {
    fn load_bound_ms(&self) -> Result<Option<u64>, TsoError>;
    /// Must be durable when it returns.
    fn save_bound_ms(&self, bound_ms: u64) -> Result<(), TsoError>;
}

/// The store key of the persisted bound.
const BOUND_KEY: &[u8] = &[SCHEDULER_PREFIX, b't', b's', b'o'];

/// Keeps the bound in an engine's `raft` column family.
pub struct EngineTsoStore<E: Engine>(pub E);

impl<E: Engine> TsoStore for EngineTsoStore<E> {
    fn load_bound_ms(&self) -> Result<Option<u64>, TsoError> {
        let Some(raw) = self.0.get(Cf::Raft, BOUND_KEY)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = raw.as_slice().try_into().map_err(|_| {
            TsoError::Storage(StorageError::Io {
                path: "tso bound".into(),
                source: std::io::Error::other(format!("{} bytes, expected 8", raw.len())),
            })
        })?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    fn save_bound_ms(&self, bound_ms: u64) -> Result<(), TsoError> {
        let mut batch = WriteBatch::new();
        batch.put(Cf::Raft, BOUND_KEY, bound_ms.to_be_bytes());
        Ok(self.0.write(&batch, WriteOptions::SYNC)?)
    }
}

/// Milliseconds since the Unix epoch.
pub type Clock = Box<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Box::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    })
}

/// The oracle. See the module docs.
pub struct Tso {
    state: Mutex<TsoState>,
    /// Signalled when an extension of the bound ends (see [`TsoState::extending`]).
    extended: Condvar,
    store: Box<dyn TsoStore>,
    clock: Clock,
    window_ms: u64,
}

struct TsoState {
    /// Physical part of the last timestamp issued.
    physical: u64,
    /// Logical part of the last timestamp issued.
    logical: u64,
    /// Persisted bound. Invariant: `physical < bound` whenever a timestamp is issued.
    bound: u64,
    /// A caller is persisting a new bound. It does so without the lock held: with the
    /// scheduler replicated, persisting is a raft proposal that needs the network, whose
    /// tasks run on the same tokio workers that call [`Tso::try_get_timestamps`]; a worker
    /// waiting on this lock meanwhile could stall the very messages the proposal waits for.
    extending: bool,
    /// A caller claimed the next extension ahead of need ([`Tso::claim_extension`]).
    ahead_claimed: bool,
}

impl Tso {
    pub const DEFAULT_WINDOW_MS: u64 = 3_000;

    /// Starts the oracle above everything it may have issued before.
    pub fn open(store: impl TsoStore, clock: Clock, window_ms: u64) -> Result<Self, TsoError> {
        assert!(window_ms > 0, "the persisted window must be positive");
        let previous_bound = store.load_bound_ms()?.unwrap_or(0);
        let physical = clock().max(previous_bound);
        let bound = physical + window_ms;
        store.save_bound_ms(bound)?;
        Ok(Tso {
            state: Mutex::new(TsoState {
                physical,
                logical: 0,
                bound,
                extending: false,
                ahead_claimed: false,
            }),
            extended: Condvar::new(),
            store: Box::new(store),
            clock,
            window_ms,
        })
    }

    /// Reserves `count` consecutive timestamps and returns the last; the first is
    /// `last - count + 1`.
    pub fn get_timestamps(&self, count: u32) -> Result<TimeStamp, TsoError> {
        Ok(self.issue(count, true)?.expect("issuing may persist"))
    }

    /// [`Tso::get_timestamps`] without waiting for storage: `None` when the persisted bound
    /// must be extended first (then call `get_timestamps` where blocking is allowed). Never
    /// waits for a persist in progress either: the lock is only ever held for arithmetic.
    pub fn try_get_timestamps(&self, count: u32) -> Result<Option<TimeStamp>, TsoError> {
        self.issue(count, false)
    }

    fn issue(&self, count: u32, may_persist: bool) -> Result<Option<TimeStamp>, TsoError> {
        if count == 0 {
            return Err(TsoError::ZeroCount);
        }
        if u64::from(count) >= MAX_LOGICAL {
            return Err(TsoError::TooMany(count));
        }
        let count = u64::from(count);
        let mut state = self.state.lock();
        loop {
            let now = (self.clock)();
            let (mut physical, mut logical) = (state.physical, state.logical);
            if now > physical {
                physical = now;
                logical = 0;
            }
            if logical + count >= MAX_LOGICAL {
                // This millisecond is used up: borrow the next one.
                physical += 1;
                logical = 0;
            }
            if physical >= state.bound {
                if !may_persist {
                    return Ok(None);
                }
                state = self.extend(state, physical + self.window_ms)?;
                continue;
            }
            logical += count;
            state.physical = physical;
            state.logical = logical;
            assert!(state.physical < state.bound && state.logical < MAX_LOGICAL);
            return Ok(Some(TimeStamp::compose(state.physical, state.logical)));
        }
    }

    /// Persists `bound` (unless a larger one is), with the lock released meanwhile; one
    /// extension at a time, later callers wait for it. Returns the lock, held again.
    fn extend<'a>(
        &'a self,
        mut state: MutexGuard<'a, TsoState>,
        bound: u64,
    ) -> Result<MutexGuard<'a, TsoState>, TsoError> {
        while state.extending {
            self.extended.wait(&mut state);
        }
        if state.bound >= bound {
            return Ok(state);
        }
        state.extending = true;
        let saved = MutexGuard::unlocked(&mut state, || self.store.save_bound_ms(bound));
        state.extending = false;
        self.extended.notify_all();
        saved?;
        state.bound = state.bound.max(bound);
        Ok(state)
    }

    /// Where the next bound would start from, and whether the current one runs low: less
    /// than half the window is left.
    fn runs_low(&self, state: &TsoState) -> (u64, bool) {
        let from = (self.clock)().max(state.physical);
        (from, state.bound <= from + self.window_ms / 2)
    }

    /// Whether the caller should run [`Tso::extend_ahead`] now: the bound runs low and no
    /// extension is running or already claimed. True once per extension, so that callers on
    /// the fast path do not each start one.
    pub fn claim_extension(&self) -> bool {
        let mut state = self.state.lock();
        if state.extending || state.ahead_claimed || !self.runs_low(&state).1 {
            return false;
        }
        state.ahead_claimed = true;
        true
    }

    /// Extends the persisted bound ahead of need when it runs low, so that callers on the
    /// fast path ([`Tso::try_get_timestamps`]) rarely find it used up, and gives up a claim
    /// of [`Tso::claim_extension`]. Blocks for the persist: call it where blocking is allowed.
    pub fn extend_ahead(&self) -> Result<(), TsoError> {
        let mut state = self.state.lock();
        state.ahead_claimed = false;
        let (from, low) = self.runs_low(&state);
        if state.extending || !low {
            return Ok(());
        }
        self.extend(state, from + self.window_ms).map(drop)
    }

    /// Makes sure no timestamp at or below `ts` is ever issued again.
    pub fn advance_to(&self, ts: TimeStamp) -> Result<(), TsoError> {
        let mut state = self.state.lock();
        if TimeStamp::compose(state.physical, state.logical) >= ts {
            return Ok(());
        }
        if ts.physical() >= state.bound {
            state = self.extend(state, ts.physical() + self.window_ms)?;
        }
        if TimeStamp::compose(state.physical, state.logical) < ts {
            state.physical = ts.physical();
            state.logical = ts.logical();
        }
        Ok(())
    }
}

/// Something that hands out timestamps in ranges: the oracle itself in-process, an RPC client
/// of a remote scheduler later.
pub trait TsoProvider: Send + Sync + 'static {
    /// Reserves `count` consecutive timestamps and returns the last.
    fn request_timestamps(&self, count: u32) -> impl Future<Output = Result<TimeStamp, TsoError>> + Send;

    /// The same without waiting, when the provider can answer at once (an oracle in this
    /// process with its window open); `None` sends the caller to [`request_timestamps`].
    ///
    /// [`request_timestamps`]: TsoProvider::request_timestamps
    fn try_request_timestamps(&self, _count: u32) -> Option<TimeStamp> {
        None
    }
}

impl TsoProvider for Tso {
    async fn request_timestamps(&self, count: u32) -> Result<TimeStamp, TsoError> {
        Tso::get_timestamps(self, count)
    }

    fn try_request_timestamps(&self, count: u32) -> Option<TimeStamp> {
        self.try_get_timestamps(count).ok().flatten()
    }
}

impl<P: TsoProvider> TsoProvider for Arc<P> {
    fn request_timestamps(&self, count: u32) -> impl Future<Output = Result<TimeStamp, TsoError>> + Send {
        (**self).request_timestamps(count)
    }

    fn try_request_timestamps(&self, count: u32) -> Option<TimeStamp> {
        (**self).try_request_timestamps(count)
    }
}

/// What a waiting caller is handed: its timestamp, or the job of fetching the next batch.
enum Handoff {
    Timestamp(Result<TimeStamp, TsoErrorKind>),
    Lead,
}

type Fetch =
    Arc<dyn Fn(u32) -> Pin<Box<dyn Future<Output = Result<TimeStamp, TsoError>> + Send>> + Send + Sync>;

struct Batcher {
    fetch: Fetch,
    /// The provider's synchronous path ([`TsoProvider::try_request_timestamps`]).
    try_fetch: Arc<dyn Fn(u32) -> Option<TimeStamp> + Send + Sync>,
    state: Mutex<BatchState>,
}

#[derive(Default)]
struct BatchState {
    /// Whether some caller is fetching a batch right now. Invariant: when false, `waiting` is
    /// empty.
    leading: bool,
    /// Callers waiting for the next batch, in arrival order.
    waiting: VecDeque<oneshot::Sender<Handoff>>,
}

/// Hands out single timestamps, batching concurrent requests into one provider call. Clones
/// share the batcher.
///
/// There is no batching task: the first caller to find no fetch in flight becomes the leader
/// and fetches; callers arriving meanwhile queue. When its fetch returns, the leader hands
/// every queued caller (queued before it fetched) a timestamp, and passes the lead to the
/// first caller who queued during the fetch, whose own fetch then serves the rest. An idle
/// client costs one provider call per request and no thread switch; a busy one, one call per
/// round.
#[derive(Clone)]
pub struct TsoClient {
    batcher: Arc<Batcher>,
}

/// A cloneable summary of a [`TsoError`], for fanning one failure out to a batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("timestamp oracle: {0}")]
pub struct TsoErrorKind(pub String);

impl TsoClient {
    pub fn start(provider: impl TsoProvider) -> Self {
        let provider = Arc::new(provider);
        let try_provider = provider.clone();
        let fetch: Fetch = Arc::new(move |count| {
            let provider = provider.clone();
            Box::pin(async move { provider.request_timestamps(count).await })
        });
        TsoClient {
            batcher: Arc::new(Batcher {
                fetch,
                try_fetch: Arc::new(move |count| try_provider.try_request_timestamps(count)),
                state: Mutex::new(BatchState::default()),
            }),
        }
    }

    /// One timestamp, greater than any handed out before this call.
    pub async fn get_timestamp(&self) -> Result<TimeStamp, TsoErrorKind> {
        // A provider that can answer at once needs no batching. Whatever it returns is above
        // everything it returned before, batches included, so order holds.
        if let Some(ts) = (self.batcher.try_fetch)(1) {
            return Ok(ts);
        }
        let queued = {
            let mut state = self.batcher.state.lock();
            if state.leading {
                let (tx, rx) = oneshot::channel();
                state.waiting.push_back(tx);
                Some(rx)
            } else {
                state.leading = true;
                None
            }
        };
        if let Some(rx) = queued {
            let mut waiting = Waiting {
                batcher: &self.batcher,
                rx,
            };
            match (&mut waiting.rx).await {
                Ok(Handoff::Timestamp(result)) => return result,
                Ok(Handoff::Lead) => {}
                Err(_) => return Err(TsoErrorKind("the timestamp batch was abandoned".into())),
            }
        }
        let mut lead = Lead {
            batcher: &self.batcher,
            followers: std::mem::take(&mut self.batcher.state.lock().waiting),
        };
        let count = lead.followers.len() as u32 + 1;
        let result = (self.batcher.fetch)(count)
            .await
            .map_err(|e| TsoErrorKind(e.to_string()));
        let mine = result
            .clone()
            .map(|last| TimeStamp::new(last.into_inner() - u64::from(count) + 1));
        for (i, follower) in lead.followers.drain(..).enumerate() {
            let theirs = mine
                .clone()
                .map(|first| TimeStamp::new(first.into_inner() + 1 + i as u64));
            let _ = follower.send(Handoff::Timestamp(theirs));
        }
        mine
    }
}

/// The lead of one fetch. Dropping it (normally, or when the leader's future is cancelled)
/// fails any follower not yet served and passes the lead on, so no caller waits forever.
struct Lead<'a> {
    batcher: &'a Batcher,
    followers: VecDeque<oneshot::Sender<Handoff>>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        for follower in self.followers.drain(..) {
            let _ = follower.send(Handoff::Timestamp(Err(TsoErrorKind(
                "the timestamp fetch was cancelled".into(),
            ))));
        }
        pass_lead(self.batcher);
    }
}

/// Hands the lead to the first waiter still listening, or frees it when nobody waits.
fn pass_lead(batcher: &Batcher) {
    let mut state = batcher.state.lock();
    while let Some(next) = state.waiting.pop_front() {
        if next.send(Handoff::Lead).is_ok() {
            return;
        }
    }
    state.leading = false;
}

/// A caller's place in the queue. If the caller's future is dropped after the lead was sent to
/// it but before it ran, dropping this passes the lead on instead of losing it (which would
/// leave every later caller queued behind a leader that does not exist).
struct Waiting<'a> {
    batcher: &'a Batcher,
    rx: oneshot::Receiver<Handoff>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        // After `close`, no send can succeed, so what `try_recv` sees is final.
        self.rx.close();
        if let Ok(Handoff::Lead) = self.rx.try_recv() {
            pass_lead(self.batcher);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::storage::MemoryEngine;

    fn fixed_clock(ms: Arc<AtomicU64>) -> Clock {
        Box::new(move || ms.load(Ordering::SeqCst))
    }

    #[test]
    fn timestamp_parts() {
        let ts = TimeStamp::compose(1_700_000_000_000, 5);
        assert_eq!(ts.physical(), 1_700_000_000_000);
        assert_eq!(ts.logical(), 5);
        assert!(TimeStamp::compose(1, 0) > TimeStamp::compose(0, MAX_LOGICAL - 1));
    }

    #[test]
    fn zero_and_oversized_requests_are_errors() {
        let tso = Tso::open(EngineTsoStore(MemoryEngine::new()), system_clock(), 3000).unwrap();
        assert!(matches!(tso.get_timestamps(0), Err(TsoError::ZeroCount)));
        assert!(matches!(tso.get_timestamps(1 << 18), Err(TsoError::TooMany(_))));
    }

    #[test]
    fn strictly_increasing_under_ten_threads() {
        let tso = Arc::new(Tso::open(EngineTsoStore(MemoryEngine::new()), system_clock(), 3000).unwrap());
        let threads: Vec<_> = (0..10)
            .map(|_| {
                let tso = tso.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for _ in 0..300 {
                        let last = tso.get_timestamps(10).unwrap();
                        mine.push(last);
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::new();
        for thread in threads {
            let mine = thread.join().unwrap();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "each caller sees increasing timestamps"
            );
            all.extend(mine);
        }
        // Every range of 10 is disjoint from every other.
        all.sort();
        assert!(
            all.windows(2)
                .all(|w| w[1].into_inner() - w[0].into_inner() >= 10)
        );
    }

    #[test]
    fn a_stopped_clock_and_logical_overflow_still_increase() {
        let now = Arc::new(AtomicU64::new(1_000));
        let tso = Tso::open(
            EngineTsoStore(MemoryEngine::new()),
            fixed_clock(now.clone()),
            3000,
        )
        .unwrap();
        let mut last = TimeStamp::ZERO;
        for _ in 0..5 {
            let ts = tso.get_timestamps(100_000).unwrap();
            assert!(ts > last);
            last = ts;
        }
        assert!(last.physical() > 1_000, "overflow borrowed later milliseconds");
    }

    #[test]
    fn restart_starts_above_everything_issued_even_if_the_clock_went_back() {
        let engine = MemoryEngine::new();
        let now = Arc::new(AtomicU64::new(50_000));
        let tso = Tso::open(EngineTsoStore(engine.clone()), fixed_clock(now.clone()), 3000).unwrap();
        let mut issued = TimeStamp::ZERO;
        for step in 0..20 {
            now.store(50_000 + step * 1_000, Ordering::SeqCst);
            issued = tso.get_timestamps(1).unwrap();
        }
        drop(tso);
        now.store(10_000, Ordering::SeqCst); // the clock jumped back
        let tso = Tso::open(EngineTsoStore(engine), fixed_clock(now), 3000).unwrap();
        let after = tso.get_timestamps(1).unwrap();
        assert!(after > issued, "{after} must exceed {issued}");
    }

    #[test]
    fn advance_to_skips_past_a_given_timestamp() {
        let now = Arc::new(AtomicU64::new(1_000));
        let tso = Tso::open(EngineTsoStore(MemoryEngine::new()), fixed_clock(now), 3000).unwrap();
        let far = TimeStamp::compose(90_000, 7);
        tso.advance_to(far).unwrap();
        assert!(tso.get_timestamps(1).unwrap() > far);
    }

    /// A store whose saves wait until the test lets them through, like a replicated bound
    /// waiting for its raft round trip.
    struct GatedStore {
        bound: Mutex<Option<u64>>,
        entered: std::sync::mpsc::SyncSender<()>,
        gate: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl TsoStore for Arc<GatedStore> {
        fn load_bound_ms(&self) -> Result<Option<u64>, TsoError> {
            Ok(*self.bound.lock())
        }
        fn save_bound_ms(&self, bound_ms: u64) -> Result<(), TsoError> {
            if self.bound.lock().is_some() {
                let _ = self.entered.send(());
                let _ = self.gate.lock().recv();
            }
            *self.bound.lock() = Some(bound_ms);
            Ok(())
        }
    }

    #[test]
    fn a_persist_in_progress_never_blocks_the_fast_path() {
        let (entered_tx, entered) = std::sync::mpsc::sync_channel(8);
        let (open, gate) = std::sync::mpsc::channel();
        let store = Arc::new(GatedStore {
            bound: Mutex::new(None),
            entered: entered_tx,
            gate: Mutex::new(gate),
        });
        let now = Arc::new(AtomicU64::new(1_000));
        let tso = Arc::new(Tso::open(store, fixed_clock(now.clone()), 3000).unwrap());
        let before = tso.get_timestamps(1).unwrap();
        // The window is used up; the next caller that may persist extends it and hangs there.
        now.store(5_000, Ordering::SeqCst);
        let extender = {
            let tso = tso.clone();
            std::thread::spawn(move || tso.get_timestamps(1).unwrap())
        };
        entered.recv().unwrap();
        // Meanwhile the fast path answers at once (no timestamp: the bound is not yet saved),
        // and so do the window checks.
        let (answer, answered) = std::sync::mpsc::channel();
        {
            let tso = tso.clone();
            std::thread::spawn(move || {
                let fast = tso.try_get_timestamps(1).unwrap();
                let wants = tso.claim_extension();
                tso.extend_ahead().unwrap();
                let _ = answer.send((fast, wants));
            });
        }
        let (fast, wants) = answered
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the fast path waited for the persist");
        assert_eq!(fast, None);
        assert!(!wants, "an extension is already running");
        open.send(()).unwrap();
        let extended = extender.join().unwrap();
        assert!(extended > before);
        assert!(tso.try_get_timestamps(1).unwrap().unwrap() > extended);
    }

    #[test]
    fn the_window_is_extended_ahead_of_need() {
        let now = Arc::new(AtomicU64::new(1_000));
        let tso = Tso::open(
            EngineTsoStore(MemoryEngine::new()),
            fixed_clock(now.clone()),
            3000,
        )
        .unwrap();
        assert!(!tso.claim_extension(), "a fresh window is full");
        now.store(2_600, Ordering::SeqCst);
        assert!(tso.claim_extension(), "less than half the window is left");
        assert!(!tso.claim_extension(), "claimed once");
        tso.extend_ahead().unwrap();
        assert!(!tso.claim_extension(), "extended");
        // Past the old bound (4,000), the fast path still answers.
        now.store(4_500, Ordering::SeqCst);
        assert!(tso.try_get_timestamps(1).unwrap().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn client_batches_concurrent_requests_into_distinct_timestamps() {
        struct Counting {
            tso: Tso,
            calls: AtomicU64,
        }
        impl TsoProvider for Counting {
            async fn request_timestamps(&self, count: u32) -> Result<TimeStamp, TsoError> {
                self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                self.tso.get_timestamps(count)
            }
        }
        let provider = Arc::new(Counting {
            tso: Tso::open(EngineTsoStore(MemoryEngine::new()), system_clock(), 3000).unwrap(),
            calls: AtomicU64::new(0),
        });
        let client = TsoClient::start(provider.clone());
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..20 {
                    got.push(client.get_timestamp().await.unwrap());
                }
                got
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            let got = task.await.unwrap();
            assert!(got.windows(2).all(|w| w[0] < w[1]));
            all.extend(got);
        }
        let total = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), total, "no timestamp handed out twice");
        let calls = provider.calls.load(Ordering::SeqCst);
        assert!(
            calls < total as u64,
            "{calls} provider calls for {total} timestamps: no batching"
        );
    }
    #[tokio::test]
    async fn a_dropped_waiter_never_takes_the_lead_with_it() {
        struct Gated {
            tso: Tso,
            gate: tokio::sync::Semaphore,
        }
        impl TsoProvider for Gated {
            async fn request_timestamps(&self, count: u32) -> Result<TimeStamp, TsoError> {
                self.gate.acquire().await.unwrap().forget();
                self.tso.get_timestamps(count)
            }
        }
        let provider = Arc::new(Gated {
            tso: Tso::open(EngineTsoStore(MemoryEngine::new()), system_clock(), 3000).unwrap(),
            gate: tokio::sync::Semaphore::new(0),
        });
        let client = TsoClient::start(provider.clone());
        // A leader blocks in its fetch; a waiter queues behind it.
        let mut leader = Box::pin(client.get_timestamp());
        let mut waiter = Box::pin(client.get_timestamp());
        for future in [&mut leader, &mut waiter] {
            tokio::select! {
                biased;
                _ = future => panic!("nothing can complete while the fetch is blocked"),
                _ = std::future::ready(()) => {}
            }
        }
        // The fetch returns; the waiter is dropped without ever running again.
        provider.gate.add_permits(1);
        leader.await.unwrap();
        drop(waiter);
        provider.gate.add_permits(100);
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), client.get_timestamp())
            .await
            .expect("the lead was lost with the dropped waiter");
        next.unwrap();
    }
}
