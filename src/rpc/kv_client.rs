//! The client side of the KV service: [`KvRpcClient`] sends the Percolator commands of
//! `proto/kv.proto` to one remote store, and decodes its answers and errors (the encodings are
//! in `kv`, next to the service).
//!
//! `get`, `prewrite` and `commit` go over the store's `BatchCommands` stream: one per client
//! (clones share it), opened on first use, carrying every command queued at a moment in one
//! message, and replaced once it breaks. Commands are written to a stream only after it opened, so a
//! command still waiting when the stream could not be opened certainly did not run, while one
//! written to a stream that then broke may have.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Response, Status};

use super::kv::{RegionContext, context_to_proto, error_from_proto, mutation_to_proto, ts};
use super::proto;
use super::proto::kv_client::KvClient;
use crate::percolator::actions::{Action, TxnStatus};
use crate::percolator::commands::{PrewriteRequest, ScanOutput};
use crate::percolator::records::LockInfo;
use crate::percolator::{MvccError, ScanLimits};
use crate::raftstore::cmd::RaftstoreError;
use crate::raftstore::meta::{Peer, Region};
use crate::scheduler::tso::TimeStamp;

/// How long a KV request to another store may go unanswered. A dead or unreachable store is
/// noticed sooner, by keepalive (see the module docs of `rpc`); this bounds a store that
/// answers pings but not the request, such as a deposed leader whose proposal waits for a
/// majority it cannot reach.
pub const KV_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a command sent over the batch stream waits for its answer: a little longer than
/// opening the stream may take, so a command the stream never carried is known as never sent.
const BATCH_ANSWER_TIMEOUT: Duration = KV_REQUEST_TIMEOUT.saturating_add(Duration::from_secs(1));

/// Commands go in one message of the batch stream until it holds this many bytes.
const BATCH_MESSAGE_BYTES: usize = 1 << 20;

/// Sends KV requests to one remote store.
#[derive(Clone)]
pub struct KvRpcClient {
    store_id: u64,
    client: KvClient<tonic::transport::Channel>,
    /// The task that runs the batch stream, while it runs.
    link: Arc<Mutex<Option<mpsc::UnboundedSender<Ask>>>>,
}

type Command = proto::batch_command::Request;
type Answer = proto::batch_answer::Response;
/// A command for the batch stream, and where its answer goes.
type Ask = (Command, oneshot::Sender<Result<Answer, LinkError>>);

/// Why a command sent over the batch stream has no answer.
#[derive(Debug)]
enum LinkError {
    /// No stream carried it (none could be opened): it did not run.
    NotSent(String),
    /// It was written to a stream that broke, or its answer is late: it may have run.
    Lost(String),
}

/// Runs one batch stream: opens it, then writes what callers ask (all that is queued at a
/// moment in one message) and hands each answer to its caller. Ends when the stream breaks,
/// or once every caller is gone and every answer is in.
async fn run_batch_stream(
    mut client: KvClient<tonic::transport::Channel>,
    mut asks: mpsc::UnboundedReceiver<Ask>,
) {
    let (commands, outbound) = mpsc::unbounded_channel();
    let mut inbound = match client
        .batch_commands(UnboundedReceiverStream::new(outbound))
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => {
            asks.close();
            while let Ok((_, answer)) = asks.try_recv() {
                let _ = answer.send(Err(LinkError::NotSent(status.message().to_string())));
            }
            return;
        }
    };
    let mut commands = Some(commands);
    let mut waiting: HashMap<u64, oneshot::Sender<Result<Answer, LinkError>>> = HashMap::new();
    let mut next_id = 0u64;
    let broken = loop {
        tokio::select! {
            ask = asks.recv(), if commands.is_some() => {
                let Some(first) = ask else {
                    // Every caller is gone: close our side and collect the last answers.
                    commands = None;
                    continue;
                };
                let mut batch = Vec::new();
                let mut bytes = 0;
                let mut next = Some(first);
                while let Some((command, answer)) = next.take() {
                    next_id += 1;
                    waiting.insert(next_id, answer);
                    let command = proto::BatchCommand { id: next_id, request: Some(command) };
                    bytes += command.encoded_len();
                    batch.push(command);
                    // Big commands (large values) go in messages of their own.
                    if bytes < BATCH_MESSAGE_BYTES {
                        next = asks.try_recv().ok();
                    }
                }
                let sent = commands
                    .as_ref()
                    .is_some_and(|c| c.send(proto::BatchCommandsRequest { commands: batch }).is_ok());
                if !sent {
                    break "the batch stream closed".to_string();
                }
            }
            message = inbound.message() => match message {
                Ok(Some(response)) => {
                    for answer in response.answers {
                        if let (Some(caller), Some(response)) = (waiting.remove(&answer.id), answer.response) {
                            let _ = caller.send(Ok(response));
                        }
                    }
                    if commands.is_none() && waiting.is_empty() {
                        return;
                    }
                }
                Ok(None) => break "the store ended the batch stream".to_string(),
                Err(status) => break status.message().to_string(),
            },
        }
    };
    for (_, caller) in waiting.drain() {
        let _ = caller.send(Err(LinkError::Lost(broken.clone())));
    }
    // Commands queued after the stream broke were never written to it.
    asks.close();
    while let Ok((_, answer)) = asks.try_recv() {
        let _ = answer.send(Err(LinkError::NotSent(broken.clone())));
    }
}

