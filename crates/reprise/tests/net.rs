//! Outbound network as a capability (`--allow-net TARGET`): none by default,
//! granted per address, range or host name, and every denial logged with the
//! flag that would allow it. The guest is `redis-counter`, talking to a fake
//! Redis in this process that answers every command with `:7`.

mod support;

use reprise_test_programs::{COMMAND, HELLO, REDIS_COUNTER};
use std::io::{Read, Write};
use std::net::TcpListener;
use support::{Server, run};

/// A loopback listener answering every read with the RESP integer 7; its port.
fn fake_redis() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            std::thread::spawn(move || {
                let mut buf = [0; 1024];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    let _ = n;
                    if stream.write_all(b":7\r\n").is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn serve(redis_addr: &str, allow: &[&str]) -> Server {
    let env = format!("REDIS_ADDR={redis_addr}");
    let mut args = vec![REDIS_COUNTER, "--env", &env, "--admin-addr", "127.0.0.1:0"];
    for target in allow {
        args.extend_from_slice(&["--allow-net", target]);
    }
    Server::start(&args)
}

fn assert_serves(server: &Server) {
    let response = server.get("/");
    assert_eq!(
        response.status,
        200,
        "{}\n{}",
        response.body,
        server.stderr()
    );
    assert_eq!(response.body, "hits 7, connection 7\n");
}

#[test]
fn addresses_ranges_and_star_allow_connections() {
    let port = fake_redis();
    let addr = format!("127.0.0.1:{port}");
    for target in [addr.as_str(), "127.0.0.1", "127.0.0.0/8", "*"] {
        let server = serve(&addr, &["10.9.9.9", target]);
        assert_serves(&server);
        assert!(
            !server.stderr().contains("denied"),
            "{target}: {}",
            server.stderr()
        );
    }
}

#[test]
fn a_listed_host_name_may_be_looked_up_and_reached() {
    let port = fake_redis();
    let named = format!("localhost:{port}");
    let server = serve(&named, &[&named]);
    assert_serves(&server);
}

#[test]
fn unlisted_targets_are_denied_and_logged_with_the_flag() {
    let port = fake_redis();
    let addr = format!("127.0.0.1:{port}");
    // Another port of the same address.
    let server = serve(&addr, &["127.0.0.1:1"]);
    let flag = format!("`--allow-net {addr}`");
    assert!(server.wait_for_log(&flag), "{}", server.stderr());
    let ready = server.admin_get("/ready");
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains(&format!("TCP connect to {addr}")),
        "{}",
        ready.body
    );
    // A name not listed is not even looked up, and the log says which flag
    // would allow the lookup.
    let server = serve(&format!("localhost:{port}"), &[&addr]);
    assert!(
        server.wait_for_log("name lookup of `localhost`; allow it with `--allow-net localhost`"),
        "{}",
        server.stderr()
    );
    assert_eq!(server.admin_get("/ready").status, 503);
}

#[test]
fn every_command_takes_allow_net_and_rejects_bad_targets() {
    let output = run(&[
        "run",
        COMMAND,
        "--allow-net",
        "*",
        "--allow-net",
        "10.0.0.0/8",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = run(&["call", HELLO, "nope()", "--allow-net", "example.com:443"]);
    // Parsed, then refused for the call, not the flag.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no export named `nope`"), "{stderr}");
    let output = run(&[
        "check",
        HELLO,
        "--allow-net",
        "127.0.0.1:6379",
        "--calls",
        "5",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for bad in ["not a host", "10.0.0.0/40", "host:0"] {
        let output = run(&["serve", HELLO, "--allow-net", bad]);
        assert!(!output.status.success(), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--allow-net"), "{bad}: {stderr}");
    }
}

#[test]
fn an_env_name_unset_in_reprise_is_a_warning_and_the_guest_sees_none() {
    let output = support::reprise()
        .args(["run", COMMAND, "--env", "GREETING"])
        .env_remove("GREETING")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--env GREETING: `GREETING` is not set"),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hello from command \n"
    );
}
