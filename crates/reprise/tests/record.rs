//! `reprise serve --record FILE`: served requests appended to FILE as `.http` entries.

mod support;

use support::{Server, run, scratch_path};

#[test]
fn served_requests_are_recorded_in_http_format_with_secrets_redacted() {
    let file = scratch_path("record.http");
    let _ = std::fs::remove_file(&file);
    let path = file.to_str().unwrap();
    let server = Server::start(&[
        reprise_test_programs::ECHO,
        "--record",
        path,
        "--policy",
        "reuse",
    ]);
    let response = server.get_with(
        "/search?q=a%20b&n=1",
        &[("authorization", "Bearer s3cret"), ("x-user", "ann")],
    );
    assert_eq!(response.status, 200);
    let (_, echoed) = server.post("/items", b"first line\nsecond line");
    assert_eq!(echoed, b"first line\nsecond line");
    let addr = server.addr.clone();
    assert!(server.terminate().success());

    let text = std::fs::read_to_string(&file).unwrap();
    let entries: Vec<&str> = text.split("###\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(entries.len(), 2, "{text}");
    let get = entries[0];
    assert!(
        get.starts_with("GET /search?q=a%20b&n=1 HTTP/1.1\n"),
        "{text}"
    );
    assert!(get.contains(&format!("\nhost: {addr}\n")), "{text}");
    assert!(get.contains("\nauthorization: {{redacted}}\n"), "{text}");
    assert!(get.contains("\nx-user: ann\n"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(get.ends_with("\n\n"), "a GET has no body: {text}");
    let post = entries[1];
    assert!(post.starts_with("POST /items HTTP/1.1\n"), "{text}");
    assert!(post.contains("\ncontent-length: 22\n"), "{text}");
    assert!(post.ends_with("\n\nfirst line\nsecond line\n"), "{text}");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn secrets_are_recorded_with_record_secrets() {
    let file = scratch_path("record-secrets.http");
    let _ = std::fs::remove_file(&file);
    let server = Server::start(&[
        reprise_test_programs::ECHO,
        "--record",
        file.to_str().unwrap(),
        "--record-secrets",
    ]);
    let response = server.get_with("/", &[("cookie", "session=42")]);
    assert_eq!(response.status, 200);
    assert!(server.terminate().success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("###\nGET / HTTP/1.1\n"), "{text}");
    assert!(text.contains("\ncookie: session=42\n"), "{text}");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn an_unopenable_record_file_fails_before_serving() {
    let output = run(&[
        "serve",
        reprise_test_programs::ECHO,
        "--addr",
        "127.0.0.1:0",
        "--record",
        "/nonexistent-dir/requests.http",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: cannot open --record file /nonexistent-dir/requests.http: "),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
}

/// Regression: a request that `reprise check` cannot send (another method,
/// a Host that is not `NAME[:PORT]`) made the whole recording fail to
/// replay, and a body left unread was recorded as empty under its original
/// `content-length`. Such parts are now left out with a comment, and the
/// recording replays.
#[test]
fn a_recording_of_odd_requests_replays_in_check() {
    use std::io::Write;
    let file = scratch_path("odd.http");
    let _ = std::fs::remove_file(&file);
    let path = file.to_str().unwrap();
    let server = Server::start(&[reprise_test_programs::HELLO, "--record", path]);
    for request in [
        &b"BREW /pot HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: weird host\r\nconnection: close\r\n\r\n",
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
    ] {
        let mut stream = server.connect_raw();
        stream.write_all(request).unwrap();
        support::read_until_closed(&mut stream);
    }
    assert!(server.terminate().success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("# not replayable: `BREW`"), "{text}");
    assert!(
        text.contains("# header host: a value that is not"),
        "{text}"
    );
    assert!(!text.contains("content-length"), "{text}");
    let output = run(&["check", reprise_test_programs::HELLO, "--script", path]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("verdict: reuse-safe"), "{stdout}");
    let _ = std::fs::remove_file(&file);
}
