//! Node configuration: `cluster.yaml`, its defaults, and its validation.
//!
//! With no file, one process is a complete single-node database: RESP on `127.0.0.1:6379`,
//! data in `./ferrokv-data`. A file describes every node of a cluster; each process is told
//! which one it is (`--node NAME`). Unknown fields are errors, so a typo never silently falls
//! back to a default. Every limit carries its unit in its name.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors a person can act on: each names the file, the field or the node at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error("no node named {name:?} in the config (nodes: {known})")]
    UnknownNode { name: String, known: String },
    #[error("the config lists {count} nodes; say which one this process is with --node NAME")]
    NodeNotChosen { count: usize },
}

/// The whole `cluster.yaml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Every node of the cluster.
    pub nodes: Vec<NodeConfig>,
    /// The nodes that host the scheduler's replicas (placement driver): 1 or 3 names.
    /// Defaults to the first three nodes, or all of them if fewer.
    pub scheduler_nodes: Option<Vec<String>>,
    pub replication: ReplicationConfig,
    pub scheduler: SchedulerConfig,
    pub raft: RaftConfig,
    pub region: RegionConfig,
    pub raft_log_gc: RaftLogGcConfig,
    pub gc: GcConfig,
    pub resp: RespConfig,
}

/// One node: where clients and peers reach it, and where it keeps its data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    /// Address the Redis protocol listens on.
    pub resp_addr: SocketAddr,
    /// Address other nodes reach this node on (raft messages, scheduler calls).
    pub peer_addr: SocketAddr,
    pub data_dir: PathBuf,
}

/// How many copies of each region the cluster keeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// Replicas per region (the first region starts on min(max_replicas, nodes) stores).
    pub max_replicas: usize,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig { max_replicas: 3 }
    }
}

/// How nodes deal with the scheduler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// How long a starting node keeps trying to reach a scheduler leader before it gives up.
    pub startup_timeout_secs: u64,
    /// How long a store may go without a heartbeat before the scheduler counts it `Down`
    /// (after 20 s it is `Disconnected`).
    pub max_store_down_time_secs: u64,
    /// How often the scheduler's leader looks at the cluster and starts operators.
    pub schedule_interval_ms: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            startup_timeout_secs: 60,
            max_store_down_time_secs: crate::scheduler::service::DEFAULT_MAX_STORE_DOWN_SECS,
            schedule_interval_ms: 1_000,
        }
    }
}

/// Raft timing. All durations are in logical ticks of `tick_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    pub tick_ms: u64,
    pub election_timeout_ticks: u32,
    pub heartbeat_ticks: u32,
}

/// When a region splits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionConfig {
    /// A region whose data exceeds this size is split...
    pub max_size_bytes: u64,
    /// ...at the key where this much data lies to its left.
    pub split_size_bytes: u64,
    /// How often a leader compares its regions' estimated sizes with `max_size_bytes`.
    pub split_check_interval_secs: u64,
}

/// When the raft log is compacted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftLogGcConfig {
    pub tick_ms: u64,
    /// Compact once this many applied entries are in the log.
    pub count_limit: u64,
    /// Compact once the applied entries in the log take this many bytes.
    pub size_limit_bytes: u64,
}

/// Garbage collection of old MVCC versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    /// How often a round runs.
    pub interval_secs: u64,
    /// Versions are kept at least this long after they were overwritten.
    pub life_time_secs: u64,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            interval_secs: 60,
            life_time_secs: 600,
        }
    }
}

