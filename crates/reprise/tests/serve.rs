//! End-to-end tests of `reprise serve`: the real binary, real components
//! built from `guest/`, real HTTP over loopback.

mod support;

use reprise_test_programs::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::{Server, metric, read_until_closed, run, scratch_path};

#[test]
fn bundled_example_is_served_without_arguments() {
    let server = Server::start(&["--expose-instance-id"]);
    let response = server.get("/");
    assert_eq!(response.status, 200);
    assert!(
        response.body.contains("Hello from Reprise"),
        "{}",
        response.body
    );
    assert!(
        response.body.contains("served 1 request"),
        "{}",
        response.body
    );
    // The example declares a reuse hint, which the default policy follows.
    let second = server.get("/");
    assert!(second.body.contains("served 2 request"), "{}", second.body);
    assert_eq!(response.instance, second.instance);
}

#[test]
fn hello_answers_200() {
    let server = Server::start(&[HELLO]);
    let response = server.get("/");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "hello from reprise\n");
}

#[test]
fn p3_component_is_served() {
    let server = Server::start(&[HELLO_P3]);
    let response = server.get("/");
    assert_eq!(response.status, 200, "{}", server.stderr());
    assert_eq!(response.body, "hello from p3\n");
}

#[test]
fn a_p2_component_that_uses_async_features_elsewhere_is_served_and_reused() {
    // A stream type anywhere in a component needs an engine with concurrency
    // support; its p2 handler is then driven by wasmtime's `ProxyHandler`
    // rather than Reprise's direct driver, under the same policy.
    use wasm_encoder::{
        ComponentSection, ComponentTypeSection, ComponentValType, PrimitiveValType,
    };
    let mut bytes = std::fs::read(COUNTER).unwrap();
    let mut types = ComponentTypeSection::new();
    types
        .defined_type()
        .stream(Some(ComponentValType::Primitive(PrimitiveValType::U8)));
    types.append_to_component(&mut bytes);
    let path = scratch_path("counter-with-stream-type.wasm");
    std::fs::write(&path, &bytes).unwrap();
    let server = Server::start(&[
        path.to_str().unwrap(),
        "--policy",
        "reuse",
        "--expose-instance-id",
    ]);
    let first = server.get("/");
    let second = server.get("/");
    assert_eq!(
        (first.status, second.status),
        (200, 200),
        "{}",
        server.stderr()
    );
    assert_eq!((first.body.as_str(), second.body.as_str()), ("1\n", "2\n"));
    assert_eq!(first.instance, second.instance);
}

#[test]
fn counter_always_answers_1_under_fresh() {
    let server = Server::start(&[COUNTER, "--policy", "fresh", "--expose-instance-id"]);
    let mut instances = HashSet::new();
    for _ in 0..20 {
        let response = server.get("/");
        assert_eq!(response.body, "1\n");
        assert!(
            instances.insert(response.instance.unwrap()),
            "instance served twice"
        );
    }
}

#[test]
fn unhinted_component_is_fresh_by_default() {
    let server = Server::start(&[COUNTER]);
    for _ in 0..5 {
        assert_eq!(server.get("/").body, "1\n");
    }
}

#[test]
fn counter_counts_up_under_reuse() {
    let server = Server::start(&[COUNTER, "--policy", "reuse", "--expose-instance-id"]);
    let bodies: Vec<String> = (0..5).map(|_| server.get("/").body).collect();
    assert_eq!(bodies, ["1\n", "2\n", "3\n", "4\n", "5\n"]);
}

/// `--max-age` retires a reused instance once it is that old: the next
/// request finds a new one, on the p2 driver and under a p3 worker alike.
#[test]
fn max_age_retires_a_reused_instance() {
    for component in [COUNTER, COUNTER_P3] {
        let server = Server::start(&[
            component,
            "--policy",
            "reuse",
            "--max-age",
            "2s",
            "--expose-instance-id",
        ]);
        let first = server.get("/");
        let second = server.get("/");
        assert_eq!((first.body.as_str(), second.body.as_str()), ("1\n", "2\n"));
        assert_eq!(first.instance, second.instance);
        std::thread::sleep(Duration::from_millis(2500));
        let later = server.get("/");
        assert_eq!(later.body, "1\n", "an instance older than --max-age served");
        assert_ne!(later.instance, first.instance);
    }
}

