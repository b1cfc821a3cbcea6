//! Server commands: `COMMAND`, `INFO`, `FLUSHDB`, `FLUSHALL` (`DBSIZE` is a data command, in
//! `keys.rs`).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::connection::REDIS_VERSION;
use super::docs::{docs_entry, info_entry};
use super::keys::{KeyEraser, keyspace_counts};
use super::table::{COMMANDS, CommandSpec, lookup};
use crate::percolator::{Commit, TxnClient};
use crate::resp::args::is_keyword;
use crate::resp::db::{DbIndex, InDb};
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::glob::Glob;
use crate::resp::reply::Reply;
use crate::resp::server::Server;

/// Keys deleted per transaction by `FLUSHDB`.
const FLUSH_CHUNK_KEYS: usize = 1_000;

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all commands.",
    "COUNT",
    "    Return the total number of commands in this server.",
    "LIST",
    "    Return a list of all commands in this server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "HELP",
    "    Print this help.",
];

/// `COMMAND [COUNT | LIST | INFO name... | DOCS name... | HELP]`.
pub fn command(spec: &'static CommandSpec, args: &[Bytes]) -> CommandResult {
    if args.len() == 1 {
        return Ok(Reply::Array(COMMANDS.iter().map(info_entry).collect()));
    }
    let sub = spec.resolve_subcommand(args)?;
    let names = &args[2..];
    match sub.name {
        "command|count" => Ok(Reply::Integer(COMMANDS.len() as i64)),
        "command|list" => {
            if !names.is_empty() {
                // FILTERBY is not offered.
                return Err(CommandError::Syntax);
            }
            Ok(Reply::Array(
                COMMANDS.iter().map(|c| Reply::bulk_str(c.name)).collect(),
            ))
        }
        "command|info" => {
            if names.is_empty() {
                return Ok(Reply::Array(COMMANDS.iter().map(info_entry).collect()));
            }
            Ok(Reply::Array(
                names
                    .iter()
                    .map(|name| lookup(name).map_or(Reply::Nil, info_entry))
                    .collect(),
            ))
        }
        "command|docs" => {
            let specs: Vec<&CommandSpec> = if names.is_empty() {
                COMMANDS.iter().collect()
            } else {
                names.iter().filter_map(|name| lookup(name)).collect()
            };
            Ok(Reply::Map(specs.into_iter().map(docs_entry).collect()))
        }
        "command|help" => Ok(Reply::Array(
            COMMAND_HELP.iter().map(|line| Reply::Simple(line)).collect(),
        )),
        other => Err(CommandError::Other(format!(
            "{other} has no implementation (a command table error)"
        ))),
    }
}

/// `CONFIG GET | SET | RESETSTAT | HELP`. The configuration lives in `cluster.yaml` and is read
/// at start-up, so `CONFIG GET` reports it under Redis's parameter names and `CONFIG SET`
/// refuses.
/// `TIME`: this machine's clock, seconds and microseconds since the Unix epoch. (Expiry does
/// not use it: transactions decide expiry at their timestamp's clock, see `keyspace`.)
pub fn time() -> Reply {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(now.as_secs().to_string())),
        Reply::Bulk(Bytes::from(now.subsec_micros().to_string())),
    ])
}

/// `FUNCTION FLUSH [ASYNC|SYNC]` and `FUNCTION LIST [...]`, for a server with no functions.
pub fn function(spec: &'static CommandSpec, args: &[Bytes]) -> CommandResult {
    let sub = spec.resolve_subcommand(args)?;
    match sub.name {
        "function|flush" => match &args[2..] {
            [] => Ok(Reply::OK),
            [mode] if is_keyword(mode, "ASYNC") || is_keyword(mode, "SYNC") => Ok(Reply::OK),
            _ => Err(CommandError::Syntax),
        },
        // FUNCTION LIST: no libraries.
        _ => Ok(Reply::Array(Vec::new())),
    }
}

