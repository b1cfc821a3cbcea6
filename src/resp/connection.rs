//! One client connection: read, parse, execute in order, reply.
//!
//! Requests are executed in the order they arrive, so pipelined replies come back in order.
//! Consecutive pipelined data commands (up to `MAX_PIPELINE_BATCH`) run in one transaction:
//! one snapshot, one durable commit, one reply write. Redis, too, runs a client's pipelined
//! commands back to back without interleaving other clients, so the batch changes nothing a
//! client can observe except speed. A framing error answers `-ERR Protocol error: ...` after
//! the replies before it, then closes the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::arrival::{self, Arrival};
use super::cmd;
use super::parse::{ParseLimits, RequestParser};
use super::reply::Reply;
use super::server::Server;
use super::session::{ClientHandle, Session};
use crate::percolator::TxnClient;

/// Bytes asked of the socket per read. Reads land in a per-thread scratch buffer
/// (`arrival`), so a connection's own input buffer holds only what it has received and not
/// yet parsed: an idle connection holds none.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Replies are flushed once this many bytes are pending, even mid-pipeline.
const WRITE_FLUSH_BYTES: usize = 64 * 1024;
/// Most pipelined requests parsed (and run as one transaction) at a time.
const MAX_PIPELINE_BATCH: usize = 256;
/// An idle read buffer bigger than this is given back to the allocator.
const IDLE_BUFFER_KEEP_BYTES: usize = 64 * 1024;

pub struct Connection<C: TxnClient> {
    socket: TcpStream,
    server: Arc<Server<C>>,
    session: Session,
    parser: RequestParser,
    input: BytesMut,
    /// When the last bytes read arrived.
    arrived: Arrival,
    output: BytesMut,
}

impl<C: TxnClient> Connection<C> {
    pub fn new(
        socket: TcpStream,
        addr: SocketAddr,
        id: u64,
        server: Arc<Server<C>>,
    ) -> std::io::Result<Self> {
        socket.set_nodelay(true)?;
        arrival::enable(&socket)?;
        let local_addr = socket.local_addr()?;
        let fd = {
            use std::os::fd::AsRawFd;
            i64::from(socket.as_raw_fd())
        };
        let handle = Arc::new(ClientHandle::new(id, addr, local_addr, fd));
        server.clients.insert(id, handle.clone());
        let limits = ParseLimits {
            max_bulk_bytes: server.config.max_bulk_bytes,
            max_multibulk_len: server.config.max_multibulk_len,
            max_inline_bytes: server.config.max_inline_bytes,
        };
        Ok(Connection {
            socket,
            session: Session::new(handle, server.config.requirepass.is_none()),
            server,
            parser: RequestParser::new(limits),
            input: BytesMut::new(),
            arrived: Arrival::default(),
            output: BytesMut::new(),
        })
    }

