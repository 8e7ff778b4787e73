//! Pre-initialization (`--preinit`, `reprise preinit`, docs/initialization.md):
//! deterministic init runs once at load and instances start from its
//! snapshot; init that asks for the clock is told why it is not
//! snapshotted and still served; a failing init is reported once; wizer's
//! own `wizer-initialize` convention is snapshotted too.

mod support;

use reprise_test_programs::{INIT_FAILS, PREINIT_CLOCK, PREINIT_HEAVY, PREINIT_WIZER};
use support::{Server, metric, run, scratch_path};

/// What `preinit-heavy` prints on stderr each time its init really runs.
const INIT_RAN: &str = "preinit-heavy: init ran";

/// What `preinit-wizer` prints on stderr each time its `wizer-initialize`
/// really runs.
const WIZER_INIT_RAN: &str = "preinit-wizer: wizer-initialize ran";

/// How many times init really ran in `server`'s process.
fn inits(server: &Server) -> usize {
    server.stderr().matches(INIT_RAN).count()
}

/// Waits (a while) for `server` to have printed that init ran `n` times:
/// what guests print reaches the log reader a moment after the answer.
fn wait_for_inits(server: &Server, n: usize) -> usize {
    for _ in 0..100 {
        if inits(server) >= n {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    inits(server)
}

/// `value VALUE` of a `preinit-heavy` answer.
fn value(body: &str) -> &str {
    body.split(';').next().unwrap()
}

#[test]
fn deterministic_init_runs_once_at_load_and_every_instance_starts_from_the_snapshot() {
    let server = Server::start(&[PREINIT_HEAVY, "--admin-addr", "127.0.0.1:0"]);
    assert!(
        server
            .stderr()
            .contains("pre-initialized: reprise:init/init@0.1.0#init ran once at load in"),
        "{}",
        server.stderr()
    );
    let answers: Vec<_> = (0..5).map(|_| server.get("/")).collect();
    for answer in &answers {
        assert_eq!(answer.status, 200);
        assert!(
            answer
                .body
                .ends_with("; init ran 1 time(s) in this instance; request 1\n"),
            "{}",
            answer.body
        );
        assert_eq!(value(&answer.body), value(&answers[0].body));
    }
    // Five fresh instances, one init.
    assert_eq!(inits(&server), 1, "{}", server.stderr());
    let metrics = server.admin_get("/metrics").body;
    assert!(
        metric(&metrics, "reprise_instances_from_snapshot_total") >= 5,
        "{metrics}"
    );
    assert_eq!(server.admin_get("/ready").status, 200);
}

#[test]
fn with_preinit_never_every_fresh_instance_runs_init_and_answers_the_same() {
    let snapshot = Server::start(&[PREINIT_HEAVY]);
    let expected = snapshot.get("/").body;
    let server = Server::start(&[
        PREINIT_HEAVY,
        "--preinit",
        "never",
        "--admin-addr",
        "127.0.0.1:0",
    ]);
    for _ in 0..3 {
        assert_eq!(server.get("/").body, expected);
    }
    assert!(wait_for_inits(&server, 3) >= 3, "{}", server.stderr());
    assert!(
        !server.stderr().contains("pre-initialized"),
        "{}",
        server.stderr()
    );
    let metrics = server.admin_get("/metrics").body;
    assert_eq!(metric(&metrics, "reprise_instances_from_snapshot_total"), 0);
}

#[test]
fn init_reading_the_clock_falls_back_to_per_instance_init_saying_why() {
    let server = Server::start(&[PREINIT_CLOCK, "--admin-addr", "127.0.0.1:0"]);
    let stderr = server.stderr();
    assert!(
        stderr.contains(
            "not pre-initialized: init called `wasi:clocks/wall-clock.now`, whose result is not \
             fixed for the life of the process"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("every instance runs init itself"),
        "{stderr}"
    );
    for _ in 0..2 {
        let answer = server.get("/");
        assert_eq!(answer.status, 200);
        assert!(
            answer
                .body
                .ends_with("; init ran 1 time(s) in this instance\n"),
            "{}",
            answer.body
        );
    }
    let metrics = server.admin_get("/metrics").body;
    assert_eq!(metric(&metrics, "reprise_instances_from_snapshot_total"), 0);
    assert_eq!(server.admin_get("/ready").status, 200);
}

#[test]
fn a_failing_init_at_load_is_reported_once_and_the_server_stays_unready() {
    let message = "database unreachable: connection refused";
    let server = Server::start(&[INIT_FAILS, "--admin-addr", "127.0.0.1:0"]);
    let at_load = "failed when run at load: the component's init returned an error: ";
    assert!(server.wait_for_log(at_load), "{}", server.stderr());
    assert!(server.stderr().contains(message), "{}", server.stderr());
    let ready = server.admin_get("/ready");
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains(message), "{}", ready.body);
    let answer = server.get("/");
    assert_eq!(answer.status, 500, "{}\n{}", answer.body, server.stderr());
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Still serving, and the snapshot was not retried.
    assert_eq!(server.admin_get("/ready").status, 503);
    assert_eq!(
        server.stderr().matches(at_load).count(),
        1,
        "{}",
        server.stderr()
    );
}

#[test]
fn preinit_writes_a_valid_component_that_keeps_its_hint_and_serves_the_same_answers() {
    let hinted = scratch_path("preinit-hinted.wasm");
    let out = scratch_path("preinit-out.wasm");
    let hinted_str = hinted.to_str().unwrap();
    let out_str = out.to_str().unwrap();
    let set = run(&[
        "hint",
        "set",
        PREINIT_HEAVY,
        "v1 reuse max-calls=7",
        "-o",
        hinted_str,
    ]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let made = run(&["preinit", hinted_str, "-o", out_str]);
    let stderr = String::from_utf8_lossy(&made.stderr);
    assert!(made.status.success(), "{stderr}");
    assert!(stderr.contains("ran once in"), "{stderr}");

    let bytes = std::fs::read(&out).unwrap();
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&bytes)
        .expect("the pre-initialized component validates");
    let shown = run(&["hint", "show", out_str]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("max-calls=7"), "{shown}");

    let original = Server::start(&[PREINIT_HEAVY, "--policy", "fresh"]);
    let expected = original.get("/").body;
    // Even per instance, init has nothing left to do: its state is in memory.
    let server = Server::start(&[out_str, "--preinit", "never", "--policy", "fresh"]);
    for _ in 0..2 {
        assert_eq!(server.get("/").body, expected);
    }
    assert_eq!(inits(&server), 0, "{}", server.stderr());
}

#[test]
fn preinit_refuses_nondeterministic_init_naming_the_import() {
    let out = scratch_path("preinit-clock-out.wasm");
    let made = run(&["preinit", PREINIT_CLOCK, "-o", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&made.stderr);
    assert!(!made.status.success());
    assert!(stderr.contains("`wasi:clocks/wall-clock.now`"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn check_compares_the_snapshot_with_per_instance_init() {
    let checked = run(&[
        "check",
        PREINIT_HEAVY,
        "--seeds",
        "1",
        "--calls",
        "12",
        "--seed",
        "7",
    ]);
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(
        stdout.contains(
            "pre-initialized: the snapshot answered like per-instance init over 12 calls"
        ),
        "{stdout}\n{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let never = run(&[
        "check",
        PREINIT_HEAVY,
        "--preinit",
        "never",
        "--seeds",
        "1",
        "--calls",
        "12",
    ]);
    assert!(!String::from_utf8_lossy(&never.stdout).contains("pre-initialized"));
}

/// The names a component exports at its top level.
fn component_exports(bytes: &[u8]) -> Vec<String> {
    use wasmparser::{Parser, Payload};
    let mut exports = Vec::new();
    let mut depth = 0;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.unwrap() {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    exports.push(export.unwrap().name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    exports
}

/// The `table checksum N` of a `preinit-wizer` answer.
fn checksum(body: &str) -> &str {
    body.split_once(", ").unwrap().1
}

#[test]
fn without_wizer_initialize_a_wizer_component_computes_its_state_lazily() {
    let server = Server::start(&[
        PREINIT_WIZER,
        "--preinit",
        "never",
        "--admin-addr",
        "127.0.0.1:0",
    ]);
    let first = server.get("/").body;
    assert!(
        first.starts_with("initialized: lazily, table checksum "),
        "{first}"
    );
    for _ in 0..2 {
        assert_eq!(server.get("/").body, first);
    }
    let stderr = server.stderr();
    assert!(!stderr.contains("pre-initialized"), "{stderr}");
    // Reprise calls only `reprise:init` per instance, never `wizer-initialize`.
    assert!(!stderr.contains(WIZER_INIT_RAN), "{stderr}");
    let metrics = server.admin_get("/metrics").body;
    assert_eq!(metric(&metrics, "reprise_instances_from_snapshot_total"), 0);
}

/// `requests` answers from `server` all start initialized, with the table
/// the lazy answer (`lazily`) built on its first request.
fn answers_initialized(server: &Server, requests: usize, lazily: &str) {
    for _ in 0..requests {
        let answer = server.get("/");
        assert_eq!(answer.status, 200);
        assert!(
            answer.body.starts_with("initialized: yes, "),
            "{}",
            answer.body
        );
        assert_eq!(checksum(&answer.body), checksum(lazily));
    }
}

#[test]
fn wizer_initialize_runs_once_at_load_and_every_instance_starts_from_its_snapshot() {
    let lazy = Server::start(&[PREINIT_WIZER, "--preinit", "never"]);
    let lazily = lazy.get("/").body;
    let server = Server::start(&[PREINIT_WIZER, "--admin-addr", "127.0.0.1:0"]);
    assert!(
        server
            .stderr()
            .contains("pre-initialized: wizer-initialize ran once at load in"),
        "{}",
        server.stderr()
    );
    answers_initialized(&server, 5, &lazily);
    // Five fresh instances, one `wizer-initialize`, at load.
    assert_eq!(
        server.stderr().matches(WIZER_INIT_RAN).count(),
        1,
        "{}",
        server.stderr()
    );
    let metrics = server.admin_get("/metrics").body;
    assert!(
        metric(&metrics, "reprise_instances_from_snapshot_total") >= 5,
        "{metrics}"
    );
    assert_eq!(server.admin_get("/ready").status, 200);
}

#[test]
fn preinit_of_a_wizer_component_writes_it_initialized() {
    assert!(
        component_exports(&std::fs::read(PREINIT_WIZER).unwrap())
            .iter()
            .any(|export| export == "wizer-initialize")
    );
    let out = scratch_path("preinit-wizer-out.wasm");
    let out_str = out.to_str().unwrap();
    let made = run(&["preinit", PREINIT_WIZER, "-o", out_str]);
    let stderr = String::from_utf8_lossy(&made.stderr);
    assert!(made.status.success(), "{stderr}");
    assert!(stderr.contains("wizer-initialize ran once in"), "{stderr}");

    let bytes = std::fs::read(&out).unwrap();
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&bytes)
        .expect("the pre-initialized component validates");
    let exports = component_exports(&bytes);
    assert!(
        exports
            .iter()
            .any(|export| export.starts_with("wasi:http/incoming-handler@0.2")),
        "{exports:?}"
    );

    let lazy = Server::start(&[PREINIT_WIZER, "--preinit", "never"]);
    let lazily = lazy.get("/").body;
    // The state is in the written component: served as it is, without
    // init, every instance starts initialized.
    let server = Server::start(&[out_str, "--preinit", "never", "--admin-addr", "127.0.0.1:0"]);
    answers_initialized(&server, 2, &lazily);
    // Init never ran in this process.
    let stderr = server.stderr();
    assert!(!stderr.contains("pre-initialized"), "{stderr}");
    assert!(!stderr.contains(WIZER_INIT_RAN), "{stderr}");
    let metrics = server.admin_get("/metrics").body;
    assert_eq!(metric(&metrics, "reprise_instances_from_snapshot_total"), 0);
}