pub fn config<C: TxnClient>(spec: &'static CommandSpec, args: &[Bytes], server: &Server<C>) -> CommandResult {
    let sub = spec.resolve_subcommand(args)?;
    match sub.name {
        "config|get" => {
            let parameters = config_parameters(server);
            let mut pairs = Vec::new();
            for (name, value) in &parameters {
                if args[2..]
                    .iter()
                    .any(|pattern| Glob::new(&pattern.to_ascii_lowercase()).matches(name.as_bytes()))
                {
                    pairs.push((Reply::bulk_str(name), Reply::bulk_str(value)));
                }
            }
            Ok(Reply::Map(pairs))
        }
        "config|set" => {
            let pairs = &args[2..];
            if !pairs.len().is_multiple_of(2) {
                return Err(CommandError::WrongArity {
                    name: "config|set".into(),
                });
            }
            // All or nothing, as in Redis: check every pair before setting any.
            let mut accepted = Vec::new();
            let current = config_parameters(server);
            for pair in pairs.chunks(2) {
                let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
                // Setting a parameter to the value it has changes nothing: accepted.
                if current
                    .iter()
                    .any(|(n, v)| *n == name && v.as_bytes() == pair[1].as_ref())
                    && encoding_parameter(&name).is_none()
                {
                    continue;
                }
                let Some(canonical) = encoding_parameter(&name) else {
                    return Err(CommandError::Other(format!(
                        "CONFIG SET failed (possibly related to argument '{name}') - ferrokv \
                         changes only the encoding parameters at runtime; edit cluster.yaml and \
                         restart the node for the rest"
                    )));
                };
                if crate::resp::args::parse_i64(&pair[1]).is_none() {
                    return Err(CommandError::Other(format!(
                        "CONFIG SET failed (possibly related to argument '{name}') - argument \
                         couldn't be parsed into an integer"
                    )));
                }
                accepted.push((canonical, String::from_utf8_lossy(&pair[1]).into_owned()));
            }
            let mut settings = server.encoding_settings.lock();
            for (name, value) in accepted {
                settings.insert(name, value);
            }
            Ok(Reply::OK)
        }
        "config|resetstat" => {
            let stats = &server.stats;
            for counter in [
                &stats.connections_received,
                &stats.connections_rejected,
                &stats.commands_processed,
                &stats.keyspace_hits,
                &stats.keyspace_misses,
                &stats.net_input_bytes,
                &stats.net_output_bytes,
                &stats.error_replies,
            ] {
                counter.store(0, Ordering::Relaxed);
            }
            stats.commands.clear();
            stats.errors.clear();
            Ok(Reply::OK)
        }
        "config|help" => Ok(Reply::Array(
            [
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Not supported: ferrokv is configured by cluster.yaml.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|line| Reply::Simple(line))
            .collect(),
        )),
        other => Err(CommandError::Other(format!(
            "{other} has no implementation (a command table error)"
        ))),
    }
}

/// The configuration under Redis's parameter names, as `CONFIG GET` reports it.
/// Redis's parameters for its compact encodings, with their defaults. ferrokv keeps every
/// collection as one entry per element whatever its size, so these change nothing; `CONFIG
/// SET` accepts them (clients and test suites set them) and `CONFIG GET` echoes them back.
pub const ENCODING_PARAMETERS: &[(&str, &str)] = &[
    ("hash-max-listpack-entries", "128"),
    ("hash-max-listpack-value", "64"),
    ("list-max-listpack-size", "-2"),
    ("list-compress-depth", "0"),
    ("set-max-intset-entries", "512"),
    ("zset-max-listpack-entries", "128"),
    ("zset-max-listpack-value", "64"),
];

/// The name under which an encoding parameter is kept (Redis 7 takes the `ziplist` names as
/// aliases of the `listpack` ones), or `None` if `name` is not one.
fn encoding_parameter(name: &str) -> Option<&'static str> {
    let name = name.replace("ziplist", "listpack");
    ENCODING_PARAMETERS.iter().map(|(n, _)| *n).find(|n| *n == name)
}

fn config_parameters<C: TxnClient>(server: &Server<C>) -> Vec<(&'static str, String)> {
    let config = &server.config;
    let settings = server.encoding_settings.lock();
    let encodings = ENCODING_PARAMETERS.iter().flat_map(|(name, default)| {
        let value = settings
            .get(name)
            .cloned()
            .unwrap_or_else(|| (*default).to_string());
        let alias = ENCODING_ALIASES.iter().find(|(_, canonical)| canonical == name);
        std::iter::once((*name, value.clone())).chain(alias.map(|(alias, _)| (*alias, value)))
    });
    let mut parameters: Vec<(&'static str, String)> = encodings.collect();
    parameters.extend([
        ("bind", server.local_addr.ip().to_string()),
        ("port", server.local_addr.port().to_string()),
        ("databases", server.config.databases.to_string()),
        ("maxclients", config.max_clients.to_string()),
        ("proto-max-bulk-len", config.max_bulk_bytes.to_string()),
        (
            "client-query-buffer-limit",
            config.max_query_buffer_bytes.to_string(),
        ),
        ("dir", server.node.data_dir.display().to_string()),
        // Every acknowledged write is fsync'd; there is no RDB snapshotting or AOF.
        ("save", String::new()),
        ("appendonly", "no".into()),
        ("appendfsync", "always".into()),
        ("maxmemory", "0".into()),
        ("maxmemory-policy", "noeviction".into()),
        ("timeout", "0".into()),
        ("cluster-enabled", "no".into()),
    ]);
    parameters
}

/// The `ziplist` names `CONFIG GET` also answers for.
const ENCODING_ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
];

