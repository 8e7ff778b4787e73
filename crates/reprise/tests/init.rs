//! Explicit initialization (`reprise:init`, docs/initialization.md): the host
//! calls a component's `init` once per instance before its first request,
//! readiness waits for it, and a failing `init` is reported, not served.

mod support;

use reprise_host::policy::Policy;
use reprise_host::pool::{InstanceLimits, InstanceManager};
use reprise_host::runtime::component::{self, Source};
use reprise_host::runtime::engine::{EngineHandle, EngineOptions};
use reprise_test_programs::*;
use std::sync::atomic::Ordering::Relaxed;
use support::{Server, metric};

const INIT_FAILS_MESSAGE: &str = "database unreachable: connection refused";

/// An instance manager for the fixture at `path`, in this process.
fn manager(path: &str) -> InstanceManager {
    let engine = EngineHandle::new(&EngineOptions::default()).unwrap();
    let source = Source::File(path.into());
    let bytes = component::read(&source).unwrap();
    let compiled = component::compile(&engine.engine, &bytes, &source).unwrap();
    InstanceManager::new(engine, compiled, InstanceLimits::default(), Policy::Fresh).unwrap()
}

#[test]
fn init_export_is_found_in_components_built_with_the_guest_crate() {
    for (path, exported) in [(SLOW_INIT, true), (INIT_FAILS, true), (HELLO, false)] {
        assert_eq!(manager(path).init_export().is_some(), exported, "{path}");
    }
}

#[tokio::test]
async fn readiness_turns_on_when_an_instance_has_run_init() {
    let manager = manager(SLOW_INIT);
    assert!(!manager.is_ready());
    let mut store = manager.new_store(manager.slot().await).unwrap();
    manager
        .instantiate(&mut store, |_, _| Ok(()))
        .await
        .unwrap();
    assert!(manager.is_ready());
    assert_eq!(manager.metrics().instances_created.load(Relaxed), 1);
}

#[tokio::test]
async fn a_failing_init_fails_instantiation_with_the_guest_message() {
    let manager = manager(INIT_FAILS);
    let mut store = manager.new_store(manager.slot().await).unwrap();
    let error = manager
        .instantiate(&mut store, |_, _| Ok(()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains(INIT_FAILS_MESSAGE), "{error:?}");
    // The start functions ran; readiness still waits for `init`.
    assert!(!manager.is_ready());
    let failure = manager.last_init_failure().unwrap();
    assert!(failure.contains(INIT_FAILS_MESSAGE), "{failure}");
    assert_eq!(manager.metrics().instances_created.load(Relaxed), 0);
    assert_eq!(manager.metrics().instantiation_failures.load(Relaxed), 1);
}

/// Polls `/metrics` until `name` reads `value`.
fn wait_for_metric(server: &Server, name: &str, value: u64) -> String {
    for _ in 0..400 {
        let metrics = server.admin_get("/metrics").body;
        if metric(&metrics, name) == value {
            return metrics;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("{name} never reached {value}; stderr:\n{}", server.stderr());
}

#[test]
fn prewarmed_first_request_lands_on_an_instance_that_already_ran_init() {
    let server = Server::start(&[
        SLOW_INIT,
        "--prewarm",
        "1",
        "--admin-addr",
        "127.0.0.1:0",
        "--expose-instance-id",
    ]);
    let metrics = wait_for_metric(&server, "reprise_warm_instances", 1);
    assert_eq!(metric(&metrics, "reprise_instances_created_total"), 1);
    assert_eq!(metric(&metrics, "reprise_calls_total"), 0);
    assert_eq!(server.admin_get("/ready").status, 200);

    let first = server.get("/");
    assert_eq!(first.status, 200);
    assert_eq!(first.instance, Some(1), "not the pre-warmed instance");
    assert_eq!(
        first.body,
        "initialized before the first request; init ran 1 time(s); request 1\n"
    );
}

#[test]
fn init_runs_once_per_instance_however_many_requests_it_serves() {
    let server = Server::start(&[SLOW_INIT, "--policy", "reuse", "--expose-instance-id"]);
    let responses: Vec<_> = (0..3).map(|_| server.get("/")).collect();
    for (n, response) in (1..).zip(&responses) {
        assert_eq!(response.instance, responses[0].instance, "not reused");
        assert_eq!(
            response.body,
            format!("initialized before the first request; init ran 1 time(s); request {n}\n")
        );
    }
}

#[test]
fn failing_init_keeps_the_server_unready_and_answers_500() {
    let server = Server::start(&[INIT_FAILS, "--admin-addr", "127.0.0.1:0"]);
    assert!(
        server.wait_for_log(INIT_FAILS_MESSAGE),
        "the guest's message was not logged; stderr:\n{}",
        server.stderr()
    );
    let ready = server.admin_get("/ready");
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains(INIT_FAILS_MESSAGE), "{}", ready.body);

    // A request gets a prompt 500 from the host, not a hang or a guest panic.
    let response = server.get("/");
    assert_eq!(response.status, 500);
    assert!(
        response.body.contains("could not be instantiated"),
        "{}",
        response.body
    );

    let metrics = server.admin_get("/metrics").body;
    assert_eq!(metric(&metrics, "reprise_instances_created_total"), 0);
    assert!(metric(&metrics, "reprise_instantiation_failures_total") >= 2);
    assert_eq!(server.admin_get("/ready").status, 503);
}

#[test]
fn idle_instances_go_after_the_idle_timeout_without_traffic() {
    // The startup instance proved readiness; with no pre-warm target it is
    // surplus, and the set scales down to zero. Readiness stays:
    // initialization succeeded.
    let server = Server::start(&[
        HELLO,
        "--policy",
        "reuse",
        "--idle-timeout",
        "200ms",
        "--admin-addr",
        "127.0.0.1:0",
    ]);
    let metrics = wait_for_metric(
        &server,
        "reprise_instances_retired_total{reason=\"idle\"}",
        1,
    );
    assert_eq!(metric(&metrics, "reprise_live_instances"), 0, "{metrics}");
    assert_eq!(metric(&metrics, "reprise_warm_instances"), 0, "{metrics}");
    assert_eq!(server.admin_get("/ready").status, 200);
    assert_eq!(server.get("/").status, 200);
    // The instance that served goes the same way, with nothing asking for
    // it again: the set itself notices it expired.
    let metrics = wait_for_metric(
        &server,
        "reprise_instances_retired_total{reason=\"idle\"}",
        2,
    );
    assert_eq!(metric(&metrics, "reprise_live_instances"), 0, "{metrics}");
}