#[test]
fn canary_never_sees_an_earlier_secret_under_fresh() {
    let server = Server::start(&[CANARY, "--policy", "fresh"]);
    for i in 0..1000 {
        let response = server.get("/");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.body, "clean\n",
            "request {i} saw another request's secret"
        );
    }
}

#[test]
fn canary_does_see_its_secret_under_reuse() {
    // The counterpart of the test above: proves the canary can detect reuse.
    let server = Server::start(&[CANARY, "--policy", "reuse"]);
    assert_eq!(server.get("/").body, "clean\n");
    assert!(server.get("/").body.starts_with("leaked "));
}

#[test]
fn a_body_still_streaming_after_the_response_head_arrives_whole_and_its_instance_serves_again() {
    // 4 MiB: more than the host's stream buffers hold, so the guest is still
    // writing its body when the response head goes out and the rest of its
    // call runs after the request's own task has answered.
    let server = Server::start(&[ECHO, "--policy", "reuse", "--expose-instance-id"]);
    let body: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let (instance, echoed) = server.post("/", &body);
        instances.push(instance.expect("--expose-instance-id"));
        assert_eq!(echoed.len(), body.len());
        assert!(echoed == body, "the echoed body differs");
        // The call ends just after its last byte leaves; let it be parked.
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        instances[0], instances[1],
        "the instance that streamed its body was not reused"
    );
}

#[test]
fn trap_answers_500_and_the_next_request_is_served() {
    let server = Server::start(&[TRAP, "--policy", "reuse", "--expose-instance-id"]);
    let before = server.get("/");
    assert_eq!(before.status, 200);
    let trapped = server.get("/trap");
    assert_eq!(trapped.status, 500);
    assert_eq!(trapped.instance, before.instance);
    let after = server.get("/");
    assert_eq!(after.status, 200);
    assert_eq!(after.body, "ok\n");
    assert_ne!(
        after.instance, trapped.instance,
        "a trapped instance was reused"
    );
}

#[test]
fn an_error_code_from_the_guest_is_an_answer_not_a_broken_instance() {
    let server = Server::start(&[TRAP, "--policy", "reuse", "--expose-instance-id"]);
    let before = server.get("/");
    let refused = server.get("/error");
    assert_eq!(refused.status, 500);
    assert!(refused.body.contains("refused"), "{}", refused.body);
    assert_eq!(refused.instance, before.instance);
    let after = server.get("/");
    assert_eq!(after.status, 200);
    assert_eq!(
        after.instance, before.instance,
        "an instance that answered an error code was retired"
    );
}

#[test]
fn spinning_request_times_out_and_the_server_keeps_serving() {
    let server = Server::start(&[SPIN, "--timeout", "300ms"]);
    let spun = server.get("/spin");
    assert_eq!(spun.status, 504, "{}", spun.body);
    assert!(spun.body.contains("timeout"), "{}", spun.body);
    let after = server.get("/");
    assert_eq!(after.status, 200);
    assert_eq!(after.body, "ok\n");
}