/// `FLUSHDB [ASYNC|SYNC]` (database `db`) and `FLUSHALL [ASYNC|SYNC]` (every database).
///
/// Keys are deleted in transactions that each look at most at [`FLUSH_CHUNK_KEYS`] keys (and
/// read no values), so memory stays bounded however many keys there are; a concurrent reader
/// may see the keyspace part-way through the flush. Collections' elements are left to garbage
/// collection, as after `DEL`.
pub async fn flush<C: TxnClient>(args: &[Bytes], db: DbIndex, server: &Server<C>) -> CommandResult {
    super::keys::KeyCommand::parse_flush(&args[1..])?;
    let databases = if args[0].eq_ignore_ascii_case(b"flushall") {
        0..server.config.databases
    } else {
        usize::from(db)..usize::from(db) + 1
    };
    for db in databases {
        let mut eraser = KeyEraser::default();
        loop {
            let mut txn = server.store.begin().await?;
            let mut step = eraser.clone();
            if !step
                .step(&mut InDb::new(&mut txn, db as DbIndex), FLUSH_CHUNK_KEYS)
                .await?
            {
                break;
            }
            match txn.commit().await {
                Ok(()) => eraser = step,
                // A writer raced the chunk: take a fresh snapshot of it and go on.
                Err(e) if e.is_retryable() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Reply::OK)
}

/// `INFO [section...]`.
pub async fn info<C: TxnClient>(args: &[Bytes], server: &Server<C>) -> CommandResult {
    const DEFAULT: &[&str] = &[
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "replication",
        "cpu",
        "modules",
        "errorstats",
        "cluster",
        "keyspace",
        "ferrokv",
    ];
    let mut sections: Vec<String> = Vec::new();
    if args.len() == 1 {
        sections.extend(DEFAULT.iter().map(|s| s.to_string()));
    }
    for arg in &args[1..] {
        let name = String::from_utf8_lossy(arg).to_ascii_lowercase();
        match name.as_str() {
            "default" => sections.extend(DEFAULT.iter().map(|s| s.to_string())),
            "all" | "everything" => {
                sections.extend(DEFAULT.iter().map(|s| s.to_string()));
                sections.push("commandstats".into());
            }
            _ => sections.push(name),
        }
    }
    let mut seen = std::collections::HashSet::new();
    sections.retain(|s| seen.insert(s.clone()));

    let mut text = String::new();
    for section in &sections {
        let body = match section.as_str() {
            "server" => server_section(server),
            "clients" => clients_section(server),
            "memory" => memory_section(),
            "persistence" => persistence_section(),
            "stats" => stats_section(server),
            "replication" => "role:master\r\nconnected_slaves:0\r\nmaster_repl_offset:0\r\n".to_string(),
            "cpu" => cpu_section(),
            "modules" => String::new(),
            "errorstats" => errorstats_section(server),
            "commandstats" => commandstats_section(server),
            "cluster" => format!(
                "cluster_enabled:{}\r\n",
                u8::from(server.config.cluster_mode == crate::config::ClusterMode::Emulated)
            ),
            "keyspace" => keyspace_section(server).await?,
            "ferrokv" => server
                .node
                .probe
                .fields()
                .await
                .into_iter()
                .map(|(name, value)| format!("{name}:{value}\r\n"))
                .collect(),
            _ => continue,
        };
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        let mut title = section.clone();
        title[..1].make_ascii_uppercase();
        let _ = write!(text, "# {title}\r\n{body}");
    }
    Ok(Reply::Verbatim(text))
}

fn server_section<C: TxnClient>(server: &Server<C>) -> String {
    let uptime = server.started.elapsed().as_secs();
    let executable = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let config_file = server
        .node
        .config_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let os = format!(
        "{} {} {}",
        read_trimmed("/proc/sys/kernel/ostype").unwrap_or_else(|| std::env::consts::OS.to_string()),
        read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
        std::env::consts::ARCH
    );
    format!(
        "redis_version:{REDIS_VERSION}\r\n\
         ferrokv_version:{}\r\n\
         redis_mode:{}\r\n\
         os:{os}\r\n\
         arch_bits:{}\r\n\
         multiplexing_api:epoll\r\n\
         process_id:{}\r\n\
         run_id:{}\r\n\
         tcp_port:{}\r\n\
         uptime_in_seconds:{uptime}\r\n\
         uptime_in_days:{}\r\n\
         executable:{executable}\r\n\
         config_file:{config_file}\r\n\
         ferrokv_node:{}\r\n\
         ferrokv_data_dir:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        match server.config.cluster_mode {
            crate::config::ClusterMode::Standalone => "standalone",
            crate::config::ClusterMode::Emulated => "cluster",
        },
        usize::BITS,
        std::process::id(),
        server.run_id,
        server.local_addr.port(),
        uptime / 86_400,
        server.node.node_name,
        server.node.data_dir.display(),
    )
}

fn clients_section<C: TxnClient>(server: &Server<C>) -> String {
    format!(
        "connected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\ntracking_clients:0\r\n",
        server.connected_clients(),
        server.config.max_clients,
        server.blocked.count()
    )
}

fn memory_section() -> String {
    // Resident set size from /proc, in pages.
    let rss_bytes = read_trimmed("/proc/self/statm")
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096);
    format!(
        "used_memory:{rss_bytes}\r\nused_memory_human:{}\r\nused_memory_rss:{rss_bytes}\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n",
        human_bytes(rss_bytes)
    )
}

