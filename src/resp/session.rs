//! Per-connection state: the part other connections may read (`ClientHandle`, for `CLIENT
//! LIST`) and the part only the connection touches (`Session`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;

use super::reply::Protocol;

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
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 \
             qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r \
             cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.local_addr,
            self.fd,
            text(&self.name),
            now.duration_since(self.created).as_secs(),
            now.duration_since(*self.last_active.lock()).as_secs(),
            self.query_buffer_bytes.load(Ordering::Relaxed),
            self.last_command.lock(),
            self.protocol().number(),
            text(&self.lib_name),
            text(&self.lib_version),
        )
    }
}

/// The state of one connection.
pub struct Session {
    pub client: Arc<ClientHandle>,
    protocol: Protocol,
    /// Set by `QUIT`: close after this reply.
    pub closing: bool,
}

impl Session {
    pub fn new(client: Arc<ClientHandle>) -> Self {
        Session {
            client,
            protocol: Protocol::Resp2,
            closing: false,
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
