//! End-to-end tests of calls whose client went away, and of the default
//! per-call time limit.

mod support;

use reprise_test_programs::*;
use std::io::Write;
use std::time::{Duration, Instant};
use support::{Server, metric, run};

/// Regression: a client that gave up on a guest stuck in a loop left the
/// call running for good (both cores busy, and with `--max-instances 1`
/// nothing else served). Now the call is stopped when the client goes, the
/// instance retires as `cancelled`, and its slot serves the next request.
#[test]
fn a_call_whose_client_went_away_is_stopped() {
    let server = Server::start(&[
        SPIN,
        "--policy",
        "reuse",
        "--timeout",
        "none",
        "--max-instances",
        "1",
        "--admin-addr",
        "127.0.0.1:0",
    ]);
    assert!(server.wait_for_log("ready"), "{}", server.stderr());
    {
        let mut client = server.connect_raw();
        client
            .write_all(b"GET /spin HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let started = Instant::now();
    let cancelled = loop {
        let metrics = server.admin_get("/metrics").body;
        let cancelled = metric(
            &metrics,
            "reprise_instances_retired_total{reason=\"cancelled\"}",
        );
        if cancelled > 0 || started.elapsed() > Duration::from_secs(10) {
            break cancelled;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(cancelled, 1, "{}", server.stderr());
    // The only slot is free again.
    let response = server.get("/");
    assert_eq!((response.status, response.body.as_str()), (200, "ok\n"));
}

#[test]
fn a_zero_timeout_is_refused_with_the_spelling_of_no_limit() {
    let output = run(&["serve", HELLO, "--timeout", "0s"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("write `none` for no limit"), "{stderr}");
}