#[test]
fn memory_hog_is_contained_by_max_memory() {
    let server = Server::start(&[HOG, "--max-memory", "32MiB"]);
    let hog = server.get("/hog");
    assert_eq!(hog.status, 500);
    assert!(hog.body.contains("memory"), "{}", hog.body);
    let after = server.get("/");
    assert_eq!(after.status, 200);
    assert_eq!(after.body, "ok\n");
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let server = Server::start(&[COUNTER_P3]);
    let addr = server.addr.clone();
    let slow = std::thread::spawn(move || {
        ureq::get(&format!("http://{addr}/slow"))
            .call()
            .map(|mut r| (r.status().as_u16(), r.body_mut().read_to_string().unwrap()))
    });
    std::thread::sleep(std::time::Duration::from_millis(30));
    let status = server.terminate();
    let (code, body) = slow.join().unwrap().expect("in-flight request completed");
    assert_eq!(code, 200);
    assert_eq!(body, "1\n");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_call_that_never_ends_does_not_keep_the_server_from_exiting() {
    let server = Server::start(&[SPIN, "--drain-timeout", "300ms"]);
    let addr = server.addr.clone();
    // Never answered: the guest loops, and no --timeout stops it.
    std::thread::spawn(move || ureq::get(&format!("http://{addr}/spin")).call());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = server.terminate_within(std::time::Duration::from_secs(10));
    let status = status.expect("the server exits after the drain timeout");
    // A request was cut short: the exit code says so.
    assert!(!status.success(), "{status:?}");
}

fn assert_one_line_error(args: &[&str], expected: &str) {
    let output = run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected failure for {args:?}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "stderr: {stderr}");
    assert!(errors[0].contains(expected), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(!stderr.contains("backtrace"), "stderr: {stderr}");
}

#[test]
fn missing_file_is_named() {
    assert_one_line_error(
        &["serve", "/no/such/component.wasm"],
        "cannot read /no/such/component.wasm",
    );
    // The reason is said once, not once more as the error's cause.
    let stderr =
        String::from_utf8_lossy(&run(&["serve", "/no/such/component.wasm"]).stderr).into_owned();
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

/// `reprise serve` on a file holding `bytes` fails with one line naming
/// the problem.
fn assert_file_rejected(name: &str, bytes: &[u8], expected: &str) {
    let path = scratch_path(name);
    std::fs::write(&path, bytes).unwrap();
    assert_one_line_error(&["serve", path.to_str().unwrap()], expected);
}

#[test]
fn non_wasm_file_is_rejected() {
    assert_file_rejected(
        "notes.txt",
        b"just some text",
        "is not a WebAssembly binary",
    );
}

#[test]
fn core_module_is_rejected() {
    assert_file_rejected(
        "module.wasm",
        b"\0asm\x01\0\0\0",
        "is a core WebAssembly module, not a component",
    );
}

#[test]
fn component_without_http_export_is_rejected() {
    assert_file_rejected(
        "empty.wasm",
        b"\0asm\x0d\0\x01\0",
        "does not export a wasi:http handler",
    );
}

#[test]
fn corrupt_component_is_rejected() {
    let bytes = std::fs::read(HELLO).unwrap();
    assert_file_rejected(
        "broken.wasm",
        &bytes[..bytes.len() / 2],
        "is not a valid component",
    );
}

#[test]
fn prewarmed_instances_serve_the_first_requests() {
    let server = Server::start(&[
        SLOW_INIT,
        "--prewarm",
        "2",
        "--admin-addr",
        "127.0.0.1:0",
        "--expose-instance-id",
    ]);
    let mut warm = 0;
    for _ in 0..200 {
        warm = metric(&server.admin_get("/metrics").body, "reprise_warm_instances");
        if warm == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert_eq!(warm, 2, "the warm set never filled");
    assert_eq!(server.admin_get("/ready").status, 200);
    let first = server.get("/");
    assert_eq!(
        first.body,
        "initialized before the first request; init ran 1 time(s); request 1\n"
    );
    // Served by one of the two instances created before any traffic.
    assert!(first.instance.unwrap() <= 2, "{:?}", first.instance);
    assert_eq!(server.admin_get("/live").status, 200);
}

#[test]
fn memory_ceiling_retires_a_leaking_instance() {
    // `leak` keeps 256 KiB per request: with a 2 MiB ceiling an instance is
    // retired after a handful of requests instead of growing forever.
    let server = Server::start(&[
        LEAK,
        "--policy",
        "reuse",
        "--memory-ceiling",
        "2MiB",
        "--expose-instance-id",
    ]);
    let instances: HashSet<u64> = (0..20).map(|_| server.get("/").instance.unwrap()).collect();
    assert!(instances.len() >= 2, "never retired: {instances:?}");
    assert!(
        instances.len() < 20,
        "retired after every request: {instances:?}"
    );
}

#[test]
fn p3_concurrency_per_instance_never_exceeds_max_concurrency() {
    let server = Server::start(&[COUNTER_P3, "--policy", "reuse", "--max-concurrency", "2"]);
    for in_flight in support::in_flight_of_overlapping_requests(&server.addr, 6) {
        assert!(
            in_flight <= 2,
            "{in_flight} concurrent requests on one instance"
        );
    }
}

#[test]
fn past_max_instances_a_request_waits_for_room_instead_of_failing() {
    use std::io::{Read, Write};
    let server = Server::start(&[
        ECHO,
        "--policy",
        "fresh",
        "--max-instances",
        "1",
        "--admin-addr",
        "127.0.0.1:0",
    ]);
    // The only instance allowed is busy reading a body that has not all
    // arrived yet.
    let mut slow = std::net::TcpStream::connect(&server.addr).unwrap();
    slow.write_all(
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\nconnection: close\r\n\r\nhello",
    )
    .unwrap();
    while metric(&server.admin_get("/metrics").body, "reprise_calls_total") == 0 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let addr = server.addr.clone();
    let waiting = std::thread::spawn(move || {
        let mut response = ureq::get(&format!("http://{addr}/")).call().unwrap();
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap(),
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    if waiting.is_finished() {
        panic!(
            "answered while the only instance was busy: {:?}",
            waiting.join()
        );
    }
    slow.write_all(b"world").unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("helloworld"), "{answer}");
    assert_eq!(waiting.join().unwrap(), (200, String::new()));
    let metrics = server.admin_get("/metrics").body;
    assert!(
        metric(&metrics, "reprise_instance_waits_total") >= 1,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "reprise_instantiation_failures_total"), 0);
    assert_eq!(metric(&metrics, "reprise_call_errors_total"), 0);
    assert!(server.wait_for_log("all 1 instance slots are taken (--max-instances)"));
}

#[test]
fn max_instances_bounds_prewarm() {
    assert_one_line_error(
        &["serve", HELLO, "--prewarm", "3", "--max-instances", "2"],
        "--prewarm 3 keeps more instances than --max-instances 2 allows",
    );
}

#[test]
fn http2_with_prior_knowledge_is_served_on_the_same_port() {
    let server = Server::start(&[HELLO, "--policy", "reuse"]);
    let addr = server.addr.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let answers = runtime.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        // Two streams open at once on the one connection.
        let mut responses = Vec::new();
        let mut client = client.ready().await.unwrap();
        for _ in 0..2 {
            let request = http::Request::get(format!("http://{addr}/"))
                .body(())
                .unwrap();
            let (response, _) = client.send_request(request, true).unwrap();
            responses.push(response);
            client = client.ready().await.unwrap();
        }
        let mut answers = Vec::new();
        for response in responses {
            let response = response.await.unwrap();
            let status = response.status();
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                let _ = body.flow_control().release_capacity(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            answers.push((status, String::from_utf8(bytes).unwrap()));
        }
        answers
    });
    assert_eq!(answers.len(), 2);
    for (status, body) in answers {
        assert_eq!(status, 200);
        assert_eq!(body, "hello from reprise\n");
    }
    // HTTP/1.1 still works beside it.
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn an_idle_http2_connection_is_sent_goaway_after_the_header_timeout() {
    use std::io::Write;
    use std::time::Duration;
    let server = Server::start(&[HELLO, "--header-timeout", "300ms"]);
    let mut stream = server.connect_raw();
    // The HTTP/2 preface and an empty SETTINGS frame, then nothing.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    stream.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]).unwrap();
    let (received, waited) = read_until_closed(&mut stream);
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    // Frame types the server sent before closing: 9-byte headers, the
    // length in the first three bytes, the type in the fourth.
    let mut types = Vec::new();
    let mut rest = &received[..];
    while rest.len() >= 9 {
        let length = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        types.push(rest[3]);
        rest = &rest[(9 + length).min(rest.len())..];
    }
    const GOAWAY: u8 = 0x7;
    assert!(
        types.contains(&GOAWAY),
        "closed without a GOAWAY; frames: {types:?}"
    );
}

#[test]
fn components_make_outgoing_requests() {
    let upstream = Server::start(&[HELLO]);
    let server = Server::start(&[FETCH]);
    let response = server.get(&format!("/?url=http://{}/x", upstream.addr));
    assert_eq!(response.status, 200, "{}", server.stderr());
    assert_eq!(response.body, "upstream 200: hello from reprise\n");
    // A fetch that fails reaches the guest as its error code.
    let response = server.get("/?url=http://127.0.0.1:1/");
    assert_eq!(response.status, 502);
    assert_eq!(
        response.body,
        "fetch failed: ErrorCode::ConnectionRefused\n"
    );
}

#[test]
fn a_client_that_sends_no_headers_is_disconnected_after_the_header_timeout() {
    use std::io::Write;
    use std::time::Duration;
    let server = Server::start(&[SPIN, "--header-timeout", "300ms", "--timeout", "1s"]);
    let read_to_close = |stream: &mut std::net::TcpStream| {
        let (received, waited) = read_until_closed(stream);
        (String::from_utf8_lossy(&received).into_owned(), waited)
    };
    // A client that sends nothing at all (the server cannot even tell
    // HTTP/1 from HTTP/2 yet), and one that sends half a request head.
    for opening in [&b""[..], b"GET / HTTP/1.1\r\nHo"] {
        let mut client = server.connect_raw();
        client.write_all(opening).unwrap();
        let (received, waited) = read_to_close(&mut client);
        assert_eq!(
            received, "",
            "expected the connection closed, got a response"
        );
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }
    // A request that takes longer than the header timeout is not cut off:
    // it gets its answer (here the call's own timeout), and its kept-alive
    // connection is closed only once it has been idle for the header timeout.
    let mut slow = server.connect_raw();
    slow.write_all(b"GET /spin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (received, waited) = read_to_close(&mut slow);
    assert!(received.starts_with("HTTP/1.1 504"), "{received}");
    assert!(waited >= Duration::from_millis(1250), "{waited:?}");
    assert!(waited < Duration::from_secs(8), "{waited:?}");
    // A client that sends its request in time is served as usual.
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let server = Server::start(&["--log-format", "json", TRAP, "--policy", "reuse"]);
    assert_eq!(server.get("/trap").status, 500);
    assert!(server.wait_for_log("request failed"));
    let stderr = server.stderr();
    let mut messages = Vec::new();
    for line in stderr.lines() {
        // The stable `listening on` line stays plain text for scripts.
        if line.starts_with("listening on ") {
            continue;
        }
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(entry["level"].is_string(), "{line}");
        messages.push(entry["fields"].clone());
    }
    let said = |what: &str| {
        messages
            .iter()
            .any(|m| m["message"].as_str().unwrap().contains(what))
    };
    assert!(said("request failed"), "{messages:?}");
    // The guest's own panic message, printed on its stderr, is an event
    // naming the instance and the stream.
    let panic = messages
        .iter()
        .find(|m| m["message"].as_str().unwrap().contains("trap requested"))
        .unwrap_or_else(|| panic!("{messages:?}"));
    assert_eq!(panic["stream"], "stderr");
    assert!(panic["instance"].is_u64(), "{panic}");
}

/// `HALF_BODY_P3` reused on one instance, each call limited to 1 s, with
/// `flag`.
fn one_p3_instance_with_a_1s_timeout(flag: &str) -> Server {
    Server::start(&[
        HALF_BODY_P3,
        "--timeout",
        "1s",
        "--policy",
        "reuse",
        "--max-instances",
        "1",
        flag,
    ])
}

/// Regression: a p3 call answered with its timeout dropped its deadline,
/// so the guest code still running for it went on until the instance's
/// backup expiry, which each new request pushes back. Now the overdue
/// deadline stays and the next epoch check stops the call (awaiting now and
/// then, so other calls run beside it): its instance is retired as timed
/// out about 1 s after it started, although a `/` call arrives every
/// 100 ms.
#[test]
fn a_busy_p3_call_is_stopped_at_its_own_deadline_while_new_calls_keep_arriving() {
    let server = one_p3_instance_with_a_1s_timeout("--admin-addr=127.0.0.1:0");
    assert_eq!(server.get("/").status, 200);
    let server = &server;
    let timed_out = || {
        let metrics = server.admin_get("/metrics").body;
        metric(
            &metrics,
            "reprise_instances_retired_total{reason=\"timeout\"}",
        )
    };
    std::thread::scope(|scope| {
        let start = Instant::now();
        let busy = scope.spawn(move || server.get("/busy"));
        let mut stopped_after = None;
        while start.elapsed() < Duration::from_millis(2500) {
            std::thread::sleep(Duration::from_millis(100));
            // A call on the instance when it is stopped fails with it.
            let _ = server.get("/");
            if stopped_after.is_none() && timed_out() > 0 {
                stopped_after = Some(start.elapsed());
            }
        }
        assert_eq!(busy.join().unwrap().status, 504);
        let stopped_after = stopped_after.expect("the busy call was never stopped");
        assert!(
            stopped_after < Duration::from_millis(2000),
            "stopped after {stopped_after:?}"
        );
    });
}

/// A p3 call's time limit is its own: one call sleeps for an hour on the
/// only instance while `/` calls keep arriving on that instance every
/// 100 ms for 2.5 s; the sleeper is answered with its timeout about 1 s
/// after it started (no later call extends it), and the other calls are
/// served meanwhile. A sleeping guest runs no code, so this pins the
/// per-call expiry `ProxyHandler` enforces, not the epoch deadline that
/// stops running guest code (`CallDeadlines` has the unit test for that).
#[test]
fn a_p3_call_is_cut_at_its_own_deadline_while_new_calls_keep_arriving() {
    let server = one_p3_instance_with_a_1s_timeout("--expose-instance-id");
    let first = server.get("/");
    assert_eq!(first.status, 200, "{}", first.body);
    let instance = first.instance.expect("--expose-instance-id");
    let server = &server;
    std::thread::scope(|scope| {
        let start = Instant::now();
        let sleeper = scope.spawn(move || (server.get("/sleep"), start.elapsed()));
        let mut served_beside = 0;
        while start.elapsed() < Duration::from_millis(2500) {
            std::thread::sleep(Duration::from_millis(100));
            let answer = server.get("/");
            assert_eq!(answer.status, 200, "{}", answer.body);
            // Before the sleeper's deadline the instance takes calls
            // concurrently; after it, the instance takes no more.
            if answer.instance == Some(instance) && !sleeper.is_finished() {
                served_beside += 1;
            }
        }
        let (slept, took) = sleeper.join().unwrap();
        assert_eq!(slept.status, 504, "{}", slept.body);
        assert!(
            (Duration::from_millis(900)..Duration::from_millis(2000)).contains(&took),
            "the sleeper was cut after {took:?}"
        );
        assert!(
            served_beside >= 5,
            "only {served_beside} calls were served beside the sleeper"
        );
    });
}

/// Regression: the README's example output had drifted from what `reprise
/// serve` prints ("component declares reuse hint"). Every log line of that
/// example is printed by the bundled example's start, up to the numbers
/// that depend on the machine (open-file limit, port).
#[test]
fn the_readmes_serve_example_shows_the_lines_serve_prints() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let example = readme
        .split("### Serve a wasi:http component")
        .nth(1)
        .and_then(|rest| rest.split("```console\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("the README's serve example");
    let digits = |text: &str| -> String {
        let mut out = String::new();
        for c in text.chars() {
            match c.is_ascii_digit() {
                true if out.ends_with('#') => {}
                true => out.push('#'),
                false => out.push(c),
            }
        }
        out
    };
    let expected: Vec<String> = example
        .lines()
        .take_while(|line| !line.starts_with("$ curl"))
        .filter_map(|line| {
            (line
                .strip_prefix(" INFO ")
                .or_else(|| line.strip_prefix("listening on ")))
            .map(digits)
        })
        .collect();
    assert!(expected.len() >= 5, "{example}");
    let server = Server::start(&[]);
    assert!(server.wait_for_log("listening on"));
    let printed = digits(&server.stderr());
    for line in expected {
        assert!(printed.contains(&line), "`{line}` is not in:\n{printed}");
    }
}
