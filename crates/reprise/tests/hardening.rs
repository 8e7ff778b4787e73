//! End-to-end tests of the host's defences (issue 22): bounds on slow and
//! large request bodies, default limits, isolation keys that cannot be
//! steered, responses cut short by a failed call, files checked before they
//! are read, safe writes by `hint set -o`, shutdown, and malformed requests.
//! The real binary, loopback only, every wait bounded.

mod support;

use reprise_test_programs::*;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};
use support::http2::Http2;
use support::{Server, read_until_closed, run, scratch_path};

/// Sends `request` on a fresh connection and reads until the server closes
/// it (reads time out after 10 s, failing the test).
fn exchange(server: &Server, request: &[u8]) -> String {
    let mut stream = server.connect_raw();
    stream.write_all(request).unwrap();
    let (received, _) = read_until_closed(&mut stream);
    String::from_utf8_lossy(&received).into_owned()
}

fn signal(server: &Server, name: &str) {
    let pid = server.pid().to_string();
    Command::new("kill").args([name, &pid]).status().unwrap();
}

/// Waits up to `limit` for the server process to exit.
fn exit_within(server: &mut Server, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = server.exited() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

// Item 2: a request body must arrive within the body timeout.

#[test]
fn a_body_that_trickles_past_the_body_timeout_gets_408_and_the_connection_closes() {
    let server = Server::start(&[ECHO, "--body-timeout", "1s"]);
    let mut stream = server.connect_raw();
    let start = Instant::now();
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n")
        .unwrap();
    // One more byte a while later, then nothing: the body never ends.
    std::thread::sleep(Duration::from_millis(300));
    let _ = stream.write_all(b"1\r\nb\r\n");
    let (received, _) = read_until_closed(&mut stream);
    let answer = String::from_utf8_lossy(&received);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "{answer}\n{}",
        server.stderr()
    );
    assert!(answer.contains("--body-timeout"), "{answer}");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // A body that arrives in time is served.
    let (_, echoed) = server.post("/", b"on time");
    assert_eq!(echoed, b"on time");
}

// Item 3: default bounds, each settable.

#[test]
fn a_body_past_the_size_limit_gets_413_whether_declared_or_streamed() {
    let server = Server::start(&[ECHO, "--max-body-bytes", "1KiB"]);
    let declared = exchange(
        &server,
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2000\r\n\r\n",
    );
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
    let mut streamed = b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        streamed.extend_from_slice(b"200\r\n");
        streamed.extend_from_slice(&[b'x'; 512]);
        streamed.extend_from_slice(b"\r\n");
    }
    streamed.extend_from_slice(b"0\r\n\r\n");
    let streamed = exchange(&server, &streamed);
    assert!(streamed.starts_with("HTTP/1.1 413"), "{streamed}");
    assert!(streamed.contains("--max-body-bytes"), "{streamed}");
    let (_, echoed) = server.post("/", &[b'y'; 1024]);
    assert_eq!(echoed.len(), 1024);
}

