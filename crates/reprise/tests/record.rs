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
