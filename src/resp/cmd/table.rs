//! The command table: what `COMMAND`, arity checks and `COMMAND DOCS` know about each command.
//!
//! Arity follows Redis: a positive arity is the exact argument count including the command
//! name; a negative one is a minimum. Key positions (`first_key`, `last_key`, `step`) use
//! Redis's convention (`last_key = -1` means the last argument). `syntax` is the argument list
//! as Redis documents it, from which `COMMAND DOCS` builds its argument tree (see `docs.rs`).

use bytes::Bytes;

use crate::resp::error::{CommandError, CommandResult};

/// Which code runs a command. Dispatch goes by this, never by the name across families: a
/// connection or server command is its own variant; a data command names its family, whose
/// parser takes the command apart (see `cmd::DataCommand`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    /// Acts on the session or the server; may be queued in `MULTI` and run after its commit.
    Local(Local),
    /// Opens, ends or guards a `MULTI`: runs at once, never queued.
    Control(Control),
    /// Reads or writes the keyspace, in a transaction.
    Data(Family),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Local {
    Ping,
    Echo,
    Quit,
    Select,
    Auth,
    Hello,
    Client,
    Command,
    Config,
    Function,
    Time,
    Info,
    Unwatch,
    Cluster,
    /// `READONLY`, `READWRITE`, `ASKING`: accepted in emulated cluster mode.
    ClusterFlag,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Multi,
    Exec,
    Discard,
    Watch,
}

/// The families of data commands, one module each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Strings,
    Hashes,
    Keys,
    /// Commands that span databases (`MOVE`, `COPY`, `SWAPDB`).
    Across,
    Expire,
    Lists,
    Sets,
    ZSets,
    /// `FLUSHDB`/`FLUSHALL`: in chunks on their own, in the transaction inside `MULTI`.
    Flush,
}

/// Everything the server knows about one command.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower case, as Redis reports it.
    pub name: &'static str,
    /// The code that runs it.
    pub handler: Handler,
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub complexity: &'static str,
    /// Arguments after the name (after the subcommand for a subcommand).
    pub syntax: &'static str,
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    /// Whether `argc` arguments (the name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        if self.arity >= 0 {
            argc == self.arity as usize
        } else {
            argc >= self.arity.unsigned_abs() as usize
        }
    }

    pub fn is_write(&self) -> bool {
        self.flags.contains(&"write")
    }

    /// The key arguments of a request for this command (`args[0]` is the name), from the key
    /// positions in the table.
    pub fn keys<'a>(&self, args: &'a [Bytes]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (first, step) = (self.first_key.max(0) as usize, self.step.max(1) as usize);
        let last = if self.last_key < 0 {
            args.len() as i64 + i64::from(self.last_key)
        } else {
            i64::from(self.last_key)
        };
        let end = if first == 0 {
            0
        } else {
            (last.max(0) as usize + 1).min(args.len())
        };
        args.get(first.min(end)..end)
            .unwrap_or_default()
            .iter()
            .step_by(step)
            .map(|arg| arg.as_ref())
    }

    /// The subcommand called `name` (any case).
    pub fn subcommand(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        self.subcommands.iter().find(|sub| {
            sub.name
                .rsplit('|')
                .next()
                .is_some_and(|n| name.eq_ignore_ascii_case(n.as_bytes()))
        })
    }

    /// The subcommand a container command (`CLIENT`, `CONFIG`...) was called with, its arity
    /// checked: Redis's errors for an unknown subcommand or a wrong argument count.
    pub fn resolve_subcommand(&self, args: &[Bytes]) -> CommandResult<&'static CommandSpec> {
        self.subcommand_called(&args[1], args.len())
    }

    /// [`Self::resolve_subcommand`] of a request of `argc` arguments (the name included)
    /// naming the subcommand `name`.
    pub fn subcommand_called(&self, name: &Bytes, argc: usize) -> CommandResult<&'static CommandSpec> {
        let sub = self
            .subcommand(name)
            .ok_or_else(|| CommandError::UnknownSubcommand {
                command: self.name,
                subcommand: name.clone(),
            })?;
        if !sub.arity_ok(argc) {
            return Err(CommandError::WrongArity {
                name: sub.name.to_string(),
            });
        }
        Ok(sub)
    }

    /// ACL categories, derived from the group and flags the way Redis assigns them.
    pub fn acl_categories(&self) -> Vec<&'static str> {
        let mut categories = Vec::new();
        if self.flags.contains(&"write") {
            categories.push("@write");
        } else if self.flags.contains(&"readonly") {
            categories.push("@read");
        }
        match self.group {
            "string" => categories.push("@string"),
            "hash" => categories.push("@hash"),
            "list" => categories.push("@list"),
            "set" => categories.push("@set"),
            "sortedset" => categories.push("@sortedset"),
            "generic" => categories.push("@keyspace"),
            "connection" => categories.push("@connection"),
            "server" => categories.push("@admin"),
            "transactions" => categories.push("@transaction"),
            _ => {}
        }
        categories.push(if self.flags.contains(&"fast") {
            "@fast"
        } else {
            "@slow"
        });
        categories
    }
}

/// Looks up a command by name, any case.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|spec| name.eq_ignore_ascii_case(spec.name.as_bytes()))
}

const NO_SUBCOMMANDS: &[CommandSpec] = &[];

macro_rules! command {
    ($name:literal, $handler:expr, $arity:expr, [$($flag:literal),*], $keys:expr, $group:literal,
     $since:literal, $summary:literal, $complexity:literal, $syntax:literal $(, $subs:expr)?) => {
        CommandSpec {
            name: $name,
            handler: $handler,
            arity: $arity,
            flags: &[$($flag),*],
            first_key: $keys.0,
            last_key: $keys.1,
            step: $keys.2,
            group: $group,
            since: $since,
            summary: $summary,
            complexity: $complexity,
            syntax: $syntax,
            subcommands: command!(@subs $($subs)?),
        }
    };
    (@subs) => { NO_SUBCOMMANDS };
    (@subs $subs:expr) => { $subs };
}

const NO_KEYS: (i32, i32, i32) = (0, 0, 0);
const ONE_KEY: (i32, i32, i32) = (1, 1, 1);
const ALL_KEYS: (i32, i32, i32) = (1, -1, 1);
const KEY_VALUE_PAIRS: (i32, i32, i32) = (1, -1, 2);
const TWO_KEYS: (i32, i32, i32) = (1, 2, 1);
/// Every argument but the last (a timeout).
const KEYS_THEN_ONE: (i32, i32, i32) = (1, -2, 1);