/// Limits of the Redis front end, with Redis's meanings and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespConfig {
    /// Connections beyond this are refused with `-ERR max number of clients reached`.
    pub max_clients: usize,
    /// Largest bulk string a client may send (Redis `proto-max-bulk-len`).
    pub max_bulk_bytes: usize,
    /// Most elements in one multibulk request.
    pub max_multibulk_len: usize,
    /// Longest inline command (a line typed in telnet).
    pub max_inline_bytes: usize,
    /// Most unparsed bytes buffered for one connection (Redis `client-query-buffer-limit`).
    pub max_query_buffer_bytes: usize,
    /// Most bytes of commands one `MULTI` may queue; past it the transaction is discarded
    /// (`EXEC` answers `EXECABORT`) and nothing more is kept for it.
    pub max_multi_queue_bytes: usize,
    /// How long shutdown waits for in-flight commands before closing connections anyway.
    pub shutdown_grace_ms: u64,
    /// A client that takes none of its pending replies for this long is disconnected (Redis's
    /// `client-output-buffer-limit` idea: a reader that stopped reading holds its replies,
    /// its task and its connection no longer than this). 0: never.
    pub output_stall_timeout_ms: u64,
    /// How many numbered databases there are (`SELECT 0` to `databases - 1`), 1 to 256.
    pub databases: usize,
    /// Redis's `requirepass`: when set, a client must `AUTH` (or `HELLO … AUTH`) before any
    /// other command. `None`: no password, every client is the default user.
    pub requirepass: Option<Password>,
    /// `standalone` (Redis without cluster support) or `emulated`: `CLUSTER SLOTS` and its
    /// kin describe the live nodes sharing the slots, for clients in Redis Cluster mode.
    pub cluster_mode: ClusterMode,
}

/// How the node answers Redis Cluster's commands (`resp.cluster_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterMode {
    /// As a Redis with cluster support disabled.
    #[default]
    Standalone,
    /// As a Redis Cluster whose slots the live nodes share evenly; any node serves any key,
    /// so nothing is ever redirected.
    Emulated,
}

/// A password, held only as its SHA-256 digest, so the text never sits in memory after the
/// configuration is read, never prints (`Debug` shows no digest either) and never serializes.
/// [`Password::matches`] compares digests in constant time, as Redis does, so neither the
/// password's bytes nor its length leak through how long a wrong guess takes.
#[derive(Clone, PartialEq, Eq)]
pub struct Password {
    digest: [u8; 32],
}

impl Password {
    pub fn new(text: &[u8]) -> Self {
        use sha2::Digest;
        Password {
            digest: sha2::Sha256::digest(text).into(),
        }
    }

    /// Whether `attempt` is this password.
    pub fn matches(&self, attempt: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(Password::new(attempt).digest.ct_eq(&self.digest))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Err(serde::de::Error::custom(
                "requirepass is empty; leave it out for no password",
            ));
        }
        Ok(Password::new(text.as_bytes()))
    }
}

impl Serialize for Password {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("a password is never written out"))
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nodes: vec![NodeConfig::default_single()],
            scheduler_nodes: None,
            replication: ReplicationConfig::default(),
            scheduler: SchedulerConfig::default(),
            raft: RaftConfig::default(),
            region: RegionConfig::default(),
            raft_log_gc: RaftLogGcConfig::default(),
            gc: GcConfig::default(),
            resp: RespConfig::default(),
        }
    }
}

impl NodeConfig {
    /// The node a bare `ferrokv` runs as.
    pub fn default_single() -> Self {
        NodeConfig {
            name: "ferrokv".to_string(),
            resp_addr: "127.0.0.1:6379".parse().expect("valid literal address"),
            peer_addr: "127.0.0.1:20160".parse().expect("valid literal address"),
            data_dir: PathBuf::from("ferrokv-data"),
        }
    }
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            tick_ms: 100,
            election_timeout_ticks: 10,
            heartbeat_ticks: 2,
        }
    }
}

impl Default for RegionConfig {
    fn default() -> Self {
        RegionConfig {
            max_size_bytes: 144 << 20,
            split_size_bytes: 96 << 20,
            split_check_interval_secs: 10,
        }
    }
}

impl Default for RaftLogGcConfig {
    fn default() -> Self {
        RaftLogGcConfig {
            tick_ms: 10_000,
            count_limit: 50_000,
            size_limit_bytes: 64 << 20,
        }
    }
}

impl Default for RespConfig {
    fn default() -> Self {
        RespConfig {
            max_clients: 10_000,
            max_bulk_bytes: 512 << 20,
            max_multibulk_len: i32::MAX as usize,
            max_inline_bytes: 64 << 10,
            max_query_buffer_bytes: 1 << 30,
            max_multi_queue_bytes: 256 << 20,
            shutdown_grace_ms: 5_000,
            output_stall_timeout_ms: 60_000,
            databases: 16,
            requirepass: None,
            cluster_mode: ClusterMode::Standalone,
        }
    }
}

