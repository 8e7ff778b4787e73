//! `reprise serve --header 'NAME: VALUE'` sets a header on every incoming
//! request; `--max-header-bytes` bounds request headers (431 past it).

mod support;

use reprise_test_programs::{CHECK_FIRST_CALLER, HELLO};
use support::{Server, run};

#[test]
fn a_header_flag_replaces_the_clients_header() {
    let server = Server::start(&[
        CHECK_FIRST_CALLER,
        "--policy",
        "fresh",
        "--header",
        "X-User: operator",
    ]);
    let response = server.get_with("/", &[("x-user", "alice")]);
    assert_eq!(response.status, 200, "{}", server.stderr());
    assert_eq!(response.body, "hello, operator\n");
    assert_eq!(server.get("/").body, "hello, operator\n");
}

#[test]
fn headers_past_the_limit_get_431() {
    let server = Server::start(&[HELLO, "--max-header-bytes", "16KiB"]);
    let small = "x".repeat(1000);
    assert_eq!(server.get_with("/", &[("x-big", &small)]).status, 200);
    let big = "x".repeat(40_000);
    assert_eq!(server.get_with("/", &[("x-big", &big)]).status, 431);
    // The default (64 KiB) lets 40 KB through but not 100 KB.
    let server = Server::start(&[HELLO]);
    assert_eq!(server.get_with("/", &[("x-big", &big)]).status, 200);
    let huge = "x".repeat(100_000);
    assert_eq!(server.get_with("/", &[("x-big", &huge)]).status, 431);
}

#[test]
fn bad_header_flags_are_refused() {
    for args in [
        ["--header", "no colon"],
        ["--header", "bad name: v"],
        ["--max-header-bytes", "1KiB"],
    ] {
        let output = run(&["serve", HELLO, args[0], args[1]]);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
}