#[test]
fn the_default_bounds_are_documented_and_the_connection_cap_is_logged() {
    let help = run(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for default in ["[default: 1GiB]", "[default: 16MiB]", "[default: 30s]"] {
        assert!(help.contains(default), "no {default} in:\n{help}");
    }
    let server = Server::start(&[HELLO]);
    assert!(
        server.wait_for_log("connections at once"),
        "{}",
        server.stderr()
    );
    let stderr = server.stderr();
    let cap: u64 = stderr
        .split("serving at most ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!((1..=1024).contains(&cap), "{stderr}");
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn zero_connections_and_a_zero_timeout_are_refused_with_what_to_write() {
    let refused = run(&["serve", HELLO, "--max-connections", "0"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("write a positive number"), "{stderr}");
    let refused = run(&["serve", HELLO, "--timeout", "0s"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("`none`"), "{stderr}");
}

#[test]
fn the_admin_endpoint_answers_although_silent_clients_hold_its_connections() {
    let server = Server::start(&[HELLO, "--admin-addr", "127.0.0.1:0"]);
    let admin = server.admin.clone().unwrap();
    // More silent clients than the admin endpoint serves at once.
    let silent: Vec<_> = (0..24)
        .map(|_| std::net::TcpStream::connect(&admin).unwrap())
        .collect();
    let start = Instant::now();
    let live = server.admin_get("/live");
    assert_eq!(live.status, 200);
    assert!(start.elapsed() < Duration::from_secs(30));
    drop(silent);
}

// Item 4: isolation keys cannot be steered.

#[test]
fn two_values_of_the_isolation_key_are_refused_and_an_empty_one_is_no_key() {
    let server = Server::start(&[
        COUNTER,
        "--policy",
        "reuse",
        "--isolate-by",
        "header:x-tenant",
    ]);
    assert_eq!(server.get_with("/", &[("x-tenant", "alice")]).body, "1\n");
    let steered = exchange(
        &server,
        b"GET / HTTP/1.1\r\nhost: x\r\nx-tenant: alice\r\nx-tenant: mallory\r\nconnection: close\r\n\r\n",
    );
    assert!(steered.starts_with("HTTP/1.1 400"), "{steered}");
    assert!(steered.contains("x-tenant"), "{steered}");
    // Alice's instance was not touched by the refused request.
    assert_eq!(server.get_with("/", &[("x-tenant", "alice")]).body, "2\n");
    for _ in 0..3 {
        let empty = exchange(
            &server,
            b"GET / HTTP/1.1\r\nhost: x\r\nx-tenant: \r\nconnection: close\r\n\r\n",
        );
        assert!(empty.contains("\r\n1\n\r\n"), "{empty}");
    }
}

// Item 5: a response cut short aborts the connection.

/// Whether a chunked HTTP/1.1 answer ended with its terminating chunk.
fn terminated(answer: &str) -> bool {
    answer.ends_with("0\r\n\r\n")
}

#[test]
fn a_trap_after_the_head_aborts_the_connection_instead_of_ending_the_body() {
    let server = Server::start(&[HALF_BODY]);
    // Kept alive unless aborted: a clean end would leave the connection
    // open, and reading until it closes would time out.
    let answer = exchange(&server, b"GET /late-trap HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("partial"), "{answer}");
    assert!(!terminated(&answer), "the body ended cleanly:\n{answer}");
    // A trap before anything left: the client gets the failure instead.
    let answer = exchange(
        &server,
        b"GET /trap HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    assert_eq!(server.get("/").body, "ok\n");
}

#[test]
fn a_timeout_after_the_head_aborts_the_connection() {
    let server = Server::start(&[HALF_BODY, "--timeout", "500ms"]);
    let answer = exchange(&server, b"GET /stall HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(answer.contains("partial"), "{answer}");
    assert!(!terminated(&answer), "the body ended cleanly:\n{answer}");
}

/// p3 bodies are written by a task of the instance, and wasmtime-wasi-http
/// ends one cleanly when the instance's store goes: the host must abort it.
#[test]
fn a_p3_response_cut_by_a_trap_or_a_timeout_aborts_the_connection() {
    let server = Server::start(&[HALF_BODY_P3, "--timeout", "500ms"]);
    for path in ["/late-trap", "/stall"] {
        let answer = exchange(
            &server,
            format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes(),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        assert!(answer.contains("partial"), "{path}: {answer}");
        assert!(
            !terminated(&answer),
            "{path}: the body ended cleanly:\n{answer}"
        );
    }
    assert_eq!(server.get("/").body, "ok\n");
}

/// Over HTTP/2 the cut response's stream is reset, and only that stream:
/// the connection serves on. p2 and p3.
#[test]
fn over_http2_a_response_cut_by_a_trap_resets_its_stream_only() {
    for component in [HALF_BODY, HALF_BODY_P3] {
        let server = Server::start(&[component]);
        let mut client = Http2::connect(&server.addr);
        let (status, body) = client.get("/late-trap");
        assert_eq!(status, 200, "{component}");
        let reset = body.expect_err("the cut body ended cleanly");
        assert_eq!(reset.reason(), Some(h2::Reason::INTERNAL_ERROR), "{reset}");
        assert_eq!(client.get("/").1.unwrap(), "ok\n", "{component}");
    }
}

// Item 6: files are checked before they are read.

#[test]
fn files_that_are_not_regular_wasm_files_of_a_sane_size_are_refused_at_once() {
    let large = scratch_path("large.wasm");
    let file = std::fs::File::create(&large).unwrap();
    // Sparse: takes no disk.
    file.set_len(600 << 20).unwrap();
    let text = scratch_path("notes.txt");
    std::fs::write(&text, "not wasm at all").unwrap();
    let cases = [
        (
            "/dev/zero",
            "is not a regular file (it is a character device)",
        ),
        ("/", "is not a regular file (it is a directory)"),
        (large.to_str().unwrap(), "is too large"),
        (text.to_str().unwrap(), "is not a WebAssembly binary"),
    ];
    for (path, expected) in cases {
        for args in [
            vec!["hint", "show", path],
            vec!["run", path],
            vec!["call", path, "f()"],
            vec!["serve", path, "--addr", "127.0.0.1:0"],
        ] {
            let start = Instant::now();
            let output = run(&args);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{args:?}");
            assert!(stderr.contains(expected), "{args:?}: {stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
            assert!(start.elapsed() < Duration::from_secs(20), "{args:?}");
        }
    }
    let _ = std::fs::remove_file(large);
}

// Item 7: `hint set -o` writes safely.

#[cfg(unix)]
#[test]
fn hint_set_keeps_permissions_follows_a_symlink_and_refuses_devices() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = scratch_path("hint-out");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.wasm");
    std::fs::copy(COUNTER, &out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A planted link where the old temporary file went.
    let victim = dir.join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    symlink(&victim, dir.join("out.wasm.reprise-tmp")).unwrap();
    let out_str = out.to_str().unwrap();
    let set = run(&["hint", "set", COUNTER, "v1 reuse", "-o", out_str]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let shown = run(&["hint", "show", out_str]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("v1 reuse"));
    // A symlink OUT: its target is updated and the link stays.
    let link = dir.join("link.wasm");
    symlink(&out, &link).unwrap();
    let clear = run(&["hint", "clear", out_str, "-o", link.to_str().unwrap()]);
    assert!(
        clear.status.success(),
        "{}",
        String::from_utf8_lossy(&clear.stderr)
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let shown = run(&["hint", "show", out_str]);
    assert!(!String::from_utf8_lossy(&shown.stdout).contains("v1 reuse"));
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".reprise-tmp") || n == "out.wasm.reprise-tmp"),
        "{names:?}"
    );
    // A device is refused and left alone.
    let full = run(&["hint", "set", COUNTER, "v1 reuse", "-o", "/dev/full"]);
    assert!(!full.status.success());
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert!(stderr.contains("not a regular file"), "{stderr}");
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata("/dev/full")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// Item 8: shutdown.

#[test]
fn a_request_running_at_the_drain_timeout_gets_503_and_the_exit_code_says_so() {
    let mut server = Server::start(&[SPIN, "--drain-timeout", "1s"]);
    let mut stream = server.connect_raw();
    stream
        .write_all(b"GET /spin HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(&server, "-TERM");
    let (received, _) = read_until_closed(&mut stream);
    let answer = String::from_utf8_lossy(&received);
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "{answer}\n{}",
        server.stderr()
    );
    let status = exit_within(&mut server, Duration::from_secs(10)).expect("exited");
    assert!(!status.success(), "{status:?}");
    assert!(
        server.wait_for_log("with 1 request(s) still running"),
        "{}",
        server.stderr()
    );
}

#[test]
fn a_response_streaming_at_the_drain_timeout_is_cut_short() {
    let mut server = Server::start(&[HALF_BODY, "--drain-timeout", "1s"]);
    let mut stream = server.connect_raw();
    stream
        .write_all(b"GET /stall HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    signal(&server, "-TERM");
    let (received, _) = read_until_closed(&mut stream);
    let answer = String::from_utf8_lossy(&received);
    assert!(!terminated(&answer), "the body ended cleanly:\n{answer}");
    let status = exit_within(&mut server, Duration::from_secs(10)).expect("exited");
    assert!(!status.success(), "{status:?}");
}

#[test]
fn a_second_signal_during_the_drain_exits_at_once() {
    for second in ["-TERM", "-INT"] {
        let mut server = Server::start(&[SPIN, "--drain-timeout", "60s"]);
        let mut stream = server.connect_raw();
        stream
            .write_all(b"GET /spin HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        signal(&server, "-TERM");
        assert!(server.wait_for_log("draining"), "{}", server.stderr());
        let start = Instant::now();
        signal(&server, second);
        let status = exit_within(&mut server, Duration::from_secs(10)).expect("exited at once");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(!status.success(), "{second}: {status:?}");
        assert!(
            server.stderr().contains("exiting at once"),
            "{}",
            server.stderr()
        );
    }
}

// Item 9: malformed requests.

#[test]
fn http_1_1_without_a_host_or_with_two_gets_400() {
    let server = Server::start(&[HELLO]);
    let none = exchange(&server, b"GET / HTTP/1.1\r\n\r\n");
    assert!(none.starts_with("HTTP/1.1 400"), "{none}");
    let two = exchange(&server, b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n");
    assert!(two.starts_with("HTTP/1.1 400"), "{two}");
    // HTTP/1.0 needs none.
    let old = exchange(&server, b"GET / HTTP/1.0\r\n\r\n");
    assert!(old.starts_with("HTTP/1.0 200"), "{old}");
    assert!(old.ends_with("hello from reprise\n"), "{old}");
}