    /// Serves the client until it leaves, breaks the protocol, or the server stops.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        if let Err(e) = self.serve(&mut stop).await {
            tracing::debug!(client = self.session.client.id, error = %e, "connection ended with an error");
        }
        let _ = self.socket.shutdown().await;
        self.server.clients.remove(&self.session.client.id);
    }

    async fn serve(&mut self, stop: &mut watch::Receiver<bool>) -> std::io::Result<()> {
        loop {
            loop {
                let mut requests = Vec::new();
                let mut broken = None;
                while requests.len() < MAX_PIPELINE_BATCH {
                    match self.parser.next_request(&mut self.input) {
                        Ok(Some(request)) => requests.push(request),
                        Ok(None) => break,
                        Err(e) => {
                            broken = Some(e);
                            break;
                        }
                    }
                }
                if requests.is_empty() && broken.is_none() {
                    break;
                }
                *self.session.client.last_active.lock() = Instant::now();
                self.session.arrived = self.arrived;
                self.execute_all(requests).await?;
                if self.session.closing {
                    self.flush().await?;
                    return Ok(());
                }
                if let Some(e) = broken {
                    Reply::Error(format!("ERR Protocol error: {e}"))
                        .encode(self.session.protocol(), &mut self.output);
                    self.flush().await?;
                    tracing::debug!(client = self.session.client.id, error = %e, "protocol error; closing");
                    return Ok(());
                }
                if self.output.len() >= WRITE_FLUSH_BYTES {
                    self.flush().await?;
                }
            }
            self.flush().await?;
            if *stop.borrow() {
                return Ok(());
            }

            let buffered = self.input.len();
            self.session
                .client
                .query_buffer_bytes
                .store(buffered, Ordering::Relaxed);
            if buffered >= self.server.config.max_query_buffer_bytes {
                tracing::warn!(
                    client = self.session.client.id,
                    bytes = buffered,
                    "closing a client that reached the query buffer limit"
                );
                return Ok(());
            }
            if buffered == 0 && self.input.capacity() > IDLE_BUFFER_KEEP_BYTES {
                self.input = BytesMut::new();
            }
            let (read, arrived) = tokio::select! {
                read = arrival::read(&self.socket, &mut self.input, READ_CHUNK_BYTES) => read?,
                _ = stop.changed() => return Ok(()),
            };
            self.arrived = arrived;
            if read == 0 {
                return Ok(());
            }
            self.server
                .stats
                .net_input_bytes
                .fetch_add(read as u64, Ordering::Relaxed);
        }
    }

    /// Runs requests in order: runs of pipelined data commands together in one transaction
    /// each, everything else one at a time. Stops early after `QUIT`.
    async fn execute_all(&mut self, requests: Vec<Vec<Bytes>>) -> std::io::Result<()> {
        let mut batch = Vec::new();
        for request in requests {
            match cmd::batchable(request, &self.session, &self.server) {
                Ok(batched) => batch.push(batched),
                Err(request) => {
                    self.run_batch(std::mem::take(&mut batch)).await;
                    let reply = if cmd::blocks(&request, &self.session) {
                        self.execute_blocking(request).await?
                    } else {
                        cmd::execute(request, &mut self.session, &self.server).await
                    };
                    self.push_reply(reply);
                    if self.session.closing {
                        return Ok(());
                    }
                }
            }
        }
        self.run_batch(batch).await;
        Ok(())
    }

    /// Runs a command that may block (`BLPOP`...) while watching the socket, so a client that
    /// leaves stops waiting (and leaves the queues of its keys) at once. What the client sends
    /// meanwhile is kept for after the command, as Redis does.
    async fn execute_blocking(&mut self, request: Vec<Bytes>) -> std::io::Result<Reply> {
        let Connection {
            socket,
            session,
            server,
            input,
            arrived,
            ..
        } = self;
        let run = cmd::execute(request, session, server);
        tokio::pin!(run);
        loop {
            if input.len() >= server.config.max_query_buffer_bytes {
                return Err(std::io::ErrorKind::OutOfMemory.into());
            }
            tokio::select! {
                reply = &mut run => return Ok(reply),
                read = arrival::read(socket, input, READ_CHUNK_BYTES) => {
                    let (read, at) = read?;
                    if read == 0 {
                        return Err(std::io::ErrorKind::ConnectionAborted.into());
                    }
                    *arrived = at;
                }
            }
        }
    }

    async fn run_batch(&mut self, batch: Vec<cmd::Batched>) {
        if batch.is_empty() {
            return;
        }
        for reply in cmd::execute_batch(batch, &mut self.session, &self.server).await {
            self.push_reply(reply);
        }
    }

    fn push_reply(&mut self, reply: Reply) {
        if let Reply::Error(message) = &reply {
            self.server.stats.error_replied(message);
        }
        reply.encode(self.session.protocol(), &mut self.output);
    }

    /// Writes the pending replies. A client that takes none of them for
    /// `resp.output_stall_timeout_ms` is cut off (an error ends the connection); one that reads
    /// slowly but steadily is not.
    async fn flush(&mut self) -> std::io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let stall = self.server.config.output_stall_timeout_ms;
        let mut written = 0;
        while written < self.output.len() {
            let write = self.socket.write(&self.output[written..]);
            let n = if stall == 0 {
                write.await?
            } else {
                match tokio::time::timeout(std::time::Duration::from_millis(stall), write).await {
                    Ok(n) => n?,
                    Err(_) => {
                        tracing::info!(
                            client = self.session.client.id,
                            pending = self.output.len() - written,
                            "closing a client that stopped reading its replies"
                        );
                        return Err(std::io::ErrorKind::TimedOut.into());
                    }
                }
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            written += n;
        }
        self.server
            .stats
            .net_output_bytes
            .fetch_add(self.output.len() as u64, Ordering::Relaxed);
        self.output.clear();
        Ok(())
    }
}
