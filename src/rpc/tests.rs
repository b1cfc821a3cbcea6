//! Stores replicating a region over real gRPC on loopback: writes reach every replica, and a
//! store that joins after the log was compacted catches up from a snapshot sent in chunks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;

use super::proto::raft_server::RaftServer;
use super::server::RaftService;
use super::transport::{GrpcTransport, Resolver, StoreStatusSink};
use crate::raftstore::bootstrap::{StoreIdent, bootstrap_store, first_region};
use crate::raftstore::cmd::{CommandBody, Mutation, RaftCommand};
use crate::raftstore::driver::{DriverOptions, StoreDriver};
use crate::raftstore::meta::Peer;
use crate::raftstore::peer::PeerOptions;
use crate::raftstore::store::Store;
use crate::storage::{Cf, Engine, MemoryEngine};

struct Node {
    driver: StoreDriver<MemoryEngine>,
    server: tokio::task::JoinHandle<()>,
}

struct Cluster {
    engines: Vec<MemoryEngine>,
    addrs: Arc<RwLock<HashMap<u64, SocketAddr>>>,
    nodes: HashMap<u64, Node>,
    options: PeerOptions,
}

impl Cluster {
    /// Region 1 on stores 1..=3, none started yet.
    fn new(options: PeerOptions) -> Cluster {
        let peers: Vec<Peer> = (1..=3).map(|s| Peer { id: s, store_id: s }).collect();
        let region = first_region(1, peers);
        let engines: Vec<MemoryEngine> = (1..=3)
            .map(|store_id| {
                let engine = MemoryEngine::new();
                let ident = StoreIdent {
                    cluster_id: 1,
                    store_id,
                };
                bootstrap_store(&engine, ident, Some(&region)).unwrap();
                engine
            })
            .collect();
        Cluster {
            engines,
            addrs: Arc::default(),
            nodes: HashMap::new(),
            options,
        }
    }

    async fn start(&mut self, store_id: u64) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addrs
            .write()
            .insert(store_id, listener.local_addr().unwrap());
        let addrs = self.addrs.clone();
        let resolver: Resolver = Arc::new(move |id| addrs.read().get(&id).map(|a| a.to_string()));
        let status = Arc::new(StoreStatusSink::default());
        let transport = GrpcTransport::new(tokio::runtime::Handle::current(), resolver, status.clone());
        let engine = self.engines[(store_id - 1) as usize].clone();
        let store = Store::open(store_id, engine.clone(), transport, self.options, store_id).unwrap();
        let driver = StoreDriver::start(store, engine, DriverOptions { tick_ms: 10 });
        status.attach(driver.handle().clone());
        let service = RaftService::new(driver.handle().clone(), 64 << 20);
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(RaftServer::new(service).max_decoding_message_size(super::MAX_MESSAGE_BYTES))
                .serve_with_incoming(super::incoming(listener))
                .await;
        });
        self.nodes.insert(store_id, Node { driver, server });
    }

    async fn put(&self, store_id: u64, key: &[u8]) {
        let handle = self.nodes[&store_id].driver.handle();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let outcome = match handle.leader_header(1).await {
                Ok(header) => {
                    handle
                        .propose(RaftCommand {
                            header,
                            body: CommandBody::Write(vec![Mutation::Put {
                                cf: Cf::Default,
                                key: key.to_vec(),
                                // 200 of these make a snapshot of a few chunks.
                                value: vec![b'v'; 10_000],
                            }]),
                        })
                        .await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(_) => return,
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("writing {key:?}: {e}"),
            }
        }
    }

    /// Waits until `store_id`'s engine holds every key in `keys`.
    async fn wait_for(&self, store_id: u64, keys: &[Vec<u8>]) {
        let engine = &self.engines[(store_id - 1) as usize];
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let missing = keys
                .iter()
                .filter(|k| engine.get(Cf::Default, k).unwrap().is_none())
                .count();
            if missing == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "store {store_id} still lacks {missing} of {} keys",
                keys.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn shutdown(self) {
        for (_, node) in self.nodes {
            node.server.abort();
            node.driver.stop();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_replicates_over_grpc_and_a_late_store_catches_up_from_a_snapshot() {
    let options = PeerOptions {
        raft_log_gc_tick_interval: 5,
        raft_log_gc_count_limit: 20,
        ..PeerOptions::default()
    };
    let mut cluster = Cluster::new(options);
    cluster.start(1).await;
    cluster.start(2).await;
    cluster.nodes[&1].driver.handle().campaign(1).unwrap();
    let keys: Vec<Vec<u8>> = (0..200).map(|i| format!("k{i:03}").into_bytes()).collect();
    for key in &keys {
        cluster.put(1, key).await;
    }
    cluster.wait_for(2, &keys).await;
    // Once the leader's log is compacted (on its gc tick, so perhaps a little after the
    // follower caught up), store 3 can only catch up from a snapshot (of about 2 MB, so sent
    // in several chunks).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let truncated = crate::raftstore::peer_storage::PeerStorage::open(cluster.engines[0].clone(), 1)
            .unwrap()
            .apply_state()
            .truncated
            .index;
        if truncated > 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader did not compact its log (truncated at {truncated})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.start(3).await;
    cluster.wait_for(3, &keys).await;
    // And store 3 then follows new writes through the log.
    cluster.put(1, b"after").await;
    cluster.wait_for(3, &[b"after".to_vec()]).await;
    cluster.shutdown();
}

#[tokio::test]
async fn the_node_server_sets_nodelay_on_every_connection_it_accepts() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = super::incoming(listener);
    let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let accepted = incoming.next().await.unwrap().unwrap();
    assert!(
        accepted.nodelay().unwrap(),
        "answers written by the server must not wait for the peer's delayed ACK"
    );
}