impl ClusterConfig {
    /// Reads and validates a `cluster.yaml`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Invalid(message) => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        // Relative data directories are relative to the file, so the same file works from
        // any working directory.
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = config;
        for node in &mut config.nodes {
            if node.data_dir.is_relative() {
                node.data_dir = base.join(&node.data_dir);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses YAML text (without checking the file system; see [`ClusterConfig::validate`]).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: ClusterConfig =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate_shape()?;
        Ok(config)
    }

    /// Every check: the shape of the config and the data directories' parents.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_shape()?;
        for node in &self.nodes {
            let parent = match node.data_dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if !parent.is_dir() {
                return Err(ConfigError::Invalid(format!(
                    "node {:?}: the parent of data_dir {} does not exist; create it first",
                    node.name,
                    node.data_dir.display()
                )));
            }
        }
        Ok(())
    }

    /// Checks that need no file system: names, addresses, timings, limits.
    fn validate_shape(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        if self.nodes.is_empty() {
            return invalid("`nodes` is empty; list at least one node".into());
        }
        let mut names = HashMap::new();
        let mut addrs: HashMap<SocketAddr, String> = HashMap::new();
        let mut dirs: HashMap<&Path, &str> = HashMap::new();
        for node in &self.nodes {
            if node.name.is_empty() || node.name.contains(char::is_whitespace) {
                return invalid(format!(
                    "node name {:?} must be non-empty and without spaces",
                    node.name
                ));
            }
            if names.insert(node.name.as_str(), ()).is_some() {
                return invalid(format!("duplicate node name {:?}", node.name));
            }
            for (what, addr) in [("resp_addr", node.resp_addr), ("peer_addr", node.peer_addr)] {
                let me = format!("{}.{what}", node.name);
                if let Some(other) = clashing_addr(&addrs, addr) {
                    return invalid(format!("port clash: {me} {addr} is also {other}"));
                }
                addrs.insert(addr, me);
            }
            if let Some(other) = dirs.insert(&node.data_dir, &node.name) {
                return invalid(format!(
                    "nodes {other:?} and {:?} share data_dir {}",
                    node.name,
                    node.data_dir.display()
                ));
            }
        }
        if let Some(schedulers) = &self.scheduler_nodes {
            if schedulers.len() != 1 && schedulers.len() != 3 {
                return invalid(format!(
                    "scheduler_nodes lists {} nodes; list 1 or 3",
                    schedulers.len()
                ));
            }
            for (i, scheduler) in schedulers.iter().enumerate() {
                if !self.nodes.iter().any(|n| &n.name == scheduler) {
                    return invalid(format!("scheduler_nodes: {scheduler:?} is not one of the nodes"));
                }
                if schedulers[..i].contains(scheduler) {
                    return invalid(format!("scheduler_nodes names {scheduler:?} twice"));
                }
            }
        }
        if self.replication.max_replicas == 0 {
            return invalid("replication.max_replicas must be at least 1".into());
        }
        let raft = &self.raft;
        if raft.tick_ms == 0 {
            return invalid("raft.tick_ms must be at least 1".into());
        }
        if raft.heartbeat_ticks == 0 || raft.election_timeout_ticks <= raft.heartbeat_ticks {
            return invalid(format!(
                "raft.election_timeout_ticks ({}) must exceed raft.heartbeat_ticks ({}), which must be at least 1",
                raft.election_timeout_ticks, raft.heartbeat_ticks
            ));
        }
        if self.region.split_size_bytes == 0 || self.region.split_size_bytes > self.region.max_size_bytes {
            return invalid(format!(
                "region.split_size_bytes ({}) must be at least 1 and at most region.max_size_bytes ({})",
                self.region.split_size_bytes, self.region.max_size_bytes
            ));
        }
        if self.gc.interval_secs == 0 {
            return invalid("gc.interval_secs must be at least 1".into());
        }
        if self.raft_log_gc.tick_ms == 0 || self.raft_log_gc.count_limit == 0 {
            return invalid("raft_log_gc.tick_ms and raft_log_gc.count_limit must be at least 1".into());
        }
        let resp = &self.resp;
        for (field, value) in [
            ("max_clients", resp.max_clients),
            ("max_bulk_bytes", resp.max_bulk_bytes),
            ("max_multibulk_len", resp.max_multibulk_len),
            ("max_inline_bytes", resp.max_inline_bytes),
            ("max_query_buffer_bytes", resp.max_query_buffer_bytes),
            ("max_multi_queue_bytes", resp.max_multi_queue_bytes),
        ] {
            if value == 0 {
                return invalid(format!("resp.{field} must be at least 1"));
            }
        }
        if resp.max_query_buffer_bytes < resp.max_inline_bytes {
            return invalid("resp.max_query_buffer_bytes must be at least resp.max_inline_bytes".into());
        }
        if !(1..=crate::resp::db::MAX_DATABASES).contains(&resp.databases) {
            return invalid(format!(
                "resp.databases is {}; it must be 1 to {}",
                resp.databases,
                crate::resp::db::MAX_DATABASES
            ));
        }
        Ok(())
    }