fn persistence_section() -> String {
    // Every acknowledged write is already durable (synced write-ahead log); there is no RDB or
    // AOF to report, so both read as idle.
    "loading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\n\
     rdb_last_bgsave_status:ok\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\n\
     ferrokv_durability:fsync-per-commit\r\n"
        .to_string()
}

fn stats_section<C: TxnClient>(server: &Server<C>) -> String {
    let stats = &server.stats;
    let get = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    format!(
        "total_connections_received:{}\r\ntotal_commands_processed:{}\r\ntotal_net_input_bytes:{}\r\n\
         total_net_output_bytes:{}\r\nrejected_connections:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n\
         total_error_replies:{}\r\nexpired_keys:{}\r\n",
        get(&stats.connections_received),
        get(&stats.commands_processed),
        get(&stats.net_input_bytes),
        get(&stats.net_output_bytes),
        get(&stats.connections_rejected),
        get(&stats.keyspace_hits),
        get(&stats.keyspace_misses),
        get(&stats.error_replies),
        get(&stats.expired_keys),
    )
}

fn commandstats_section<C: TxnClient>(server: &Server<C>) -> String {
    let mut lines: Vec<String> = server
        .stats
        .commands
        .iter()
        .map(|entry| {
            let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            let stats = entry.value();
            let (calls, usec) = (get(&stats.calls), get(&stats.usec));
            let per_call = if calls == 0 { 0.0 } else { usec as f64 / calls as f64 };
            format!(
                "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
                entry.key(),
                get(&stats.rejected),
                get(&stats.failed)
            )
        })
        .collect();
    lines.sort();
    lines.concat()
}

fn errorstats_section<C: TxnClient>(server: &Server<C>) -> String {
    let mut lines: Vec<String> = server
        .stats
        .errors
        .iter()
        .map(|entry| {
            format!(
                "errorstat_{}:count={}\r\n",
                entry.key(),
                entry.value().load(Ordering::Relaxed)
            )
        })
        .collect();
    lines.sort();
    lines.concat()
}

fn cpu_section() -> String {
    // utime and stime are fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second).
    let ticks = read_trimmed("/proc/self/stat").and_then(|stat| {
        let after_name = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        Some((
            fields.get(11)?.parse::<f64>().ok()?,
            fields.get(12)?.parse::<f64>().ok()?,
        ))
    });
    let (user, system) = ticks.map_or((0.0, 0.0), |(u, s)| (u / 100.0, s / 100.0));
    format!("used_cpu_sys:{system:.6}\r\nused_cpu_user:{user:.6}\r\n")
}

async fn keyspace_section<C: TxnClient>(server: &Server<C>) -> CommandResult<String> {
    let mut txn = server.store.begin().await?;
    let mut section = String::new();
    for db in 0..server.config.databases {
        let counts = keyspace_counts(&mut InDb::new(&mut txn, db as DbIndex)).await?;
        if counts.keys > 0 {
            section.push_str(&format!(
                "db{db}:keys={},expires={},avg_ttl={}\r\n",
                counts.keys, counts.expires, counts.avg_ttl_ms
            ));
        }
    }
    Ok(section)
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn human_bytes(bytes: u64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", units[unit])
    }
}
