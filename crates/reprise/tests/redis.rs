//! The seed's use case end to end: a component that opens a Redis connection
//! in `reprise:init` and uses it for every request (`redis-counter`), against
//! a real `redis-server` on a free loopback port (`.ci/run` installs it).

mod support;

use reprise_test_programs::REDIS_COUNTER;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::Server;

/// A `redis-server` without persistence, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    /// Starts one on `port` and waits until it answers; `None` when
    /// `redis-server` is not installed (outside CI, which installs it).
    fn start(port: u16) -> Option<Redis> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: cannot start redis-server ({e}); .ci/run installs it");
                return None;
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let redis = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A connection of the test's own, for `INFO`.
    fn client(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `INFO stats`'s `total_connections_received`, over `client`.
fn connections_received(client: &mut TcpStream) -> u64 {
    client
        .write_all(b"*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let mut chunk = [0; 4096];
    // A bulk string: `$LEN\r\n` then LEN bytes and `\r\n`.
    loop {
        let n = client.read(&mut chunk).unwrap();
        assert!(n > 0, "redis closed the connection");
        reply.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some((len, rest)) = text.strip_prefix('$').and_then(|t| t.split_once("\r\n"))
            && rest.len() >= len.parse::<usize>().unwrap() + 2
        {
            let line = rest
                .lines()
                .find_map(|l| l.strip_prefix("total_connections_received:"))
                .expect("total_connections_received in INFO stats");
            return line.trim().parse().unwrap();
        }
    }
}

/// The connection id in a `hits N, connection C` answer.
fn connection_id(body: &str) -> u64 {
    body.trim()
        .rsplit_once("connection ")
        .and_then(|(_, id)| id.parse().ok())
        .unwrap_or_else(|| panic!("unexpected answer {body:?}"))
}

fn serve(redis_addr: &str, extra: &[&str]) -> Server {
    let env = format!("REDIS_ADDR={redis_addr}");
    let mut args = vec![REDIS_COUNTER, "--env", &env, "--admin-addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Polls `/ready` until it answers 200.
fn wait_until_ready(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.admin_get("/ready").status != 200 {
        assert!(
            Instant::now() < deadline,
            "never ready:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reused_instance_opens_one_connection_for_many_requests() {
    let Some(redis) = Redis::start(free_port()) else {
        return;
    };
    let mut client = redis.client();
    let before = connections_received(&mut client);
    let addr = redis.addr();
    let server = serve(
        &addr,
        &[
            "--allow-net",
            &addr,
            "--policy",
            "reuse",
            "--idle-timeout",
            "60s",
        ],
    );
    wait_until_ready(&server);
    let mut ids = Vec::new();
    for n in 1..=20 {
        let response = server.get("/");
        assert_eq!(
            response.status,
            200,
            "{}\n{}",
            response.body,
            server.stderr()
        );
        assert!(
            response.body.starts_with(&format!("hits {n},")),
            "{}",
            response.body
        );
        ids.push(connection_id(&response.body));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one connection for every request: {ids:?}");
    assert_eq!(connections_received(&mut client) - before, 1);
}

#[test]
fn fresh_instances_open_a_connection_per_request() {
    let Some(redis) = Redis::start(free_port()) else {
        return;
    };
    let mut client = redis.client();
    let before = connections_received(&mut client);
    let addr = redis.addr();
    let server = serve(&addr, &["--allow-net", "127.0.0.1", "--policy", "fresh"]);
    wait_until_ready(&server);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let response = server.get("/");
        assert_eq!(
            response.status,
            200,
            "{}\n{}",
            response.body,
            server.stderr()
        );
        ids.push(connection_id(&response.body));
    }
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "a connection per request: {ids:?}");
    // The 5 requests' own, and the one that proved readiness at launch.
    assert!(connections_received(&mut client) - before >= 5);
}

#[test]
fn without_allow_net_init_fails_naming_the_flag() {
    let Some(redis) = Redis::start(free_port()) else {
        return;
    };
    let mut client = redis.client();
    let before = connections_received(&mut client);
    let addr = redis.addr();
    let server = serve(&addr, &[]);
    let flag = format!("--allow-net {addr}");
    assert!(server.wait_for_log(&flag), "{}", server.stderr());
    // The denial is logged while init runs; readiness learns of the failed
    // init when it ends.
    assert!(
        server.wait_for_log("instantiation failed"),
        "{}",
        server.stderr()
    );
    let ready = server.admin_get("/ready");
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("cannot connect to Redis"),
        "{}",
        ready.body
    );
    assert!(ready.body.contains(&flag), "{}", ready.body);
    // Logged once per instance and target.
    let stderr = server.stderr();
    let denied = stderr
        .lines()
        .filter(|l| {
            l.contains("network access denied") && l.contains("instance=1") && l.contains("WARN")
        })
        .count();
    assert_eq!(denied, 1, "{stderr}");
    assert_eq!(server.get("/").status, 500);
    // Nothing reached Redis.
    assert_eq!(connections_received(&mut client) - before, 0);
}

#[test]
fn with_redis_down_readiness_reports_the_guest_error_until_it_is_back() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = serve(&addr, &["--allow-net", &addr, "--policy", "reuse"]);
    assert!(
        server.wait_for_log("instantiation failed"),
        "{}",
        server.stderr()
    );
    let ready = server.admin_get("/ready");
    assert_eq!(ready.status, 503);
    assert!(
        ready
            .body
            .contains(&format!("cannot connect to Redis at {addr}")),
        "{}",
        ready.body
    );
    assert!(!ready.body.contains("--allow-net"), "{}", ready.body);
    let Some(_redis) = Redis::start(port) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = server.get("/");
        if response.status == 200 {
            assert!(response.body.starts_with("hits 1,"), "{}", response.body);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never recovered:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.admin_get("/ready").status, 200);
}