    /// The nodes hosting the scheduler's replicas, in replica order (replica ids 1, 2, 3).
    pub fn scheduler_nodes(&self) -> Vec<&NodeConfig> {
        match &self.scheduler_nodes {
            Some(names) => names
                .iter()
                .filter_map(|name| self.nodes.iter().find(|n| &n.name == name))
                .collect(),
            None => self.nodes.iter().take(3).collect(),
        }
    }

    /// The node this process runs as: the one named, or the only one.
    pub fn node(&self, name: Option<&str>) -> Result<&NodeConfig, ConfigError> {
        match name {
            Some(name) => {
                self.nodes
                    .iter()
                    .find(|n| n.name == name)
                    .ok_or_else(|| ConfigError::UnknownNode {
                        name: name.to_string(),
                        known: self
                            .nodes
                            .iter()
                            .map(|n| n.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
            None if self.nodes.len() == 1 => Ok(&self.nodes[0]),
            None => Err(ConfigError::NodeNotChosen {
                count: self.nodes.len(),
            }),
        }
    }
}

/// The node field already using `addr`, counting a wildcard IP as clashing with any IP on the
/// same port.
fn clashing_addr(addrs: &HashMap<SocketAddr, String>, addr: SocketAddr) -> Option<&String> {
    addrs.iter().find_map(|(other, name)| {
        let same_port = other.port() == addr.port();
        let overlaps = other.ip() == addr.ip() || other.ip().is_unspecified() || addr.ip().is_unspecified();
        (same_port && overlaps).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_NODES: &str = include_str!("../cluster.yaml");

    fn invalid_message(text: &str) -> String {
        match ClusterConfig::parse(text) {
            Err(ConfigError::Invalid(message)) => message,
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_make_one_node_on_the_redis_port() {
        let config = ClusterConfig::default();
        config.validate().unwrap();
        let node = config.node(None).unwrap();
        assert_eq!(node.resp_addr.to_string(), "127.0.0.1:6379");
        assert_eq!(node.data_dir, PathBuf::from("ferrokv-data"));
        assert_eq!(config.resp.max_bulk_bytes, 512 * 1024 * 1024);
        assert_eq!(config.resp.max_clients, 10_000);
    }

    #[test]
    fn a_password_is_kept_as_a_digest_and_never_shown() {
        let text = "nodes:\n  - {name: a, resp_addr: 127.0.0.1:6379, peer_addr: 127.0.0.1:20160, data_dir: d}\n\
                    resp:\n  requirepass: s3cret-Pa55\n";
        let config = ClusterConfig::parse(text).unwrap();
        let password = config.resp.requirepass.as_ref().expect("a password");
        assert!(password.matches(b"s3cret-Pa55"));
        assert!(!password.matches(b"s3cret-Pa5"));
        assert!(!password.matches(b""));
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(
            serde_yaml::to_string(&config).is_err(),
            "a password never serializes"
        );
        let empty = text.replace("s3cret-Pa55", "''");
        assert!(
            ClusterConfig::parse(&empty).is_err(),
            "an empty password is refused"
        );
        assert_eq!(ClusterConfig::parse(THREE_NODES).unwrap().resp.requirepass, None);
    }

    #[test]
    fn shipped_example_parses_as_three_loopback_nodes() {
        let config = ClusterConfig::parse(THREE_NODES).unwrap();
        assert_eq!(config.nodes.len(), 3);
        assert!(config.nodes.iter().all(|n| n.resp_addr.ip().is_loopback()));
        assert_eq!(
            config.scheduler_nodes.as_deref(),
            Some(&["n1".to_string(), "n2".to_string(), "n3".to_string()][..])
        );
        assert_eq!(config.node(Some("n2")).unwrap().resp_addr.port(), 6380);
        assert!(matches!(
            config.node(None),
            Err(ConfigError::NodeNotChosen { count: 3 })
        ));
        assert!(matches!(
            config.node(Some("n9")),
            Err(ConfigError::UnknownNode { .. })
        ));
    }

    #[test]
    fn omitted_sections_take_defaults() {
        let config = ClusterConfig::parse(
            "nodes:\n  - {name: a, resp_addr: '127.0.0.1:7000', peer_addr: '127.0.0.1:7001', data_dir: d}\n",
        )
        .unwrap();
        assert_eq!(config.raft, RaftConfig::default());
        assert_eq!(config.resp, RespConfig::default());
    }

    #[test]
    fn unknown_field_is_named() {
        let message = invalid_message("resp:\n  max_client: 5\n");
        assert!(message.contains("unknown field `max_client`"), "{message}");
    }

    #[test]
    fn duplicate_node_name_is_rejected() {
        let text = "nodes:
  - {name: a, resp_addr: '127.0.0.1:7000', peer_addr: '127.0.0.1:7001', data_dir: d1}
  - {name: a, resp_addr: '127.0.0.1:7002', peer_addr: '127.0.0.1:7003', data_dir: d2}
";
        assert!(invalid_message(text).contains("duplicate node name \"a\""));
    }

    #[test]
    fn port_clash_names_both_fields() {
        let text = "nodes:
  - {name: a, resp_addr: '127.0.0.1:7000', peer_addr: '127.0.0.1:7001', data_dir: d1}
  - {name: b, resp_addr: '0.0.0.0:7001', peer_addr: '127.0.0.1:7003', data_dir: d2}
";
        let message = invalid_message(text);
        assert!(
            message.contains("port clash")
                && message.contains("b.resp_addr")
                && message.contains("a.peer_addr")
        );
        let same_node =
            "nodes:\n  - {name: a, resp_addr: '127.0.0.1:7000', peer_addr: '127.0.0.1:7000', data_dir: d}\n";
        assert!(invalid_message(same_node).contains("port clash"));
    }

    #[test]
    fn bad_timing_and_limits_are_rejected() {
        assert!(
            invalid_message("raft: {heartbeat_ticks: 10, election_timeout_ticks: 5}").contains("must exceed")
        );
        assert!(invalid_message("resp: {max_clients: 0}").contains("resp.max_clients"));
        assert!(
            invalid_message("region: {split_size_bytes: 10, max_size_bytes: 5}").contains("split_size_bytes")
        );
        assert!(invalid_message("scheduler_nodes: [nope]").contains("scheduler_nodes"));
        assert!(invalid_message("gc: {interval_secs: 0}").contains("gc.interval_secs"));
    }

    #[test]
    fn missing_data_dir_parent_is_rejected_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cluster.yaml");
        std::fs::write(
            &file,
            "nodes:\n  - {name: a, resp_addr: '127.0.0.1:7000', peer_addr: '127.0.0.1:7001', data_dir: no/such/d}\n",
        )
        .unwrap();
        let err = ClusterConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        // A data dir whose parent exists is fine, and is taken relative to the file.
        std::fs::write(
            &file,
            "nodes:\n  - {name: a, resp_addr: '127.0.0.1:7000', peer_addr: '127.0.0.1:7001', data_dir: d}\n",
        )
        .unwrap();
        let config = ClusterConfig::load(&file).unwrap();
        assert_eq!(config.nodes[0].data_dir, dir.path().join("d"));
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let err = ClusterConfig::load(Path::new("/no/such/cluster.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/no/such/cluster.yaml"), "{err}");
    }
}
