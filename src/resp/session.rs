//! Per-connection state: the part other connections may read (`ClientHandle`, for `CLIENT
//! LIST`) and the part only the connection touches (`Session`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicI64;

use bytes::Bytes;
use parking_lot::Mutex;

use super::arrival::Arrival;
use super::db::DbIndex;
use super::reply::Protocol;
use crate::scheduler::tso::TimeStamp;

/// What the server knows about a connected client, readable from other connections.
pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    pub local_addr: SocketAddr,
    /// The socket's file descriptor, as `CLIENT LIST` reports it.
    pub fd: i64,
    pub created: Instant,
    pub name: Mutex<Option<Bytes>>,
    pub lib_name: Mutex<Option<Bytes>>,
    pub lib_version: Mutex<Option<Bytes>>,
    /// When the client last sent a command.
    pub last_active: Mutex<Instant>,
    /// The last command's full name (`get`, `client|list`).
    pub last_command: Mutex<&'static str>,
    protocol: AtomicU8,
    /// Unparsed bytes buffered for this client.
    pub query_buffer_bytes: AtomicUsize,
    pub commands_processed: AtomicU64,
    /// Commands queued in an open `MULTI`, or -1 outside one (`CLIENT LIST`'s `multi=`).
    multi_queued: AtomicI64,
    /// The selected database (`CLIENT LIST`'s `db=`).
    pub db: AtomicU8,
}

impl ClientHandle {
    pub fn new(id: u64, addr: SocketAddr, local_addr: SocketAddr, fd: i64) -> Self {
        let now = Instant::now();
        ClientHandle {
            id,
            addr,
            local_addr,
            fd,
            created: now,
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_version: Mutex::new(None),
            last_active: Mutex::new(now),
            last_command: Mutex::new("NULL"),
            protocol: AtomicU8::new(2),
            query_buffer_bytes: AtomicUsize::new(0),
            commands_processed: AtomicU64::new(0),
            multi_queued: AtomicI64::new(-1),
            db: AtomicU8::new(0),
        }
    }

    pub fn protocol(&self) -> Protocol {
        match self.protocol.load(Ordering::Relaxed) {
            3 => Protocol::Resp3,
            _ => Protocol::Resp2,
        }
    }

    /// One line of `CLIENT LIST` / `CLIENT INFO`, fields in Redis's order.
    pub fn info_line(&self) -> String {
        let now = Instant::now();
        let text = |field: &Mutex<Option<Bytes>>| {
            field
                .lock()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub=0 psub=0 ssub=0 multi={} \
             qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r \
             cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.local_addr,
            self.fd,
            text(&self.name),
            now.duration_since(self.created).as_secs(),
            now.duration_since(*self.last_active.lock()).as_secs(),
            if self.multi_queued.load(Ordering::Relaxed) >= 0 {
                "x"
            } else {
                "N"
            },
            self.db.load(Ordering::Relaxed),
            self.multi_queued.load(Ordering::Relaxed),
            self.query_buffer_bytes.load(Ordering::Relaxed),
            self.last_command.lock(),
            self.protocol().number(),
            text(&self.lib_name),
            text(&self.lib_version),
        )
    }
}

/// An open `MULTI`: the commands queued so far, and whether one was refused while queueing
/// (which makes `EXEC` abort).
#[derive(Default)]
pub struct MultiState {
    pub queued: Vec<Vec<Bytes>>,
    pub refused: bool,
    /// What `queued` holds, as [`queued_bytes`] counts it.
    bytes: usize,
}

/// What a queued command costs: its arguments' bytes, and a little for each argument.
fn queued_bytes(args: &[Bytes]) -> usize {
    args.iter().map(|arg| arg.len() + 16).sum()
}

/// A `MULTI` queue went past `resp.max_multi_queue_bytes`.
#[derive(Debug, PartialEq, Eq)]
pub struct QueueFull;

/// The state of one connection.
pub struct Session {
    pub client: Arc<ClientHandle>,
    protocol: Protocol,
    /// Set by `QUIT`: close after this reply.
    pub closing: bool,
    multi: Option<MultiState>,
    /// `WATCH`ed keys (qualified by database), each with the timestamp of its first watch.
    watches: BTreeMap<Bytes, TimeStamp>,
    /// Whether the client may run commands: it has authenticated, or no password is set.
    pub authenticated: bool,
    /// The selected database (`SELECT`).
    pub db: DbIndex,
    /// When the bytes of the requests being run arrived (see `arrival`): where a blocking
    /// command queues.
    pub arrived: Arrival,
}

impl Session {
    /// A session; `authenticated` is false where a password must be given first.
    pub fn new(client: Arc<ClientHandle>, authenticated: bool) -> Self {
        Session {
            client,
            protocol: Protocol::Resp2,
            closing: false,
            multi: None,
            watches: BTreeMap::new(),
            authenticated,
            db: 0,
            arrived: Arrival::default(),
        }
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
        self.client
            .protocol
            .store(protocol.number() as u8, Ordering::Relaxed);
    }
}

impl Session {
    pub fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    /// Opens a `MULTI`. The caller checks that none is open.
    pub fn begin_multi(&mut self) {
        assert!(
            self.multi.is_none(),
            "MULTI inside MULTI is refused before this point"
        );
        self.multi = Some(MultiState::default());
        self.client.multi_queued.store(0, Ordering::Relaxed);
    }

    /// Queues a command in the open `MULTI`, unless the queue would hold more than
    /// `limit_bytes`: then the transaction is refused and its queue dropped (a refused
    /// transaction keeps nothing, since `EXEC` will run none of it).
    pub fn queue(&mut self, args: Vec<Bytes>, limit_bytes: usize) -> Result<(), QueueFull> {
        let multi = self.multi.as_mut().expect("queueing needs an open MULTI");
        if multi.refused {
            return Ok(());
        }
        let bytes = queued_bytes(&args);
        if multi.bytes + bytes > limit_bytes {
            multi.refused = true;
            multi.queued = Vec::new();
            multi.bytes = 0;
            return Err(QueueFull);
        }
        multi.bytes += bytes;
        multi.queued.push(args);
        self.client
            .multi_queued
            .store(multi.queued.len() as i64, Ordering::Relaxed);
        Ok(())
    }

    /// Marks the open `MULTI` (if any) as doomed: `EXEC` will answer `EXECABORT`.
    pub fn refuse_multi(&mut self) {
        if let Some(multi) = &mut self.multi {
            multi.refused = true;
        }
    }

    /// Closes the open `MULTI` and forgets the watches (`EXEC`, `DISCARD`).
    pub fn end_multi(&mut self) -> Option<MultiState> {
        self.client.multi_queued.store(-1, Ordering::Relaxed);
        self.watches.clear();
        self.multi.take()
    }

    /// Watches `key` from `since`, unless it is already watched from earlier.
    pub fn watch(&mut self, key: Bytes, since: TimeStamp) {
        self.watches.entry(key).or_insert(since);
    }

    pub fn unwatch(&mut self) {
        self.watches.clear();
    }

    pub fn watches(&self) -> &BTreeMap<Bytes, TimeStamp> {
        &self.watches
    }
}