/// A failed call: the request never reached the store, or its answer never came back (then
/// it may have been served).
fn transport_error(store_id: u64, status: &Status) -> MvccError {
    unreachable(store_id, status.message().to_string())
}

/// The store could not be asked, or did not answer, for `reason`.
fn unreachable(store_id: u64, reason: String) -> MvccError {
    MvccError::Region(RaftstoreError::StoreUnreachable { store_id, reason })
}

impl KvRpcClient {
    /// A client of the store at `addr` (`host:port`); connects lazily.
    pub fn new(store_id: u64, addr: &str) -> Result<Self, MvccError> {
        let endpoint = super::endpoint(addr)
            .map_err(|e| {
                MvccError::Region(RaftstoreError::StoreUnreachable {
                    store_id,
                    reason: e.to_string(),
                })
            })?
            .timeout(KV_REQUEST_TIMEOUT);
        Ok(KvRpcClient {
            store_id,
            client: KvClient::new(endpoint.connect_lazy())
                .max_decoding_message_size(super::MAX_MESSAGE_BYTES),
            link: Arc::new(Mutex::new(None)),
        })
    }

    /// Sends `command` over the batch stream (opening one if none runs) and waits for its
    /// answer.
    async fn batch(&self, command: Command) -> Result<Answer, LinkError> {
        let link = {
            let mut slot = self.link.lock();
            match slot.as_ref() {
                Some(link) if !link.is_closed() => link.clone(),
                _ => {
                    let (link, asks) = mpsc::unbounded_channel();
                    tokio::spawn(run_batch_stream(self.client.clone(), asks));
                    *slot = Some(link.clone());
                    link
                }
            }
        };
        let (answer, answered) = oneshot::channel();
        if link.send((command, answer)).is_err() {
            return Err(LinkError::NotSent("the batch stream closed".into()));
        }
        match tokio::time::timeout(BATCH_ANSWER_TIMEOUT, answered).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(LinkError::Lost("the batch stream stopped".into())),
            Err(_) => {
                // A stream that stopped answering is replaced for the next command.
                let mut slot = self.link.lock();
                if slot.as_ref().is_some_and(|l| l.same_channel(&link)) {
                    *slot = None;
                }
                Err(LinkError::Lost(format!(
                    "no answer within {BATCH_ANSWER_TIMEOUT:?}"
                )))
            }
        }
    }

    /// The error of a command the batch stream did not answer.
    fn unanswered(&self, error: LinkError) -> MvccError {
        let (LinkError::NotSent(reason) | LinkError::Lost(reason)) = error;
        unreachable(self.store_id, reason)
    }

    /// The error of a command the store refused before running it.
    fn refused(&self, refusal: proto::Refusal) -> MvccError {
        unreachable(self.store_id, refusal.message)
    }

    pub async fn get(
        &self,
        ctx: &RegionContext,
        key: Vec<u8>,
        at: TimeStamp,
    ) -> Result<Option<Vec<u8>>, MvccError> {
        let request = proto::GetRequest {
            context: Some(context_to_proto(ctx)),
            key,
            ts: at.into_inner(),
        };
        let r = match self.batch(Command::Get(request)).await {
            Ok(Answer::Get(r)) => r,
            Ok(Answer::Refused(refusal)) => return Err(self.refused(refusal)),
            Ok(other) => return Err(mismatched(self.store_id, &other)),
            Err(error) => return Err(self.unanswered(error)),
        };
        match r.error {
            Some(e) => Err(error_from_proto(e)),
            None => Ok(r.found.then_some(r.value)),
        }
    }

    pub async fn scan(
        &self,
        ctx: &RegionContext,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limits: ScanLimits,
        at: TimeStamp,
    ) -> Result<ScanOutput, MvccError> {
        let request = proto::ScanRequest {
            context: Some(context_to_proto(ctx)),
            start,
            has_end: end.is_some(),
            end: end.unwrap_or_default(),
            limit: limits.limit as u64,
            ts: at.into_inner(),
            examine: limits.examine as u64,
            has_value_head: limits.value_head.is_some(),
            value_head: limits.value_head.unwrap_or_default() as u64,
        };
        let r = self
            .client
            .clone()
            .scan(request)
            .await
            .map_err(|s| transport_error(self.store_id, &s))?
            .into_inner();
        if let Some(e) = r.error {
            return Err(error_from_proto(e));
        }
        Ok(ScanOutput {
            entries: r
                .items
                .into_iter()
                .map(|item| match item.error {
                    Some(e) => (item.key, Err(error_from_proto(e))),
                    None => (item.key, Ok(item.value)),
                })
                .collect(),
            examined: usize::try_from(r.examined).unwrap_or(usize::MAX),
            resume: r.has_resume.then_some(r.resume),
            region_end: r.has_region_end.then_some(r.region_end),
        })
    }

    /// A prewrite. A one-phase prewrite whose answer is lost after it may have been sent has
    /// an unknown outcome (it may have committed): it fails with `Undetermined`, never
    /// "unreachable".
    pub async fn prewrite(
        &self,
        ctx: &RegionContext,
        request: PrewriteRequest,
        one_pc: bool,
    ) -> Result<Option<TimeStamp>, Vec<MvccError>> {
        let request = proto::PrewriteRequest {
            context: Some(context_to_proto(ctx)),
            mutations: request.mutations.iter().map(mutation_to_proto).collect(),
            primary: request.primary,
            start_ts: request.start_ts.into_inner(),
            lock_ttl_ms: request.lock_ttl_ms,
            one_pc,
        };
        let r = match self.batch(Command::Prewrite(request)).await {
            Ok(Answer::Prewrite(r)) => r,
            Ok(Answer::Refused(refusal)) => return Err(vec![self.refused(refusal)]),
            // A one-phase prewrite that may have run has an unknown outcome.
            Ok(_) | Err(LinkError::Lost(_)) if one_pc => {
                return Err(vec![MvccError::Region(RaftstoreError::Undetermined)]);
            }
            Ok(other) => return Err(vec![mismatched(self.store_id, &other)]),
            Err(error) => return Err(vec![self.unanswered(error)]),
        };
        if !r.errors.is_empty() {
            return Err(r.errors.into_iter().map(error_from_proto).collect());
        }
        Ok((r.commit_ts != 0).then(|| ts(r.commit_ts)))
    }

    pub async fn commit(
        &self,
        ctx: &RegionContext,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
    ) -> Result<(), MvccError> {
        let request = proto::CommitRequest {
            context: Some(context_to_proto(ctx)),
            keys,
            start_ts: start_ts.into_inner(),
            commit_ts: commit_ts.into_inner(),
        };
        match self.batch(Command::Commit(request)).await {
            Ok(Answer::Commit(r)) => match r.error {
                Some(e) => Err(error_from_proto(e)),
                None => Ok(()),
            },
            Ok(Answer::Refused(refusal)) => Err(self.refused(refusal)),
            Ok(other) => Err(mismatched(self.store_id, &other)),
            Err(error) => Err(self.unanswered(error)),
        }
    }

    fn unit(&self, r: Result<Response<proto::Result>, Status>) -> Result<(), MvccError> {
        match r {
            Ok(r) => match r.into_inner().error {
                Some(e) => Err(error_from_proto(e)),
                None => Ok(()),
            },
            Err(status) => Err(transport_error(self.store_id, &status)),
        }
    }

    pub async fn batch_rollback(
        &self,
        ctx: &RegionContext,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
    ) -> Result<(), MvccError> {
        let request = proto::BatchRollbackRequest {
            context: Some(context_to_proto(ctx)),
            keys,
            start_ts: start_ts.into_inner(),
        };
        let r = self.client.clone().batch_rollback(request).await;
        self.unit(r)
    }

    pub async fn check_txn_status(
        &self,
        ctx: &RegionContext,
        primary: Vec<u8>,
        lock_ts: TimeStamp,
        current_ts: TimeStamp,
        rollback_if_not_exist: bool,
    ) -> Result<TxnStatus, MvccError> {
        let request = proto::CheckTxnStatusRequest {
            context: Some(context_to_proto(ctx)),
            primary,
            lock_ts: lock_ts.into_inner(),
            current_ts: current_ts.into_inner(),
            rollback_if_not_exist,
        };
        let r = self
            .client
            .clone()
            .check_txn_status(request)
            .await
            .map_err(|s| transport_error(self.store_id, &s))?
            .into_inner();
        if let Some(e) = r.error {
            return Err(error_from_proto(e));
        }
        match r.status {
            1 => Ok(TxnStatus::Locked { ttl_ms: r.ttl_ms }),
            2 => Ok(TxnStatus::Committed {
                commit_ts: ts(r.commit_ts),
            }),
            3 => Ok(TxnStatus::RolledBack {
                action: match r.action {
                    1 => Action::TtlExpireRollback,
                    2 => Action::LockNotExistRollback,
                    _ => Action::NoAction,
                },
            }),
            other => Err(MvccError::Region(RaftstoreError::Remote(format!(
                "unknown transaction status {other}"
            )))),
        }
    }

    pub async fn resolve_lock(
        &self,
        ctx: &RegionContext,
        start_ts: TimeStamp,
        commit_ts: Option<TimeStamp>,
        keys: Vec<Vec<u8>>,
    ) -> Result<(), MvccError> {
        let request = proto::ResolveLockRequest {
            context: Some(context_to_proto(ctx)),
            start_ts: start_ts.into_inner(),
            commit_ts: commit_ts.map_or(0, TimeStamp::into_inner),
            keys,
        };
        let r = self.client.clone().resolve_lock(request).await;
        self.unit(r)
    }

    pub async fn scan_locks(
        &self,
        ctx: &RegionContext,
        max_ts: TimeStamp,
        start: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<LockInfo>, MvccError> {
        let request = proto::ScanLocksRequest {
            context: Some(context_to_proto(ctx)),
            max_ts: max_ts.into_inner(),
            start,
            limit: limit as u64,
        };
        let r = self
            .client
            .clone()
            .scan_locks(request)
            .await
            .map_err(|s| transport_error(self.store_id, &s))?
            .into_inner();
        if let Some(e) = r.error {
            return Err(error_from_proto(e));
        }
        Ok(r.locks
            .into_iter()
            .map(|l| LockInfo {
                key: l.key,
                primary: l.primary,
                start_ts: ts(l.start_ts),
                ttl_ms: l.ttl_ms,
            })
            .collect())
    }

    pub async fn gc(
        &self,
        ctx: &RegionContext,
        safe_point: TimeStamp,
        start: Option<Vec<u8>>,
        limit_keys: usize,
    ) -> Result<(usize, Option<Vec<u8>>), MvccError> {
        let request = proto::GcRequest {
            context: Some(context_to_proto(ctx)),
            safe_point: safe_point.into_inner(),
            has_start: start.is_some(),
            start: start.unwrap_or_default(),
            limit_keys: limit_keys as u64,
        };
        let r = self
            .client
            .clone()
            .gc(request)
            .await
            .map_err(|s| transport_error(self.store_id, &s))?
            .into_inner();
        if let Some(e) = r.error {
            return Err(error_from_proto(e));
        }
        Ok((r.removed as usize, r.has_next.then_some(r.next)))
    }
}

