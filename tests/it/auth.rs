//! `resp.requirepass`: nothing runs before `AUTH`, wrong passwords are refused, and the
//! password shows nowhere.

use ferrokv::config::{Password, RespConfig};

use crate::harness::{TestServer, request};

const PASSWORD: &str = "correct horse battery staple";

fn server_with_password() -> TestServer {
    TestServer::start_with(RespConfig {
        requirepass: Some(Password::new(PASSWORD.as_bytes())),
        ..RespConfig::default()
    })
}

#[test]
fn commands_wait_for_the_password() {
    let server = server_with_password();
    let mut raw = server.raw();
    let noauth = b"-NOAUTH Authentication required.\r\n";
    raw.roundtrip(&request(&[b"SET", b"k", b"v"]), noauth);
    raw.roundtrip(&request(&[b"GET", b"k"]), noauth);
    raw.roundtrip(&request(&[b"MULTI"]), noauth);
    raw.roundtrip(&request(&[b"BLPOP", b"list", b"0"]), noauth);
    // Pipelined data commands take the same check.
    let mut pipeline = request(&[b"SET", b"k", b"v"]);
    pipeline.extend(request(&[b"INCR", b"n"]));
    raw.send(&pipeline);
    raw.expect(&[&noauth[..], &noauth[..]].concat());
    // An unknown command or a wrong arity is answered as such first, as in Redis.
    raw.roundtrip(
        &request(&[b"GET"]),
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    let wrongpass = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    raw.roundtrip(&request(&[b"AUTH", b"guess"]), wrongpass);
    raw.roundtrip(&request(&[b"AUTH", b"someone", PASSWORD.as_bytes()]), wrongpass);
    raw.roundtrip(&request(&[b"GET", b"k"]), noauth);
    raw.roundtrip(&request(&[b"AUTH", PASSWORD.as_bytes()]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    // A later wrong password does not log the client out.
    raw.roundtrip(&request(&[b"AUTH", b"default", b"guess"]), wrongpass);
    raw.roundtrip(&request(&[b"GET", b"k"]), b"$1\r\nv\r\n");

    // HELLO authenticates with its AUTH option, and refuses to switch protocol without it.
    let mut other = server.raw();
    other.send(&request(&[b"HELLO", b"3"]));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut other.stream), &mut line).unwrap();
    assert!(line.starts_with("-NOAUTH HELLO must be called"), "{line}");
    other.send(&request(&[
        b"HELLO",
        b"3",
        b"AUTH",
        b"default",
        PASSWORD.as_bytes(),
    ]));
    other.expect(b"%7\r\n");
}

#[test]
fn the_password_shows_nowhere() {
    let server = server_with_password();
    let mut con = redis::Client::open(format!(
        "redis://:{}@{}/",
        PASSWORD.replace(' ', "%20"),
        server.addr
    ))
    .unwrap()
    .get_connection()
    .unwrap();
    let mut shown = String::new();
    for (command, arg) in [
        ("CLIENT", Some("LIST")),
        ("INFO", Some("everything")),
        ("CONFIG", None),
    ] {
        let mut cmd = redis::cmd(command);
        match (command, arg) {
            ("CONFIG", _) => cmd.arg("GET").arg("*"),
            (_, Some(arg)) => cmd.arg(arg),
            _ => &mut cmd,
        };
        let reply: redis::Value = cmd.query(&mut con).unwrap();
        shown.push_str(&format!("{reply:?}"));
    }
    assert!(shown.contains("user=default"), "CLIENT LIST was read");
    assert!(!shown.contains("horse"), "the password leaked");
}

#[test]
fn without_a_password_auth_says_none_is_set() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.send(&request(&[b"AUTH", b"anything"]));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut raw.stream), &mut line).unwrap();
    assert!(
        line.starts_with("-ERR AUTH <password> called without any password configured"),
        "{line}"
    );
    // The default user takes any password, as Redis's `nopass` user does.
    raw.roundtrip(&request(&[b"AUTH", b"default", b"anything"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"PING"]), b"+PONG\r\n");
}
