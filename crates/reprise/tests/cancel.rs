//! End-to-end tests of calls whose client went away, and of the default
//! per-call time limit.

mod support;

use reprise_test_programs::*;
use std::io::Write;
use std::time::{Duration, Instant};
use support::http2::Http2;
use support::{Server, metric, run};

/// Regression: a client that gave up on a guest stuck in a loop left the
/// call running for good (both cores busy, and with `--max-instances 1`
/// nothing else served). Now the call is stopped when the client goes, the
/// instance retires as `cancelled`, and its slot serves the next request.
#[test]
fn a_call_whose_client_went_away_is_stopped() {
    let server = one_slot_no_timeout(SPIN);
    ask_and_leave(&server, "/spin");
    assert_eq!(cancelled_within_10s(&server, 1), 1, "{}", server.stderr());
    // The only slot is free again.
    let response = server.get("/");
    assert_eq!((response.status, response.body.as_str()), (200, "ok\n"));
}

/// Waits up to 10 s for `server` to count `n` instances retired as
/// cancelled, and returns the count.
fn cancelled_within_10s(server: &Server, n: u64) -> u64 {
    let started = Instant::now();
    loop {
        let metrics = server.admin_get("/metrics").body;
        let cancelled = metric(
            &metrics,
            "reprise_instances_retired_total{reason=\"cancelled\"}",
        );
        if cancelled >= n || started.elapsed() > Duration::from_secs(10) {
            return cancelled;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends GET `path` over HTTP/1.1 and closes the connection 300 ms later,
/// before the answer, as a client that gives up does.
fn ask_and_leave(server: &Server, path: &str) {
    let mut client = server.connect_raw();
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
    client.write_all(request.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
}

/// One slot, no time limit: a call nobody stops holds the server for good.
fn one_slot_no_timeout(component: &str) -> Server {
    let server = Server::start(&[
        component,
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
    server
}

/// An HTTP/2 client that gives up resets its stream and keeps the
/// connection: that alone must stop the call (p2: the guest is interrupted),
/// and the connection goes on serving.
#[test]
fn an_http2_stream_reset_stops_the_call_and_the_connection_serves_on() {
    let server = one_slot_no_timeout(SPIN);
    let mut client = Http2::connect(&server.addr);
    client.get_then_reset("/spin", Duration::from_millis(300));
    assert_eq!(cancelled_within_10s(&server, 1), 1, "{}", server.stderr());
    assert_eq!(client.get("/").1.unwrap(), "ok\n");
}

/// Regression: a p3 call whose client left ran on until its deadline (for
/// good with `--timeout none`), holding its instance. ProxyHandler cannot
/// cancel one guest task, so the instance is stopped once no call on it
/// awaits an answer: a guest looping without yielding, and one awaiting an
/// hour-long sleep, over HTTP/1.1 (connection closed) and HTTP/2 (stream
/// reset).
#[test]
fn a_p3_call_whose_client_went_away_is_stopped() {
    let server = one_slot_no_timeout(HALF_BODY_P3);
    ask_and_leave(&server, "/spin");
    assert_eq!(cancelled_within_10s(&server, 1), 1, "{}", server.stderr());
    let mut client = Http2::connect(&server.addr);
    client.get_then_reset("/sleep", Duration::from_millis(300));
    assert_eq!(cancelled_within_10s(&server, 2), 2, "{}", server.stderr());
    // The only slot is free again, and nothing was taken for a failure.
    assert_eq!(client.get("/").1.unwrap(), "ok\n");
    let metrics = server.admin_get("/metrics").body;
    assert_eq!(
        metric(
            &metrics,
            "reprise_instances_retired_total{reason=\"timeout\"}"
        ),
        0
    );
    assert!(!server.stderr().contains("WARN"), "{}", server.stderr());
}

#[test]
fn a_zero_timeout_is_refused_with_the_spelling_of_no_limit() {
    let output = run(&["serve", HELLO, "--timeout", "0s"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("write `none` for no limit"), "{stderr}");
}