/// Every command ferrokv answers.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    // connection
    command!("ping", Handler::Local(Local::Ping), -1, ["fast"], NO_KEYS, "connection", "1.0.0",
        "Returns the server's liveliness response.", "O(1)", "[message]"),
    command!("echo", Handler::Local(Local::Echo), 2, ["fast"], NO_KEYS, "connection", "1.0.0",
        "Returns the given string.", "O(1)", "message"),
    command!("quit", Handler::Local(Local::Quit), -1, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], NO_KEYS, "connection", "1.0.0",
        "Closes the connection.", "O(1)", ""),
    command!("select", Handler::Local(Local::Select), 2, ["loading", "stale", "fast"], NO_KEYS, "connection", "1.0.0",
        "Changes the selected database.", "O(1)", "index:integer"),
    command!("auth", Handler::Local(Local::Auth), -2, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], NO_KEYS, "connection", "1.0.0",
        "Authenticates the connection.", "O(N) where N is the number of passwords defined for the user", "[username] password"),
    command!("hello", Handler::Local(Local::Hello), -1, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], NO_KEYS, "connection", "6.0.0",
        "Handshakes with the server.", "O(1)", "[protover:integer [AUTH username password] [SETNAME clientname]]"),
    command!("client", Handler::Local(Local::Client), -2, [], NO_KEYS, "connection", "2.4.0",
        "A container for client connection commands.", "Depends on subcommand.", "", CLIENT_SUBCOMMANDS),
    // transactions
    command!("multi", Handler::Control(Control::Multi), 1, ["noscript", "loading", "stale", "fast", "allow_busy"], NO_KEYS, "transactions", "1.2.0",
        "Starts a transaction.", "O(1)", ""),
    command!("exec", Handler::Control(Control::Exec), 1, ["noscript", "loading", "stale", "skip_slowlog"], NO_KEYS, "transactions", "1.2.0",
        "Executes all commands in a transaction.", "Depends on commands in the transaction", ""),
    command!("discard", Handler::Control(Control::Discard), 1, ["noscript", "loading", "stale", "fast", "allow_busy"], NO_KEYS, "transactions", "2.0.0",
        "Discards a transaction.", "O(N), when N is the number of queued commands", ""),
    command!("watch", Handler::Control(Control::Watch), -2, ["noscript", "loading", "stale", "fast", "allow_busy"], ALL_KEYS, "transactions", "2.2.0",
        "Monitors changes to keys to determine the execution of a transaction.", "O(1) for every key.", "key..."),
    command!("unwatch", Handler::Local(Local::Unwatch), 1, ["noscript", "loading", "stale", "fast", "allow_busy"], NO_KEYS, "transactions", "2.2.0",
        "Forgets about watched keys of a transaction.", "O(1)", ""),
    // server
    command!("command", Handler::Local(Local::Command), -1, ["loading", "stale"], NO_KEYS, "server", "2.8.13",
        "Returns detailed information about all commands.", "O(N) where N is the total number of commands", "", COMMAND_SUBCOMMANDS),
    command!("config", Handler::Local(Local::Config), -2, [], NO_KEYS, "server", "2.0.0",
        "A container for server configuration commands.", "Depends on subcommand.", "", CONFIG_SUBCOMMANDS),
    command!("function", Handler::Local(Local::Function), -2, [], NO_KEYS, "scripting", "7.0.0",
        "A container for function commands.", "Depends on subcommand.", "", FUNCTION_SUBCOMMANDS),
    command!("cluster", Handler::Local(Local::Cluster), -2, [], NO_KEYS, "cluster", "3.0.0",
        "A container for cluster administration commands: regions, stores, splits, leaders, peers.", "Depends on subcommand.", "", CLUSTER_SUBCOMMANDS),
    command!("readonly", Handler::Local(Local::ClusterFlag), 1, ["fast", "loading", "stale"], NO_KEYS, "cluster", "3.0.0",
        "Enables read-only queries for a connection to a Redis Cluster replica node.", "O(1)", ""),
    command!("readwrite", Handler::Local(Local::ClusterFlag), 1, ["fast", "loading", "stale"], NO_KEYS, "cluster", "3.0.0",
        "Enables read-write queries for a connection to a Redis Cluster replica node.", "O(1)", ""),
    command!("asking", Handler::Local(Local::ClusterFlag), 1, ["fast"], NO_KEYS, "cluster", "3.0.0",
        "Signals that a cluster client is following an -ASK redirect.", "O(1)", ""),
    command!("time", Handler::Local(Local::Time), 1, ["loading", "stale", "fast"], NO_KEYS, "server", "2.6.0",
        "Returns the server time.", "O(1)", ""),
    command!("info", Handler::Local(Local::Info), -1, ["loading", "stale"], NO_KEYS, "server", "1.0.0",
        "Returns information and statistics about the server.", "O(1)", "[section...]"),
    command!("dbsize", Handler::Data(Family::Keys), 1, ["readonly", "fast"], NO_KEYS, "server", "1.0.0",
        "Returns the number of keys in the database.", "O(N) where N is the number of keys", ""),
    command!("flushdb", Handler::Data(Family::Flush), -1, ["write"], NO_KEYS, "server", "1.0.0",
        "Removes all keys from the current database.", "O(N) where N is the number of keys", "[ASYNC|SYNC]"),
    command!("flushall", Handler::Data(Family::Flush), -1, ["write"], NO_KEYS, "server", "1.0.0",
        "Removes all keys from all databases.", "O(N) where N is the number of keys", "[ASYNC|SYNC]"),
    // string
    command!("get", Handler::Data(Family::Strings), 2, ["readonly", "fast"], ONE_KEY, "string", "1.0.0",
        "Returns the string value of a key.", "O(1)", "key"),
    command!("set", Handler::Data(Family::Strings), -3, ["write", "denyoom"], ONE_KEY, "string", "1.0.0",
        "Sets the string value of a key, ignoring its type.", "O(1)", "key value [NX|XX] [GET] [EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:integer|PXAT unix-time-milliseconds:integer|KEEPTTL]"),
    command!("setnx", Handler::Data(Family::Strings), 3, ["write", "denyoom", "fast"], ONE_KEY, "string", "1.0.0",
        "Sets the string value of a key only when the key doesn't exist.", "O(1)", "key value"),
    command!("getset", Handler::Data(Family::Strings), 3, ["write", "denyoom", "fast"], ONE_KEY, "string", "1.0.0",
        "Returns the previous string value of a key after setting it to a new value.", "O(1)", "key value"),
    command!("getdel", Handler::Data(Family::Strings), 2, ["write", "fast"], ONE_KEY, "string", "6.2.0",
        "Returns the string value of a key after deleting the key.", "O(1)", "key"),
    command!("getex", Handler::Data(Family::Strings), -2, ["write", "fast"], ONE_KEY, "string", "6.2.0",
        "Returns the string value of a key after setting its expiration time.", "O(1)",
        "key [EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:integer|PXAT unix-time-milliseconds:integer|PERSIST]"),
    command!("mget", Handler::Data(Family::Strings), -2, ["readonly", "fast"], ALL_KEYS, "string", "1.0.0",
        "Atomically returns the string values of one or more keys.", "O(N) where N is the number of keys to retrieve.", "key..."),
    command!("mset", Handler::Data(Family::Strings), -3, ["write", "denyoom"], KEY_VALUE_PAIRS, "string", "1.0.1",
        "Atomically creates or modifies the string values of one or more keys.", "O(N) where N is the number of keys to set.", "[key value]..."),
    command!("msetnx", Handler::Data(Family::Strings), -3, ["write", "denyoom"], KEY_VALUE_PAIRS, "string", "1.0.1",
        "Atomically modifies the string values of one or more keys only when all keys don't exist.", "O(N) where N is the number of keys to set.", "[key value]..."),
    command!("incr", Handler::Data(Family::Strings), 2, ["write", "denyoom", "fast"], ONE_KEY, "string", "1.0.0",
        "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "O(1)", "key"),
    command!("incrby", Handler::Data(Family::Strings), 3, ["write", "denyoom", "fast"], ONE_KEY, "string", "1.0.0",
        "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", "O(1)", "key increment:integer"),
    command!("decr", Handler::Data(Family::Strings), 2, ["write", "denyoom", "fast"], ONE_KEY, "string", "1.0.0",
        "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "O(1)", "key"),
    command!("decrby", Handler::Data(Family::Strings), 3, ["write", "denyoom", "fast"], ONE_KEY, "string", "1.0.0",
        "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", "O(1)", "key decrement:integer"),
    command!("incrbyfloat", Handler::Data(Family::Strings), 3, ["write", "denyoom", "fast"], ONE_KEY, "string", "2.6.0",
        "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", "O(1)", "key increment:double"),
    command!("append", Handler::Data(Family::Strings), 3, ["write", "denyoom", "fast"], ONE_KEY, "string", "2.0.0",
        "Appends a string to the value of a key. Creates the key if it doesn't exist.", "O(1)", "key value"),
    command!("strlen", Handler::Data(Family::Strings), 2, ["readonly", "fast"], ONE_KEY, "string", "2.2.0",
        "Returns the length of a string value.", "O(1)", "key"),
    command!("getrange", Handler::Data(Family::Strings), 4, ["readonly"], ONE_KEY, "string", "2.4.0",
        "Returns a substring of the string stored at a key.", "O(N) where N is the length of the returned string.", "key start:integer end:integer"),
    command!("setrange", Handler::Data(Family::Strings), 4, ["write", "denyoom"], ONE_KEY, "string", "2.2.0",
        "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", "O(1), not counting the time taken to copy the new string in place.", "key offset:integer value"),
    // hash
    command!("hset", Handler::Data(Family::Hashes), -4, ["write", "denyoom", "fast"], ONE_KEY, "hash", "2.0.0",
        "Creates or modifies the value of a field in a hash.", "O(1) for each field/value pair added", "key [field value]..."),
    command!("hsetnx", Handler::Data(Family::Hashes), 4, ["write", "denyoom", "fast"], ONE_KEY, "hash", "2.0.0",
        "Sets the value of a field in a hash only when the field doesn't exist.", "O(1)", "key field value"),
    command!("hmset", Handler::Data(Family::Hashes), -4, ["write", "denyoom", "fast"], ONE_KEY, "hash", "2.0.0",
        "Sets the values of multiple fields.", "O(N) where N is the number of fields being set.", "key [field value]..."),
    command!("hget", Handler::Data(Family::Hashes), 3, ["readonly", "fast"], ONE_KEY, "hash", "2.0.0",
        "Returns the value of a field in a hash.", "O(1)", "key field"),
    command!("hmget", Handler::Data(Family::Hashes), -3, ["readonly", "fast"], ONE_KEY, "hash", "2.0.0",
        "Returns the values of all fields in a hash.", "O(N) where N is the number of fields being requested.", "key field..."),
    command!("hdel", Handler::Data(Family::Hashes), -3, ["write", "fast"], ONE_KEY, "hash", "2.0.0",
        "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.",
        "O(N) where N is the number of fields to be removed.", "key field..."),
    command!("hlen", Handler::Data(Family::Hashes), 2, ["readonly", "fast"], ONE_KEY, "hash", "2.0.0",
        "Returns the number of fields in a hash.", "O(1)", "key"),
    command!("hexists", Handler::Data(Family::Hashes), 3, ["readonly", "fast"], ONE_KEY, "hash", "2.0.0",
        "Determines whether a field exists in a hash.", "O(1)", "key field"),
    command!("hgetall", Handler::Data(Family::Hashes), 2, ["readonly"], ONE_KEY, "hash", "2.0.0",
        "Returns all fields and values in a hash.", "O(N) where N is the size of the hash.", "key"),
    command!("hkeys", Handler::Data(Family::Hashes), 2, ["readonly"], ONE_KEY, "hash", "2.0.0",
        "Returns all fields in a hash.", "O(N) where N is the size of the hash.", "key"),
    command!("hvals", Handler::Data(Family::Hashes), 2, ["readonly"], ONE_KEY, "hash", "2.0.0",
        "Returns all values in a hash.", "O(N) where N is the size of the hash.", "key"),
    command!("hincrby", Handler::Data(Family::Hashes), 4, ["write", "denyoom", "fast"], ONE_KEY, "hash", "2.0.0",
        "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.",
        "O(1)", "key field increment:integer"),
    command!("hincrbyfloat", Handler::Data(Family::Hashes), 4, ["write", "denyoom", "fast"], ONE_KEY, "hash", "2.6.0",
        "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.",
        "O(1)", "key field increment:double"),
    command!("hrandfield", Handler::Data(Family::Hashes), -2, ["readonly"], ONE_KEY, "hash", "6.2.0",
        "Returns one or more random fields from a hash.", "O(N) here, with N the size of the hash.", "key [count:integer [WITHVALUES]]"),
    command!("hstrlen", Handler::Data(Family::Hashes), 3, ["readonly", "fast"], ONE_KEY, "hash", "3.2.0",
        "Returns the length of the value of a field.", "O(1)", "key field"),
    command!("hscan", Handler::Data(Family::Hashes), -3, ["readonly"], ONE_KEY, "hash", "2.8.0",
        "Iterates over fields and values of a hash.", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.", "key cursor:integer [MATCH pattern] [COUNT count:integer]"),
    // list
    command!("lpush", Handler::Data(Family::Lists), -3, ["write", "denyoom", "fast"], ONE_KEY, "list", "1.0.0",
        "Prepends one or more elements to a list. Creates the key if it doesn't exist.", "O(1) for each element added", "key element..."),
    command!("rpush", Handler::Data(Family::Lists), -3, ["write", "denyoom", "fast"], ONE_KEY, "list", "1.0.0",
        "Appends one or more elements to a list. Creates the key if it doesn't exist.", "O(1) for each element added", "key element..."),
    command!("lpushx", Handler::Data(Family::Lists), -3, ["write", "denyoom", "fast"], ONE_KEY, "list", "2.2.0",
        "Prepends one or more elements to a list only when the list exists.", "O(1) for each element added", "key element..."),
    command!("rpushx", Handler::Data(Family::Lists), -3, ["write", "denyoom", "fast"], ONE_KEY, "list", "2.2.0",
        "Appends an element to a list only when the list exists.", "O(1) for each element added", "key element..."),
    command!("lpop", Handler::Data(Family::Lists), -2, ["write", "fast"], ONE_KEY, "list", "1.0.0",
        "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.", "O(N) where N is the number of elements returned", "key [count:integer]"),
    command!("rpop", Handler::Data(Family::Lists), -2, ["write", "fast"], ONE_KEY, "list", "1.0.0",
        "Returns and removes the last elements of a list. Deletes the list if the last element was popped.", "O(N) where N is the number of elements returned", "key [count:integer]"),
    command!("llen", Handler::Data(Family::Lists), 2, ["readonly", "fast"], ONE_KEY, "list", "1.0.0",
        "Returns the length of a list.", "O(1)", "key"),
    command!("lrange", Handler::Data(Family::Lists), 4, ["readonly"], ONE_KEY, "list", "1.0.0",
        "Returns a range of elements from a list.", "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range.", "key start:integer stop:integer"),
    command!("lindex", Handler::Data(Family::Lists), 3, ["readonly"], ONE_KEY, "list", "1.0.0",
        "Returns an element from a list by its index.", "O(1) here: one entry per element", "key index:integer"),
    command!("lset", Handler::Data(Family::Lists), 4, ["write", "denyoom"], ONE_KEY, "list", "1.0.0",
        "Sets the value of an element in a list by its index.", "O(1) here: one entry per element", "key index:integer element"),
    command!("lrem", Handler::Data(Family::Lists), 4, ["write"], ONE_KEY, "list", "1.0.0",
        "Removes elements from a list. Deletes the list if the last element was removed.", "O(N+M) where N is the length of the list and M is the number of elements removed.", "key count:integer element"),
    command!("ltrim", Handler::Data(Family::Lists), 4, ["write"], ONE_KEY, "list", "1.0.0",
        "Removes elements from both ends a list. Deletes the list if all elements were trimmed.", "O(N) where N is the number of elements to be removed by the operation.", "key start:integer stop:integer"),
    command!("linsert", Handler::Data(Family::Lists), 5, ["write", "denyoom"], ONE_KEY, "list", "2.2.0",
        "Inserts an element before or after another element in a list.", "O(N) where N is the number of elements to traverse before seeing the value pivot.", "key BEFORE|AFTER pivot element"),
    command!("lpos", Handler::Data(Family::Lists), -3, ["readonly"], ONE_KEY, "list", "6.0.6",
        "Returns the index of matching elements in a list.", "O(N) where N is the number of elements in the list, for the average case.", "key element [RANK rank:integer] [COUNT num-matches:integer] [MAXLEN len:integer]"),
    command!("lmove", Handler::Data(Family::Lists), 5, ["write", "denyoom"], TWO_KEYS, "list", "6.2.0",
        "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.", "O(1)", "source destination LEFT|RIGHT LEFT|RIGHT"),
    command!("rpoplpush", Handler::Data(Family::Lists), 3, ["write", "denyoom"], TWO_KEYS, "list", "1.2.0",
        "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.", "O(1)", "source destination"),
    command!("lmpop", Handler::Data(Family::Lists), -4, ["write", "movablekeys"], NO_KEYS, "list", "7.0.0",
        "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.", "O(N+M) where N is the number of provided keys and M is the number of elements returned.", "numkeys:integer key... LEFT|RIGHT [COUNT count:integer]"),
    command!("sort", Handler::Data(Family::Lists), -2, ["write", "denyoom", "movablekeys"], ONE_KEY, "generic", "1.0.0",
        "Sorts the elements in a list or a set. ferrokv: without BY and GET patterns.", "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements.", "key [LIMIT offset:integer count:integer] [ASC|DESC] [ALPHA] [STORE destination]"),
    command!("sort_ro", Handler::Data(Family::Lists), -2, ["readonly", "movablekeys"], ONE_KEY, "generic", "7.0.0",
        "Returns the sorted elements of a list or a set. ferrokv: without BY and GET patterns.", "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements.", "key [LIMIT offset:integer count:integer] [ASC|DESC] [ALPHA]"),
    command!("blpop", Handler::Data(Family::Lists), -3, ["write", "noscript", "blocking"], KEYS_THEN_ONE, "list", "2.0.0",
        "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", "O(N) where N is the number of provided keys.", "key... timeout:double"),
    command!("brpop", Handler::Data(Family::Lists), -3, ["write", "noscript", "blocking"], KEYS_THEN_ONE, "list", "2.0.0",
        "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", "O(N) where N is the number of provided keys.", "key... timeout:double"),
    command!("brpoplpush", Handler::Data(Family::Lists), 4, ["write", "denyoom", "noscript", "blocking"], TWO_KEYS, "list", "2.2.0",
        "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.", "O(1)", "source destination timeout:double"),
    command!("blmove", Handler::Data(Family::Lists), 6, ["write", "denyoom", "noscript", "blocking"], TWO_KEYS, "list", "6.2.0",
        "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.", "O(1)", "source destination LEFT|RIGHT LEFT|RIGHT timeout:double"),
    command!("blmpop", Handler::Data(Family::Lists), -5, ["write", "blocking", "movablekeys"], NO_KEYS, "list", "7.0.0",
        "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", "O(N+M) where N is the number of provided keys and M is the number of elements returned.", "timeout:double numkeys:integer key... LEFT|RIGHT [COUNT count:integer]"),
    // set
    command!("sadd", Handler::Data(Family::Sets), -3, ["write", "denyoom", "fast"], ONE_KEY, "set", "1.0.0",
        "Adds one or more members to a set. Creates the key if it doesn't exist.", "O(1) for each element added", "key member..."),
    command!("srem", Handler::Data(Family::Sets), -3, ["write", "fast"], ONE_KEY, "set", "1.0.0",
        "Removes one or more members from a set. Deletes the set if the last member was removed.", "O(N) where N is the number of members to be removed.", "key member..."),
    command!("smembers", Handler::Data(Family::Sets), 2, ["readonly"], ONE_KEY, "set", "1.0.0",
        "Returns all members of a set.", "O(N) where N is the set cardinality.", "key"),
    command!("sismember", Handler::Data(Family::Sets), 3, ["readonly", "fast"], ONE_KEY, "set", "1.0.0",
        "Determines whether a member belongs to a set.", "O(1)", "key member"),
    command!("smismember", Handler::Data(Family::Sets), -3, ["readonly", "fast"], ONE_KEY, "set", "6.2.0",
        "Determines whether multiple members belong to a set.", "O(N) where N is the number of elements being checked for membership", "key member..."),
    command!("scard", Handler::Data(Family::Sets), 2, ["readonly", "fast"], ONE_KEY, "set", "1.0.0",
        "Returns the number of members in a set.", "O(1)", "key"),
    command!("spop", Handler::Data(Family::Sets), -2, ["write", "fast"], ONE_KEY, "set", "1.0.0",
        "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.", "Without the count argument O(1), otherwise O(N) where N is the value of the passed count.", "key [count:integer]"),
    command!("srandmember", Handler::Data(Family::Sets), -2, ["readonly"], ONE_KEY, "set", "1.0.0",
        "Get one or multiple random members from a set", "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count.", "key [count:integer]"),
    command!("smove", Handler::Data(Family::Sets), 4, ["write", "fast"], TWO_KEYS, "set", "1.0.0",
        "Moves a member from one set to another.", "O(1)", "source destination member"),
    command!("sinter", Handler::Data(Family::Sets), -2, ["readonly"], ALL_KEYS, "set", "1.0.0",
        "Returns the intersect of multiple sets.", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.", "key..."),
    command!("sintercard", Handler::Data(Family::Sets), -3, ["readonly", "movablekeys"], NO_KEYS, "set", "7.0.0",
        "Returns the number of members of the intersect of multiple sets.", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.", "numkeys:integer key... [LIMIT limit:integer]"),
    command!("sunion", Handler::Data(Family::Sets), -2, ["readonly"], ALL_KEYS, "set", "1.0.0",
        "Returns the union of multiple sets.", "O(N) where N is the total number of elements in all given sets.", "key..."),
    command!("sdiff", Handler::Data(Family::Sets), -2, ["readonly"], ALL_KEYS, "set", "1.0.0",
        "Returns the difference of multiple sets.", "O(N) where N is the total number of elements in all given sets.", "key..."),
    command!("sinterstore", Handler::Data(Family::Sets), -3, ["write", "denyoom"], ALL_KEYS, "set", "1.0.0",
        "Stores the intersect of multiple sets in a key.", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.", "destination key..."),
    command!("sunionstore", Handler::Data(Family::Sets), -3, ["write", "denyoom"], ALL_KEYS, "set", "1.0.0",
        "Stores the union of multiple sets in a key.", "O(N) where N is the total number of elements in all given sets.", "destination key..."),
    command!("sdiffstore", Handler::Data(Family::Sets), -3, ["write", "denyoom"], ALL_KEYS, "set", "1.0.0",
        "Stores the difference of multiple sets in a key.", "O(N) where N is the total number of elements in all given sets.", "destination key..."),
    command!("sscan", Handler::Data(Family::Sets), -3, ["readonly"], ONE_KEY, "set", "2.8.0",
        "Iterates over members of a set.", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.", "key cursor:integer [MATCH pattern] [COUNT count:integer]"),
    // sorted set
    command!("zadd", Handler::Data(Family::ZSets), -4, ["write", "denyoom", "fast"], ONE_KEY, "sortedset", "1.2.0",
        "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", "O(log(N)) for each item added, where N is the number of elements in the sorted set.", "key [NX|XX] [GT|LT] [CH] [INCR] score:double member [score:double member ...]"),
    command!("zincrby", Handler::Data(Family::ZSets), 4, ["write", "denyoom", "fast"], ONE_KEY, "sortedset", "1.2.0",
        "Increments the score of a member in a sorted set.", "O(log(N)) where N is the number of elements in the sorted set.", "key increment:integer member"),
    command!("zrem", Handler::Data(Family::ZSets), -3, ["write", "fast"], ONE_KEY, "sortedset", "1.2.0",
        "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", "O(M*log(N)) with N being the number of elements in the sorted set and M the number of elements to be removed.", "key member..."),
    command!("zscore", Handler::Data(Family::ZSets), 3, ["readonly", "fast"], ONE_KEY, "sortedset", "1.2.0",
        "Returns the score of a member in a sorted set.", "O(1)", "key member"),
    command!("zmscore", Handler::Data(Family::ZSets), -3, ["readonly", "fast"], ONE_KEY, "sortedset", "6.2.0",
        "Returns the score of one or more members in a sorted set.", "O(N) where N is the number of members being requested.", "key member..."),
    command!("zcard", Handler::Data(Family::ZSets), 2, ["readonly", "fast"], ONE_KEY, "sortedset", "1.2.0",
        "Returns the number of members in a sorted set.", "O(1)", "key"),
    command!("zcount", Handler::Data(Family::ZSets), 4, ["readonly", "fast"], ONE_KEY, "sortedset", "2.0.0",
        "Returns the count of members in a sorted set that have scores within a range.", "O(M) here, with M the number of members counted (no order statistics index)", "key min:double max:double"),
    command!("zlexcount", Handler::Data(Family::ZSets), 4, ["readonly", "fast"], ONE_KEY, "sortedset", "2.8.9",
        "Returns the number of members in a sorted set within a lexicographical range.", "O(M) here, with M the number of members counted (no order statistics index)", "key min max"),
    command!("zrange", Handler::Data(Family::ZSets), -4, ["readonly"], ONE_KEY, "sortedset", "1.2.0",
        "Returns members in a sorted set within a range of indexes.", "O(M) for a range by score or lex, with M the number of elements returned; by rank, O(K+M) with K the distance from the nearer end.", "key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset:integer count:integer] [WITHSCORES]"),
    command!("zrangestore", Handler::Data(Family::ZSets), -5, ["write", "denyoom"], TWO_KEYS, "sortedset", "6.2.0",
        "Stores a range of members from sorted set in a key.", "O(M) for a range by score or lex, with M the number of elements stored; by rank, O(K+M) with K the distance from the nearer end.", "dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset:integer count:integer]"),
    command!("zrevrange", Handler::Data(Family::ZSets), -4, ["readonly"], ONE_KEY, "sortedset", "1.2.0",
        "Returns members in a sorted set within a range of indexes in reverse order.", "O(K+M) with K the distance from the nearer end and M the number of elements returned.", "key start:integer stop:integer [WITHSCORES]"),
    command!("zrangebyscore", Handler::Data(Family::ZSets), -4, ["readonly"], ONE_KEY, "sortedset", "1.0.5",
        "Returns members in a sorted set within a range of scores.", "O(M) with M the number of elements returned (and skipped by LIMIT).", "key min:double max:double [WITHSCORES] [LIMIT offset:integer count:integer]"),
    command!("zrevrangebyscore", Handler::Data(Family::ZSets), -4, ["readonly"], ONE_KEY, "sortedset", "2.2.0",
        "Returns members in a sorted set within a range of scores in reverse order.", "O(M) with M the number of elements returned (and skipped by LIMIT).", "key max:double min:double [WITHSCORES] [LIMIT offset:integer count:integer]"),
    command!("zrangebylex", Handler::Data(Family::ZSets), -4, ["readonly"], ONE_KEY, "sortedset", "2.8.9",
        "Returns members in a sorted set within a lexicographical range.", "O(M) with M the number of elements in the range.", "key min max [LIMIT offset:integer count:integer]"),
    command!("zrevrangebylex", Handler::Data(Family::ZSets), -4, ["readonly"], ONE_KEY, "sortedset", "2.8.9",
        "Returns members in a sorted set within a lexicographical range in reverse order.", "O(M) with M the number of elements in the range.", "key max min [LIMIT offset:integer count:integer]"),
    command!("zrank", Handler::Data(Family::ZSets), 3, ["readonly", "fast"], ONE_KEY, "sortedset", "2.0.0",
        "Returns the index of a member in a sorted set ordered by ascending scores.", "O(K) here, with K the distance from the nearer end (no order statistics index)", "key member"),
    command!("zrevrank", Handler::Data(Family::ZSets), 3, ["readonly", "fast"], ONE_KEY, "sortedset", "2.0.0",
        "Returns the index of a member in a sorted set ordered by descending scores.", "O(K) here, with K the distance from the nearer end (no order statistics index)", "key member"),
    command!("zpopmin", Handler::Data(Family::ZSets), -2, ["write", "fast"], ONE_KEY, "sortedset", "5.0.0",
        "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", "O(M) with M being the number of elements popped.", "key [count:integer]"),
    command!("zpopmax", Handler::Data(Family::ZSets), -2, ["write", "fast"], ONE_KEY, "sortedset", "5.0.0",
        "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", "O(M) with M being the number of elements popped.", "key [count:integer]"),
    command!("zmpop", Handler::Data(Family::ZSets), -4, ["write", "movablekeys"], NO_KEYS, "sortedset", "7.0.0",
        "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.", "O(K) + O(M) where K is the number of provided keys and M the number of elements popped.", "numkeys:integer key... MIN|MAX [COUNT count:integer]"),
    command!("bzpopmin", Handler::Data(Family::ZSets), -3, ["write", "noscript", "blocking", "fast"], KEYS_THEN_ONE, "sortedset", "5.0.0",
        "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", "O(1) per key", "key... timeout:double"),
    command!("bzpopmax", Handler::Data(Family::ZSets), -3, ["write", "noscript", "blocking", "fast"], KEYS_THEN_ONE, "sortedset", "5.0.0",
        "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped.", "O(1) per key", "key... timeout:double"),
    command!("bzmpop", Handler::Data(Family::ZSets), -5, ["write", "blocking", "movablekeys"], NO_KEYS, "sortedset", "7.0.0",
        "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", "O(K) + O(M) where K is the number of provided keys and M the number of elements popped.", "timeout:double numkeys:integer key... MIN|MAX [COUNT count:integer]"),
    command!("zunion", Handler::Data(Family::ZSets), -3, ["readonly", "movablekeys"], NO_KEYS, "sortedset", "6.2.0",
        "Returns the union of multiple sorted sets.", "O(N)+O(M*log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set.", "numkeys:integer key... [WEIGHTS weight:integer...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]"),
    command!("zinter", Handler::Data(Family::ZSets), -3, ["readonly", "movablekeys"], NO_KEYS, "sortedset", "6.2.0",
        "Returns the intersect of multiple sorted sets.", "O(N) with N the sum of the sizes of the input sorted sets, plus O(M*log(M)) to sort the M results.", "numkeys:integer key... [WEIGHTS weight:integer...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]"),
    command!("zdiff", Handler::Data(Family::ZSets), -3, ["readonly", "movablekeys"], NO_KEYS, "sortedset", "6.2.0",
        "Returns the difference between multiple sorted sets.", "O(N) with N the sum of the sizes of the input sorted sets, plus O(M*log(M)) to sort the M results.", "numkeys:integer key... [WITHSCORES]"),
    command!("zunionstore", Handler::Data(Family::ZSets), -4, ["write", "denyoom", "movablekeys"], ONE_KEY, "sortedset", "2.0.0",
        "Stores the union of multiple sorted sets in a key.", "O(N)+O(M log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set.", "destination numkeys:integer key... [WEIGHTS weight:integer...] [AGGREGATE SUM|MIN|MAX]"),
    command!("zinterstore", Handler::Data(Family::ZSets), -4, ["write", "denyoom", "movablekeys"], ONE_KEY, "sortedset", "2.0.0",
        "Stores the intersect of multiple sorted sets in a key.", "O(N) with N the sum of the sizes of the input sorted sets, plus O(M*log(M)) to sort the M results.", "destination numkeys:integer key... [WEIGHTS weight:integer...] [AGGREGATE SUM|MIN|MAX]"),
    command!("zdiffstore", Handler::Data(Family::ZSets), -4, ["write", "denyoom", "movablekeys"], ONE_KEY, "sortedset", "6.2.0",
        "Stores the difference of multiple sorted sets in a key.", "O(N) with N the sum of the sizes of the input sorted sets, plus O(M*log(M)) to sort the M results.", "destination numkeys:integer key..."),
    command!("zintercard", Handler::Data(Family::ZSets), -3, ["readonly", "movablekeys"], NO_KEYS, "sortedset", "7.0.0",
        "Returns the number of members of the intersect of multiple sorted sets.", "O(N) with N the sum of the sizes of the input sorted sets.", "numkeys:integer key... [LIMIT limit:integer]"),
    command!("zremrangebyscore", Handler::Data(Family::ZSets), 4, ["write"], ONE_KEY, "sortedset", "1.2.0",
        "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", "O(M) with M the number of elements removed.", "key min:double max:double"),
    command!("zremrangebyrank", Handler::Data(Family::ZSets), 4, ["write"], ONE_KEY, "sortedset", "2.0.0",
        "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", "O(K+M) with K the distance from the nearer end and M the number of elements removed.", "key start:integer stop:integer"),
    command!("zremrangebylex", Handler::Data(Family::ZSets), 4, ["write"], ONE_KEY, "sortedset", "2.8.9",
        "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.", "O(M) with M the number of elements removed.", "key min max"),
    command!("zrandmember", Handler::Data(Family::ZSets), -2, ["readonly"], ONE_KEY, "sortedset", "6.2.0",
        "Returns one or more random members from a sorted set.", "O(N) here, with N the size of the sorted set.", "key [count:integer [WITHSCORES]]"),
    command!("zscan", Handler::Data(Family::ZSets), -3, ["readonly"], ONE_KEY, "sortedset", "2.8.0",
        "Iterates over members and scores of a sorted set.", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.", "key cursor:integer [MATCH pattern] [COUNT count:integer]"),
    // generic
    command!("del", Handler::Data(Family::Keys), -2, ["write"], ALL_KEYS, "generic", "1.0.0",
        "Deletes one or more keys.", "O(N) where N is the number of keys that will be removed.", "key..."),
    command!("exists", Handler::Data(Family::Keys), -2, ["readonly", "fast"], ALL_KEYS, "generic", "1.0.0",
        "Determines whether one or more keys exist.", "O(N) where N is the number of keys to check.", "key..."),
    command!("type", Handler::Data(Family::Keys), 2, ["readonly", "fast"], ONE_KEY, "generic", "1.0.0",
        "Determines the type of value stored at a key.", "O(1)", "key"),
    command!("rename", Handler::Data(Family::Keys), 3, ["write"], TWO_KEYS, "generic", "1.0.0",
        "Renames a key and overwrites the destination.", "O(1) for a string; O(N) for a hash or list, whose N parts move", "key newkey"),
    command!("renamenx", Handler::Data(Family::Keys), 3, ["write", "fast"], TWO_KEYS, "generic", "1.0.0",
        "Renames a key only when the target key name doesn't exist.", "O(1) for a string; O(N) for a hash or list, whose N parts move", "key newkey"),
    command!("copy", Handler::Data(Family::Across), -3, ["write", "denyoom"], TWO_KEYS, "generic", "6.2.0",
        "Copies the value of a key to a new key.", "O(1) for a string; O(N) for a collection, whose N parts are copied", "source destination [DB destination-db:integer] [REPLACE]"),
    command!("move", Handler::Data(Family::Across), 3, ["write", "fast"], ONE_KEY, "generic", "1.0.0",
        "Moves a key to another database.", "O(1) for a string; O(N) for a collection, whose N parts are copied", "key db:integer"),
    command!("swapdb", Handler::Data(Family::Across), 3, ["write", "fast"], NO_KEYS, "server", "4.0.0",
        "Swaps two Redis databases.", "O(N) here, with N the entries of both databases", "index1:integer index2:integer"),
    command!("touch", Handler::Data(Family::Keys), -2, ["readonly", "fast"], ALL_KEYS, "generic", "3.2.1",
        "Returns the number of existing keys out of those specified (there are no access times to update).", "O(N) where N is the number of keys that will be touched.", "key..."),
    command!("randomkey", Handler::Data(Family::Keys), 1, ["readonly"], NO_KEYS, "generic", "1.0.0",
        "Returns a random key name from the database.", "O(1)", ""),
    command!("object", Handler::Data(Family::Keys), -2, [], NO_KEYS, "generic", "2.2.3",
        "A container for object introspection commands.", "Depends on subcommand.", "", OBJECT_SUBCOMMANDS),
    command!("dump", Handler::Data(Family::Keys), 2, ["readonly"], ONE_KEY, "generic", "2.6.0",
        "Returns a serialized representation of the value stored at a key.", "O(N) where N is the number of elements of the value", "key"),
    command!("restore", Handler::Data(Family::Keys), -4, ["write", "denyoom"], ONE_KEY, "generic", "2.6.0",
        "Creates a key from the serialized representation of a value.", "O(N) where N is the number of elements of the value", "key ttl:integer serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds:integer] [FREQ frequency:integer]"),
    command!("memory", Handler::Data(Family::Keys), -2, [], NO_KEYS, "server", "4.0.0",
        "A container for memory diagnostics commands.", "Depends on subcommand.", "", MEMORY_SUBCOMMANDS),
    command!("unlink", Handler::Data(Family::Keys), -2, ["write", "fast"], ALL_KEYS, "generic", "4.0.0",
        "Asynchronously deletes one or more keys.", "O(1) for each key removed.", "key..."),
    // expiry
    command!("ttl", Handler::Data(Family::Expire), 2, ["readonly", "fast"], ONE_KEY, "generic", "1.0.0",
        "Returns the expiration time in seconds of a key.", "O(1)", "key"),
    command!("pttl", Handler::Data(Family::Expire), 2, ["readonly", "fast"], ONE_KEY, "generic", "2.6.0",
        "Returns the expiration time in milliseconds of a key.", "O(1)", "key"),
    command!("expiretime", Handler::Data(Family::Expire), 2, ["readonly", "fast"], ONE_KEY, "generic", "7.0.0",
        "Returns the expiration time of a key as a Unix timestamp.", "O(1)", "key"),
    command!("pexpiretime", Handler::Data(Family::Expire), 2, ["readonly", "fast"], ONE_KEY, "generic", "7.0.0",
        "Returns the expiration time of a key as a Unix milliseconds timestamp.", "O(1)", "key"),
    command!("persist", Handler::Data(Family::Expire), 2, ["write", "fast"], ONE_KEY, "generic", "2.2.0",
        "Removes the expiration time of a key.", "O(1)", "key"),
    command!("expire", Handler::Data(Family::Expire), -3, ["write", "fast"], ONE_KEY, "generic", "1.0.0",
        "Sets the expiration time of a key in seconds.", "O(1)", "key seconds:integer [NX|XX|GT|LT]"),
    command!("pexpire", Handler::Data(Family::Expire), -3, ["write", "fast"], ONE_KEY, "generic", "2.6.0",
        "Sets the expiration time of a key in milliseconds.", "O(1)", "key milliseconds:integer [NX|XX|GT|LT]"),
    command!("expireat", Handler::Data(Family::Expire), -3, ["write", "fast"], ONE_KEY, "generic", "1.2.0",
        "Sets the expiration time of a key to a Unix timestamp.", "O(1)", "key unix-time-seconds:integer [NX|XX|GT|LT]"),
    command!("pexpireat", Handler::Data(Family::Expire), -3, ["write", "fast"], ONE_KEY, "generic", "2.6.0",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.", "O(1)",
        "key unix-time-milliseconds:integer [NX|XX|GT|LT]"),
    command!("setex", Handler::Data(Family::Strings), 4, ["write", "denyoom"], ONE_KEY, "string", "2.0.0",
        "Sets the string value and expiration time of a key.", "O(1)", "key seconds:integer value"),
    command!("psetex", Handler::Data(Family::Strings), 4, ["write", "denyoom"], ONE_KEY, "string", "2.6.0",
        "Sets both string value and expiration time in milliseconds of a key.", "O(1)",
        "key milliseconds:integer value"),
    command!("keys", Handler::Data(Family::Keys), 2, ["readonly"], NO_KEYS, "generic", "1.0.0",
        "Returns all key names that match a pattern.", "O(N) with N being the number of keys in the database", "pattern:pattern"),
    command!("scan", Handler::Data(Family::Keys), -2, ["readonly"], NO_KEYS, "generic", "2.8.0",
        "Iterates over the key names in the database.", "O(1) for every call. O(N) for a complete iteration.", "cursor:integer [MATCH pattern:pattern] [COUNT count:integer] [TYPE type]"),
];

#[rustfmt::skip]
static CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    command!("client|setname", Handler::Local(Local::Client), 3, ["noscript", "loading", "stale"], NO_KEYS, "connection", "2.6.9",
        "Sets the connection name.", "O(1)", "connection-name"),
    command!("client|getname", Handler::Local(Local::Client), 2, ["noscript", "loading", "stale"], NO_KEYS, "connection", "2.6.9",
        "Returns the name of the connection.", "O(1)", ""),
    command!("client|id", Handler::Local(Local::Client), 2, ["noscript", "loading", "stale"], NO_KEYS, "connection", "5.0.0",
        "Returns the unique client ID of the connection.", "O(1)", ""),
    command!("client|info", Handler::Local(Local::Client), 2, ["noscript", "loading", "stale"], NO_KEYS, "connection", "6.2.0",
        "Returns information about the connection.", "O(1)", ""),
    command!("client|list", Handler::Local(Local::Client), -2, ["admin", "noscript", "loading", "stale"], NO_KEYS, "connection", "2.4.0",
        "Lists open connections.", "O(N) where N is the number of client connections", "[TYPE NORMAL|MASTER|REPLICA|PUBSUB] [ID client-id:integer...]"),
    command!("client|setinfo", Handler::Local(Local::Client), 4, ["noscript", "loading", "stale"], NO_KEYS, "connection", "7.2.0",
        "Sets information specific to the client or connection.", "O(1)", "LIB-NAME libname|LIB-VER libver"),
    command!("client|unblock", Handler::Local(Local::Client), -3, ["admin", "noscript", "loading", "stale"], NO_KEYS, "connection", "5.0.0",
        "Unblocks a client blocked by a blocking command from a different connection.", "O(log N) where N is the number of client connections",
        "client-id:integer [TIMEOUT|ERROR]"),
    command!("client|help", Handler::Local(Local::Client), 2, ["loading", "stale"], NO_KEYS, "connection", "5.0.0",
        "Returns helpful text about the different subcommands.", "O(1)", ""),
];

#[rustfmt::skip]
/// ferrokv has no functions (no scripting); these two answer for a server without any, so
/// clients and test suites that reset or list them work. Any other subcommand is unknown.
static OBJECT_SUBCOMMANDS: &[CommandSpec] = &[
    command!("object|encoding", Handler::Data(Family::Keys), 3, ["readonly"], (2, 2, 1), "generic", "2.2.3",
        "Returns the internal encoding of a value: here, the name of Redis's encoding whose costs match ours.", "O(1)", "key"),
    command!("object|freq", Handler::Data(Family::Keys), 3, ["readonly"], (2, 2, 1), "generic", "4.0.0",
        "Returns the logarithmic access frequency counter of a Redis object (not kept here).", "O(1)", "key"),
    command!("object|idletime", Handler::Data(Family::Keys), 3, ["readonly"], (2, 2, 1), "generic", "2.2.3",
        "Returns the time since the last access to a Redis object (not kept here).", "O(1)", "key"),
    command!("object|refcount", Handler::Data(Family::Keys), 3, ["readonly"], (2, 2, 1), "generic", "2.2.3",
        "Returns the reference count of a value of a key.", "O(1)", "key"),
];

static MEMORY_SUBCOMMANDS: &[CommandSpec] = &[command!(
    "memory|usage",
    Handler::Data(Family::Keys),
    -3,
    ["readonly"],
    (2, 2, 1),
    "server",
    "4.0.0",
    "Estimates the bytes a key and its value take in the store.",
    "O(N) where N is the number of samples.",
    "key [SAMPLES count:integer]"
)];

pub static CLUSTER_SUBCOMMANDS: &[CommandSpec] = &[
    command!(
        "cluster|slots",
        Handler::Local(Local::Cluster),
        2,
        ["loading", "stale"],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Returns the mapping of cluster slots to nodes.",
        "O(N) where N is the total number of cluster nodes",
        ""
    ),
    command!(
        "cluster|shards",
        Handler::Local(Local::Cluster),
        2,
        ["loading", "stale"],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Returns the mapping of cluster slots to shards.",
        "O(N) where N is the total number of cluster nodes",
        ""
    ),
    command!(
        "cluster|nodes",
        Handler::Local(Local::Cluster),
        2,
        ["loading", "stale"],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Returns the cluster configuration for a node.",
        "O(N) where N is the total number of cluster nodes",
        ""
    ),
    command!(
        "cluster|info",
        Handler::Local(Local::Cluster),
        2,
        ["loading", "stale"],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Returns information about the state of a node.",
        "O(1)",
        ""
    ),
    command!(
        "cluster|myid",
        Handler::Local(Local::Cluster),
        2,
        ["loading", "stale"],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Returns the ID of a node.",
        "O(1)",
        ""
    ),
    command!(
        "cluster|keyslot",
        Handler::Local(Local::Cluster),
        3,
        ["loading", "stale"],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Returns the hash slot for a key.",
        "O(N) where N is the number of bytes in the key",
        "key"
    ),
    command!(
        "cluster|regions",
        Handler::Local(Local::Cluster),
        -2,
        ["loading", "stale"],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Lists regions in key order: range, epoch, peers, leader, approximate size.",
        "O(N) where N is the number of regions listed",
        "[COUNT count:integer]"
    ),
    command!(
        "cluster|region",
        Handler::Local(Local::Cluster),
        -3,
        ["loading", "stale"],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Shows one region, by id or by a key it holds.",
        "O(log N) where N is the number of regions",
        "id:integer | KEY key"
    ),
    command!(
        "cluster|stores",
        Handler::Local(Local::Cluster),
        2,
        ["loading", "stale"],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Lists stores: address, state, region and leader counts, disk capacity.",
        "O(N) where N is the number of stores",
        ""
    ),
    command!(
        "cluster|store",
        Handler::Local(Local::Cluster),
        -3,
        [],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Shows one store, or removes it: DELETE moves its replicas away, then marks it Tombstone.",
        "O(N) where N is the number of stores",
        "id:integer | DELETE id:integer"
    ),
    command!(
        "cluster|scheduler",
        Handler::Local(Local::Cluster),
        -2,
        [],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Shows the scheduler's leader, each scheduler's state and counters and the running operators; pauses or resumes a scheduler (balance-leader, balance-region, replica-checker, split-checker).",
        "O(N) where N is the number of running operators",
        "[PAUSE|RESUME scheduler]"
    ),
    command!(
        "cluster|help",
        Handler::Local(Local::Cluster),
        2,
        ["loading", "stale"],
        NO_KEYS,
        "cluster",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        "O(1)",
        ""
    ),
    command!(
        "cluster|split",
        Handler::Local(Local::Cluster),
        3,
        [],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Splits the region holding a key at that key.",
        "O(1)",
        "key"
    ),
    command!(
        "cluster|transfer-leader",
        Handler::Local(Local::Cluster),
        4,
        [],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Moves a region's leadership to its peer on a store.",
        "O(1)",
        "region:integer store:integer"
    ),
    command!(
        "cluster|add-peer",
        Handler::Local(Local::Cluster),
        4,
        [],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Adds a replica of a region on a store.",
        "O(1)",
        "region:integer store:integer"
    ),
    command!(
        "cluster|remove-peer",
        Handler::Local(Local::Cluster),
        4,
        [],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Removes a region's replica from a store.",
        "O(1)",
        "region:integer store:integer"
    ),
];

static FUNCTION_SUBCOMMANDS: &[CommandSpec] = &[
    command!(
        "function|flush",
        Handler::Local(Local::Function),
        -2,
        ["write", "noscript"],
        NO_KEYS,
        "scripting",
        "7.0.0",
        "Deletes all libraries and functions.",
        "O(N) where N is the number of functions deleted",
        "[ASYNC|SYNC]"
    ),
    command!(
        "function|list",
        Handler::Local(Local::Function),
        -2,
        ["noscript"],
        NO_KEYS,
        "scripting",
        "7.0.0",
        "Returns information about all libraries.",
        "O(N) where N is the number of functions",
        "[LIBRARYNAME library-name-pattern] [WITHCODE]"
    ),
];

static CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    command!(
        "config|get",
        Handler::Local(Local::Config),
        -3,
        ["admin", "noscript", "loading", "stale"],
        NO_KEYS,
        "server",
        "2.0.0",
        "Returns the effective values of configuration parameters.",
        "O(N) when N is the number of configuration parameters provided",
        "parameter..."
    ),
    command!(
        "config|set",
        Handler::Local(Local::Config),
        -4,
        ["admin", "noscript", "loading", "stale"],
        NO_KEYS,
        "server",
        "2.0.0",
        "Sets configuration parameters in-flight.",
        "O(N) when N is the number of configuration parameters provided",
        "[parameter value]..."
    ),
    command!(
        "config|resetstat",
        Handler::Local(Local::Config),
        2,
        ["admin", "noscript", "loading", "stale"],
        NO_KEYS,
        "server",
        "2.0.0",
        "Resets the server's statistics.",
        "O(1)",
        ""
    ),
    command!(
        "config|help",
        Handler::Local(Local::Config),
        2,
        ["loading", "stale"],
        NO_KEYS,
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        "O(1)",
        ""
    ),
];

#[rustfmt::skip]
static COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    command!("command|count", Handler::Local(Local::Command), 2, ["loading", "stale"], NO_KEYS, "server", "2.8.13",
        "Returns a count of commands.", "O(1)", ""),
    command!("command|info", Handler::Local(Local::Command), -2, ["loading", "stale"], NO_KEYS, "server", "2.8.13",
        "Returns information about one, multiple or all commands.", "O(N) where N is the number of commands to look up", "[command-name...]"),
    command!("command|docs", Handler::Local(Local::Command), -2, ["loading", "stale"], NO_KEYS, "server", "7.0.0",
        "Returns documentary information about one, multiple or all commands.", "O(N) where N is the number of commands to look up", "[command-name...]"),
    command!("command|list", Handler::Local(Local::Command), -2, ["loading", "stale"], NO_KEYS, "server", "7.0.0",
        "Returns a list of command names.", "O(N) where N is the total number of Redis commands", ""),
    command!("command|help", Handler::Local(Local::Command), 2, ["loading", "stale"], NO_KEYS, "server", "5.0.0",
        "Returns helpful text about the different subcommands.", "O(1)", ""),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(lookup(b"GeT").unwrap().name, "get");
        assert!(lookup(b"nosuch").is_none());
        let client = lookup(b"client").unwrap();
        assert_eq!(client.subcommand(b"SETNAME").unwrap().name, "client|setname");
        assert!(client.subcommand(b"nosuch").is_none());
    }

    #[test]
    fn arity_follows_redis_convention() {
        let get = lookup(b"get").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let set = lookup(b"set").unwrap();
        assert!(set.arity_ok(3) && set.arity_ok(7) && !set.arity_ok(2));
    }

    #[test]
    fn key_positions_pick_the_keys() {
        let args = |list: &[&str]| {
            list.iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect::<Vec<_>>()
        };
        let keys = |name: &[u8], a: &[Bytes]| {
            lookup(name)
                .unwrap()
                .keys(a)
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(b"get", &args(&["GET", "k"])), [b"k".to_vec()]);
        assert_eq!(keys(b"set", &args(&["SET", "k", "v", "NX"])), [b"k".to_vec()]);
        assert_eq!(keys(b"del", &args(&["DEL", "a", "b", "c"])).len(), 3);
        assert_eq!(
            keys(b"mset", &args(&["MSET", "a", "1", "b", "2"])),
            [b"a".to_vec(), b"b".to_vec()]
        );
        assert!(keys(b"scan", &args(&["SCAN", "0"])).is_empty());
        assert!(keys(b"ping", &args(&["PING"])).is_empty());
    }

    #[test]
    fn names_are_unique_and_lower_case() {
        let mut seen = std::collections::HashSet::new();
        for spec in COMMANDS
            .iter()
            .chain(CLIENT_SUBCOMMANDS)
            .chain(COMMAND_SUBCOMMANDS)
        {
            assert_eq!(spec.name, spec.name.to_lowercase());
            assert!(seen.insert(spec.name), "duplicate {}", spec.name);
            assert!(spec.arity != 0, "{} has no arity", spec.name);
        }
    }
}
