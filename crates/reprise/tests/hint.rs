//! End-to-end tests of `reprise hint show|set|clear`, and of how `serve`
//! honors and reports the hint.

mod support;

use reprise_test_programs::*;
use support::{Server, run};

fn stdout(args: &[&str]) -> String {
    let output = run(args);
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn out_path(name: &str) -> String {
    support::scratch_path(name).to_str().unwrap().to_string()
}

#[test]
fn show_reads_the_hint_declared_in_rust_source() {
    let text = stdout(&["hint", "show", EXAMPLE]);
    assert_eq!(text.lines().next(), Some("v1 reuse max-calls=1000"));
    assert!(text.contains("from component/"), "{text}");
    assert_eq!(
        stdout(&["hint", "show", HINTED_FRESH]).lines().next(),
        Some("v1 fresh")
    );
    assert_eq!(
        stdout(&["hint", "show", HELLO]).lines().next(),
        Some("none")
    );
}

#[test]
fn show_json_has_the_stable_shape() {
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&["hint", "show", "--json", HINTED_REUSE])).unwrap();
    assert_eq!(json["effective"], "v1 reuse max-calls=3");
    assert_eq!(json["sources"][0]["hint"], "v1 reuse max-calls=3");
    assert!(
        json["sources"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("component")
    );
    assert_eq!(json["conflicts"], serde_json::json!([]));
    let none: serde_json::Value =
        serde_json::from_str(&stdout(&["hint", "show", "--json", HELLO])).unwrap();
    assert_eq!(none["effective"], serde_json::Value::Null);
}

#[test]
fn set_then_clear_round_trips_and_the_result_still_serves() {
    let hinted = out_path("hello-hinted.wasm");
    run(&[
        "hint",
        "set",
        HELLO,
        "v1 reuse max-concurrency=4 max-calls=100",
        "-o",
        &hinted,
    ]);
    let text = stdout(&["hint", "show", &hinted]);
    assert_eq!(
        text.lines().next(),
        Some("v1 reuse max-calls=100 max-concurrency=4")
    );
    assert!(text.contains("from component:"), "{text}");

    let server = Server::start(&[&hinted]);
    assert_eq!(server.get("/").body, "hello from reprise\n");
    drop(server);

    let cleared = out_path("hello-cleared.wasm");
    run(&["hint", "clear", &hinted, "-o", &cleared]);
    assert_eq!(
        stdout(&["hint", "show", &cleared]).lines().next(),
        Some("none")
    );
    assert_eq!(
        std::fs::read(&cleared).unwrap(),
        std::fs::read(HELLO).unwrap()
    );
}

#[test]
fn malformed_payloads_are_refused_by_set() {
    let out = out_path("never-written.wasm");
    for (payload, problem) in [
        ("v1 reuse max-calls=0", "max-calls"),
        ("v1 fresh max-calls=3", "fresh"),
        ("v1 sometimes", "sometimes"),
        ("v1 reuse max-calls=1 max-calls=2", "max-calls"),
    ] {
        let output = run(&["hint", "set", HELLO, payload, "-o", &out]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{payload} accepted");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(problem), "{payload}: {stderr}");
        assert!(!std::path::Path::new(&out).exists());
    }
}

#[test]
fn show_refuses_what_is_not_a_component() {
    let module = out_path("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let output = run(&["hint", "show", &module]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a component"), "{stderr}");
}

#[test]
fn auto_policy_honors_the_hint_bounds() {
    // `hinted-reuse` declares `v1 reuse max-calls=3`: even with a larger
    // flag, each instance serves exactly three requests.
    let server = Server::start(&[HINTED_REUSE, "--max-calls", "100", "--expose-instance-id"]);
    let responses: Vec<_> = (0..6).map(|_| server.get("/")).collect();
    let bodies: Vec<&str> = responses.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(bodies, ["1\n", "2\n", "3\n", "1\n", "2\n", "3\n"]);
    assert_eq!(responses[0].instance, responses[2].instance);
    assert_ne!(responses[2].instance, responses[3].instance);
}

#[test]
fn fresh_policy_says_the_component_asks_for_reuse() {
    let server = Server::start(&[EXAMPLE, "--policy", "fresh"]);
    assert!(server.get("/").body.contains("served 1 request"));
    let log = server.stderr();
    assert!(log.contains("asks to be reused"), "{log}");
    assert!(log.contains("--policy auto"), "{log}");
}

#[test]
fn fresh_hint_is_followed_by_default() {
    let server = Server::start(&[HINTED_FRESH, "--expose-instance-id"]);
    let first = server.get("/");
    let second = server.get("/");
    assert_ne!(first.instance, second.instance);
}

#[test]
fn serve_warns_about_a_malformed_hint_and_still_serves() {
    // Two hint sections in one node are malformed: the host warns and
    // applies its default instead of refusing the component.
    let once = out_path("hello-once.wasm");
    run(&["hint", "set", HELLO, "v1 reuse", "-o", &once]);
    let mut bytes = std::fs::read(&once).unwrap();
    let section = hint_section("v1 fresh");
    bytes.extend_from_slice(&section);
    let twice = out_path("hello-twice.wasm");
    std::fs::write(&twice, bytes).unwrap();

    let output = run(&["hint", "show", &twice]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("more than one"));

    let server = Server::start(&[&twice]);
    assert_eq!(server.get("/").status, 200);
    assert!(
        server.stderr().contains("ignoring the reuse hint"),
        "{}",
        server.stderr()
    );
}

/// A raw custom section `instance-reuse-hint` with `payload`.
fn hint_section(payload: &str) -> Vec<u8> {
    let name = b"instance-reuse-hint";
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(payload.as_bytes());
    let mut section = vec![0u8, body.len() as u8];
    section.extend_from_slice(&body);
    section
}