/// A store that answered a command with the answer of another kind (a bug on one side).
fn mismatched(store_id: u64, answer: &Answer) -> MvccError {
    MvccError::Region(RaftstoreError::Remote(format!(
        "store {store_id} answered with the wrong kind of answer: {answer:?}"
    )))
}

/// The region a request goes to, as a context.
pub fn context_for(region: &Region, leader: Peer) -> RegionContext {
    RegionContext {
        region_id: region.id,
        epoch: region.epoch,
        peer: leader,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt as _;

    use super::*;
    use crate::percolator::actions::Mutation;
    use crate::raftstore::meta::RegionEpoch;

    fn context() -> RegionContext {
        RegionContext {
            region_id: 1,
            epoch: RegionEpoch {
                conf_ver: 1,
                version: 1,
            },
            peer: Peer { id: 1, store_id: 2 },
        }
    }

    fn request() -> PrewriteRequest {
        PrewriteRequest {
            mutations: vec![Mutation::put(b"k".to_vec(), b"v".to_vec())],
            primary: b"k".to_vec(),
            start_ts: TimeStamp::new(10),
            lock_ttl_ms: 3_000,
        }
    }

    async fn prewrite_to(addr: &str, one_pc: bool) -> Vec<MvccError> {
        let client = KvRpcClient::new(2, addr).expect("client");
        let outcome = tokio::time::timeout(
            KV_REQUEST_TIMEOUT + Duration::from_secs(10),
            client.prewrite(&context(), request(), one_pc),
        )
        .await
        .expect("a request to a silent store must fail, not hang");
        outcome.expect_err("nothing serves this address")
    }

    fn is_unreachable(errors: &[MvccError]) -> bool {
        matches!(
            errors,
            [MvccError::Region(RaftstoreError::StoreUnreachable {
                store_id: 2,
                ..
            })]
        )
    }

    #[tokio::test]
    async fn a_one_phase_commit_that_could_not_connect_was_never_sent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let errors = prewrite_to(&addr, true).await;
        assert!(is_unreachable(&errors), "{errors:?}");
    }

    /// A store that accepts the connection and then never answers, like a stopped process or
    /// a node whose replies the network drops: the request fails within the keepalive and
    /// request limits. No batch stream ever opened, so no command was written to one: even a
    /// one-phase commit is known not to have run.
    #[tokio::test]
    async fn a_request_to_a_silent_store_fails_and_is_known_never_sent() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let held = tokio::spawn(async move {
            let mut connections = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.push(stream);
            }
        });
        let errors = prewrite_to(&addr, true).await;
        assert!(is_unreachable(&errors), "{errors:?}");
        let errors = prewrite_to(&addr, false).await;
        assert!(is_unreachable(&errors), "{errors:?}");
        held.abort();
    }

    /// A KV server whose only working method is the batch stream: it answers every `Get`
    /// with the key as the value, after a delay that makes answers finish out of order, or
    /// (silent) reads the commands and never answers.
    struct FakeKv {
        silent: bool,
        streams: Arc<std::sync::atomic::AtomicUsize>,
    }

    type FakeAnswers = std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<proto::BatchCommandsResponse, Status>> + Send>,
    >;

    impl FakeKv {
        fn open_batch(
            &self,
            request: tonic::Request<tonic::Streaming<proto::BatchCommandsRequest>>,
        ) -> Result<Response<FakeAnswers>, Status> {
            self.streams.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut inbound = request.into_inner();
            let (answers, answered) = mpsc::unbounded_channel();
            let silent = self.silent;
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok(Some(batch)) = inbound.message().await {
                    for command in batch.commands {
                        if silent {
                            held.push(command);
                            continue;
                        }
                        let answers = answers.clone();
                        tokio::spawn(async move {
                            let Some(proto::batch_command::Request::Get(get)) = command.request else {
                                return;
                            };
                            let delay = get.key.last().copied().unwrap_or(0) % 7;
                            tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
                            let answer = proto::BatchAnswer {
                                id: command.id,
                                response: Some(Answer::Get(proto::GetResponse {
                                    error: None,
                                    found: true,
                                    value: get.key,
                                })),
                            };
                            let _ = answers.send(proto::BatchCommandsResponse {
                                answers: vec![answer],
                            });
                        });
                    }
                }
                drop(held);
            });
            Ok(Response::new(Box::pin(
                UnboundedReceiverStream::new(answered).map(Ok),
            )))
        }
    }

    /// The fake's `Kv`: the batch stream, and every unary call unimplemented.
    macro_rules! fake_kv {
        ($($name:ident($request:ident) -> $response:ident;)*) => {
            #[tonic::async_trait]
            impl proto::kv_server::Kv for FakeKv {
                type BatchCommandsStream = FakeAnswers;

                async fn batch_commands(
                    &self,
                    request: tonic::Request<tonic::Streaming<proto::BatchCommandsRequest>>,
                ) -> Result<Response<FakeAnswers>, Status> {
                    self.open_batch(request)
                }

                $(async fn $name(
                    &self,
                    _: tonic::Request<proto::$request>,
                ) -> Result<Response<proto::$response>, Status> {
                    Err(Status::unimplemented("not in the fake"))
                })*
            }
        };
    }

    fake_kv! {
        split_region(SplitRegionRequest) -> SplitRegionResponse;
        transfer_leader(TransferLeaderRequest) -> Result;
        change_peer(ChangePeerRequest) -> Result;
        get(GetRequest) -> GetResponse;
        scan(ScanRequest) -> ScanResponse;
        prewrite(PrewriteRequest) -> PrewriteResponse;
        commit(CommitRequest) -> Result;
        batch_rollback(BatchRollbackRequest) -> Result;
        check_txn_status(CheckTxnStatusRequest) -> CheckTxnStatusResponse;
        resolve_lock(ResolveLockRequest) -> Result;
        scan_locks(ScanLocksRequest) -> ScanLocksResponse;
        gc(GcRequest) -> GcResponse;
    }

    /// Serves a [`FakeKv`]; returns its address and the count of batch streams opened.
    async fn serve_fake(silent: bool) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let streams = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fake = FakeKv {
            silent,
            streams: streams.clone(),
        };
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(proto::kv_server::KvServer::new(fake))
                .serve_with_incoming(crate::rpc::incoming(listener))
                .await;
        });
        (addr, streams)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commands_share_one_stream_and_each_gets_its_own_answer() {
        let (addr, streams) = serve_fake(false).await;
        let client = KvRpcClient::new(2, &addr).unwrap();
        let gets = (0..200u32).map(|i| {
            let client = client.clone();
            async move {
                let key = format!("key{i}").into_bytes();
                let value = client.get(&context(), key.clone(), TimeStamp::new(10)).await;
                (key, value)
            }
        });
        for (key, value) in futures_util::future::join_all(gets).await {
            assert_eq!(
                value.unwrap(),
                Some(key),
                "each caller gets the answer to its own command"
            );
        }
        assert_eq!(
            streams.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the clones of one client share one stream"
        );
    }

    /// A store whose stream takes commands and then never answers (a deposed leader waiting
    /// for a majority, say): the commands were written, so they may have run.
    #[tokio::test]
    async fn a_command_written_to_a_stream_that_never_answers_may_have_run() {
        let (addr, _) = serve_fake(true).await;
        let errors = prewrite_to(&addr, true).await;
        assert!(
            matches!(
                errors.as_slice(),
                [MvccError::Region(RaftstoreError::Undetermined)]
            ),
            "{errors:?}"
        );
        let errors = prewrite_to(&addr, false).await;
        assert!(is_unreachable(&errors), "{errors:?}");
        // A commit is idempotent: the caller learns it failed to get an answer and retries.
        let client = KvRpcClient::new(2, &addr).unwrap();
        let commit = client
            .commit(
                &context(),
                vec![b"k".to_vec()],
                TimeStamp::new(10),
                TimeStamp::new(11),
            )
            .await;
        assert!(is_unreachable(&[commit.expect_err("no answer")]));
    }
}
