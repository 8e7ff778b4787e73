//! End-to-end tests of `reprise check` and of chaos's I/O perturbation.

mod support;

use reprise_test_programs::*;
use support::{Server, run};

/// Runs `reprise check ARGS`, returning (succeeded, stdout).
fn check(args: &[&str]) -> (bool, String) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let output = run(&all);
    let stdout = String::from_utf8(output.stdout).unwrap();
    (output.status.success(), stdout)
}

/// Runs `reprise check ARGS`, which must find that answers depend on reuse
/// from the second call on and recommend `v1 fresh`; its stdout.
fn check_depends_on_reuse(args: &[&str]) -> String {
    let (ok, out) = check(args);
    assert!(!ok, "{out}");
    assert!(out.contains("verdict: depends on reuse"), "{out}");
    assert!(
        out.contains("first divergence: call 2 under reuse"),
        "{out}"
    );
    assert!(out.contains("recommended hint: v1 fresh"), "{out}");
    out
}

#[test]
fn stateless_component_is_reuse_safe() {
    let (ok, out) = check(&[HELLO, "--seed", "1"]);
    assert!(ok, "{out}");
    assert!(out.contains("verdict: reuse-safe"), "{out}");
    assert!(out.contains("recommended hint: v1 reuse"), "{out}");
}

#[test]
fn counter_depends_on_reuse() {
    let out = check_depends_on_reuse(&[COUNTER, "--seed", "1"]);
    assert!(out.contains(r#"reuse answered: 200 "2\n""#), "{out}");
}

#[test]
fn state_corrupted_by_a_first_call_breaks_under_reuse() {
    let (ok, out) = check(&[CORRUPT, "--seed", "1"]);
    assert!(!ok);
    assert!(out.contains("verdict: breaks under reuse"), "{out}");
    assert!(out.contains("recommended hint: v1 fresh"), "{out}");
    assert!(out.contains("reprise hint set"), "{out}");
}

#[test]
fn leaking_component_reports_growth_as_json() {
    let (ok, out) = check(&[LEAK, "--seed", "1", "--json"]);
    assert!(ok, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"], "reuse-safe");
    let per_call = report["memory"]["bytes_per_call"].as_f64().unwrap();
    // 256 KiB leaked per call (memory grows in 64 KiB pages).
    assert!((200_000.0..400_000.0).contains(&per_call), "{per_call}");
    assert_eq!(report["memory"]["still_growing"], true);
    assert!(
        report["recommended_hint"]
            .as_str()
            .unwrap()
            .starts_with("v1 reuse max-calls=")
    );
    assert_eq!(report["chaos_seeds"], serde_json::json!([1, 2, 3]));
}

#[test]
fn scripts_drive_the_check() {
    let script = support::scratch_path("echo.script");
    std::fs::write(
        &script,
        "# echo\nPOST /a hello\nPOST /b some longer body text\nPUT /c x\n",
    )
    .unwrap();
    let (ok, out) = check(&[ECHO, "--script", script.to_str().unwrap(), "--seeds", "2"]);
    assert!(ok, "{out}");
    assert!(out.contains("verdict: reuse-safe"), "{out}");
    let (ok, _) = check(&[ECHO, "--script", "/no/such/script"]);
    assert!(!ok);
}

#[test]
fn function_calls_are_checked_fresh_reused_and_under_chaos() {
    let out = check_depends_on_reuse(&[CALL_COUNTER, "--call", "counter()", "--seed", "1"]);
    assert!(out.contains("  reuse answered: 2\n"), "{out}");

    let (ok, out) = check(&[VALUES, "--call", "sum([1, 2, 3])", "--seed", "1"]);
    assert!(ok, "{out}");
    assert!(out.contains("verdict: reuse-safe"), "{out}");
    // The memory trend is taken over the long run.
    assert!(out.contains("per call over 1000 calls"), "{out}");
}

#[test]
fn a_command_that_runs_once_per_instance_breaks_under_reuse() {
    let (ok, out) = check(&[COMMAND, "--call", "run#run()", "--seed", "1", "--json"]);
    assert!(!ok, "{out}");
    // The command prints on stdout; none of it gets into the report.
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"], "breaks under reuse");
    assert_eq!(report["recommended_hint"], "v1 fresh");
    let divergence = &report["first_divergence"];
    assert_eq!(
        divergence["expected"],
        "ok, printing \"hello from command \\n\""
    );
    let actual = divergence["actual"].as_str().unwrap();
    assert!(actual.starts_with("failed: "), "{actual}");
}

#[test]
fn what_a_call_prints_is_part_of_its_answer() {
    let out = check_depends_on_reuse(&[CALL_COUNTER, "--call", "announce()", "--seed", "1"]);
    assert!(
        out.contains("  fresh answered: (), printing \"call 1\\n\""),
        "{out}"
    );
    assert!(
        out.contains("  reuse answered: (), printing \"call 2\\n\""),
        "{out}"
    );
}

#[test]
fn a_script_of_calls_drives_the_check() {
    let script = support::scratch_path("calls.script");
    std::fs::write(&script, "# calls\nnext()\ncounter()\n\nnext()\n").unwrap();
    let script = script.to_str().unwrap();
    let (ok, out) = check(&[CALL_COUNTER, "--script", script, "--seed", "1", "--json"]);
    assert!(!ok, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["calls"], 3);
    assert_eq!(report["first_divergence"]["call"], 2);
    assert_eq!(report["first_divergence"]["actual"], "2");

    let output = run(&["check", CALL_COUNTER]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has no wasi:http handler"), "{stderr}");
    assert!(stderr.contains("--call 'name(args)'"), "{stderr}");
    assert!(stderr.contains("counter() -> u32"), "{stderr}");
}

#[test]
fn echo_survives_chaos_chunking_exactly() {
    // P=1 perturbs every request's I/O.
    let server = Server::start(&[ECHO, "--chaos=1", "--seed", "11"]);
    let body: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    for _ in 0..5 {
        let (_, echoed) = server.post("/", &body);
        assert_eq!(echoed.len(), body.len());
        assert!(echoed == body, "the echoed body differs");
    }
}

/// Runs `reprise check ARGS`: (exit code, stdout, stderr).
fn check_full(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let output = run(&all);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn first_callers_header_leaks_even_when_every_call_sends_the_same() {
    let script = support::scratch_path("same-user.http");
    let one = "GET /greet HTTP/1.1\nX-User: alice\n\n";
    std::fs::write(&script, [one; 4].join("###\n")).unwrap();
    let repro = support::scratch_path("first-caller-repro.http");
    let (code, out, _) = check_full(&[
        CHECK_FIRST_CALLER,
        "--script",
        script.to_str().unwrap(),
        "--seed",
        "1",
        "--repro",
        repro.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("verdict: leaks between calls"), "{out}");
    assert!(
        out.contains(
            "leak: the value of header x-user sent in call 1 appeared in the body of call 2"
        ),
        "{out}"
    );
    assert!(out.contains("reproduction: 2 calls (shrunk"), "{out}");
    assert!(out.contains("--seed 1"), "{out}");
    // The shrunk script replays the leak by itself.
    let (code, out, _) = check_full(&[
        CHECK_FIRST_CALLER,
        "--script",
        repro.to_str().unwrap(),
        "--seed",
        "1",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("verdict: leaks between calls"), "{out}");
    // And the default script finds it too.
    let (code, out, _) = check_full(&[CHECK_FIRST_CALLER, "--seed", "2"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("verdict: leaks between calls"), "{out}");
}

#[test]
fn earlier_bodies_echoed_leak() {
    let script = support::scratch_path("history.http");
    std::fs::write(
        &script,
        "POST /\nContent-Type: text/plain\n\nfirst body\n###\nPOST /\nContent-Type: text/plain\n\nsecond body\n###\nPOST /\n\nthird body\n",
    )
    .unwrap();
    let (code, out, _) = check_full(&[
        CHECK_ECHO_HISTORY,
        "--script",
        script.to_str().unwrap(),
        "--seed",
        "1",
        "--json",
    ]);
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"], "leaks between calls");
    let evidence = report["leaks"][0]["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("body sent in call 1 appeared in the body of call 2"),
        "{evidence}"
    );
}

#[test]
fn a_table_that_fills_up_breaks_after_forty_calls() {
    let (code, out, _) = check_full(&[CHECK_TABLE_FULL, "--seed", "1"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("verdict: breaks under reuse"), "{out}");
    assert!(
        out.contains("calls 1-40 succeeded on one instance, call 41 failed"),
        "{out}"
    );
    assert!(
        out.contains("recommended hint: v1 reuse max-calls=40"),
        "{out}"
    );
}

#[test]
fn p3_state_across_an_await_is_caught_by_concurrent_calls() {
    let (code, out, _) = check_full(&[CHECK_P3_AWAIT_STATE, "--seed", "1"]);
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("verdict: reuse-safe"), "{out}");
    assert!(out.contains("concurrent seed"), "{out}");
}

#[test]
fn look_alikes_are_reuse_safe() {
    for component in [CHECK_RANDOM_TOKEN, CHECK_P3_AWAIT_STATELESS, HELLO] {
        let (code, out, _) = check_full(&[component, "--seed", "1"]);
        assert_eq!(code, 0, "{component}: {out}");
        assert!(out.contains("verdict: reuse-safe"), "{out}");
    }
    let (_, out, _) = check_full(&[CHECK_RANDOM_TOKEN, "--seed", "1"]);
    assert!(out.contains("masked: body of calls 1-12"), "{out}");
    let script = support::scratch_path("echo.http");
    std::fs::write(
        &script,
        "POST /a HTTP/1.1\nContent-Type: application/json\nX-Trace: abcdef\n\n{\"name\": \"alice\"}\n###\nPOST /b\n\nplain text body\n",
    )
    .unwrap();
    let (code, out, _) = check_full(&[ECHO, "--script", script.to_str().unwrap(), "--seed", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("with 2 calls") || out.contains("verdict: reuse-safe"),
        "{out}"
    );
}

#[test]
fn bad_scripts_name_the_line_and_exit_2() {
    let cases = [
        (
            "bad1.script",
            "GET /\nGET /?q=<b>\n",
            "error: script line 2: ",
        ),
        (
            "bad2.http",
            "GET /\nX-User alice\n",
            "error: script line 2: expected a header",
        ),
        (
            "bad3.http",
            "BREW /pot\n",
            "error: script line 1: `BREW` is not an HTTP method",
        ),
        (
            "bad4.http",
            "# nothing\n###\nX-User: a\n",
            "error: script line 3: expected a request line",
        ),
    ];
    for (name, text, expected) in cases {
        let script = support::scratch_path(name);
        std::fs::write(&script, text).unwrap();
        let (code, _, err) = check_full(&[HELLO, "--script", script.to_str().unwrap()]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn junit_has_a_test_case_per_run() {
    let junit = support::scratch_path("counter.xml");
    let (code, out, _) = check_full(&[
        COUNTER,
        "--seed",
        "1",
        "--json",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let runs = report["runs"].as_array().unwrap().len();
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), runs, "{xml}");
    assert_eq!(xml.matches("</testcase>").count(), runs, "{xml}");
    assert!(xml.contains("<failure "), "{xml}");
    assert!(xml.trim_end().ends_with("</testsuites>"), "{xml}");
}

#[test]
fn function_components_get_token_variation() {
    let (code, out, _) = check_full(&[CHECK_GREETER, "--call", "greet(\"alice\")", "--seed", "1"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("verdict: leaks between calls"), "{out}");
    assert!(
        out.contains("string argument 1 sent in call 1 appeared in the result of call 2"),
        "{out}"
    );
    let (code, out, _) = check_full(&[CHECK_GREETER, "--call", "add(1, 2)", "--seed", "1"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_one_request_script_still_shows_a_leak() {
    let script = support::scratch_path("one-user.http");
    std::fs::write(&script, "GET / HTTP/1.1\nX-User: alice\n").unwrap();
    let script = script.to_str().unwrap();
    let (code, out, _) = check_full(&[CHECK_FIRST_CALLER, "--script", script, "--seed", "1"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("verdict: leaks between calls"), "{out}");
    // The long run varies each repetition too, and reports what leaked.
    let (_, out, _) = check_full(&[
        CHECK_FIRST_CALLER,
        "--script",
        script,
        "--seed",
        "1",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let leaks = report["leaks"].as_array().unwrap();
    assert!(leaks.iter().any(|l| l["run"] == "long reuse"), "{out}");

    let script = support::scratch_path("one-q.http");
    std::fs::write(&script, "GET /?q=alice HTTP/1.1\n").unwrap();
    let script = script.to_str().unwrap();
    let (code, out, _) = check_full(&[
        CHECK_P3_AWAIT_STATE,
        "--script",
        script,
        "--seed",
        "1",
        "--concurrency",
        "4",
        "--json",
    ]);
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_ne!(report["verdict"], "reuse-safe", "{out}");
    let concurrent: Vec<&serde_json::Value> = report["run_details"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["label"].as_str().unwrap().starts_with("concurrent"))
        .collect();
    assert!(!concurrent.is_empty(), "{out}");
    assert!(concurrent.iter().all(|r| r["concurrency"] == 4), "{out}");
}

#[test]
fn a_concurrent_finding_is_shrunk_and_replayed_with_its_seed() {
    let (code, out, _) = check_full(&[CHECK_P3_AWAIT_STATE, "--seed", "1", "--json"]);
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let repro = &report["reproduction"];
    assert!(
        repro["from_run"]
            .as_str()
            .unwrap()
            .starts_with("concurrent"),
        "{out}"
    );
    let calls = repro["calls"].as_u64().unwrap();
    assert!((2..12).contains(&calls), "{out}");
    let replay = repro["replay"].as_str().unwrap();
    assert!(replay.contains("--seed 1"), "{replay}");
    assert!(replay.contains("--concurrency "), "{replay}");
}

#[test]
fn a_repro_of_a_full_table_replays_with_its_bound() {
    let repro = support::scratch_path("table-full-repro.http");
    let (code, out, _) = check_full(&[
        CHECK_TABLE_FULL,
        "--seed",
        "1",
        "--repro",
        repro.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("reproduction: 41 calls (shrunk"), "{out}");
    let (code, out, _) = check_full(&[
        CHECK_TABLE_FULL,
        "--script",
        repro.to_str().unwrap(),
        "--seed",
        "1",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("verdict: breaks under reuse"), "{out}");
    assert!(
        out.contains("recommended hint: v1 reuse max-calls=40"),
        "{out}"
    );
    assert!(out.contains("reproduction: 41 calls (shrunk"), "{out}");
}

// What the CLI adds around the check: exit codes, the printed
// reproduction, a closed stdout, declared concurrency.

/// Regression: a component whose every call fails on a fresh instance was
/// rated `reuse-safe` (exit 0): there was nothing to compare reuse against.
/// A check that cannot run exits 2, as bad input does; a finding exits 1.
#[test]
fn a_check_that_cannot_run_exits_2_and_a_finding_1() {
    let (code, _, err) = check_full(&[INIT_FAILS, "--calls", "20"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("error: every call failed on a fresh instance"),
        "{err}"
    );
    let not_a_component = support::scratch_path("core.wasm");
    std::fs::write(&not_a_component, b"\0asm\x01\0\0\0").unwrap();
    let (code, _, err) = check_full(&[not_a_component.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("error: ") || err.contains("\nerror: "),
        "{err}"
    );
    let (code, _, _) = check_full(&[COUNTER, "--seed", "1"]);
    assert_eq!(code, 1);
}

/// The printed reproduction carries what makes its calls differ: here the
/// header, which a one-line summary left out.
#[test]
fn the_printed_reproduction_shows_headers() {
    let (code, out, _) = check_full(&[CHECK_FIRST_CALLER, "--seed", "1"]);
    assert_eq!(code, 1, "{out}");
    let repro = out.split("reproduction:").nth(1).expect("a reproduction");
    assert!(repro.contains("  | x-user: "), "{out}");
}

/// Regression: `reprise check … | head -1` panicked (exit 101) on the
/// first print after the reader left.
#[test]
fn a_reader_that_stops_early_ends_the_check_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = support::reprise()
        .args(["check", CHECK_FIRST_CALLER, "--seed", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is gone.
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(output.status.code(), Some(101), "{stderr}");
}

/// Regression: check's reused instances took up to 16 calls at once even
/// from a component that declares `max-concurrency=1`; the host never
/// exceeds what a component declares. Declared so, the p3 component that
/// keeps state across an await is reuse-safe: its calls never overlap.
#[test]
fn check_never_exceeds_the_declared_max_concurrency() {
    let hinted = support::scratch_path("await-state-serial.wasm");
    let output = support::run(&[
        "hint",
        "set",
        CHECK_P3_AWAIT_STATE,
        "v1 reuse max-concurrency=1",
        "-o",
        hinted.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let (code, out, err) = check_full(&[hinted.to_str().unwrap(), "--json", "--seed", "3"]);
    let report: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    for run in report["run_details"].as_array().unwrap() {
        assert!(run["concurrency"].as_u64().unwrap() <= 1, "{run}");
    }
    assert_eq!(report["verdict"], "reuse-safe", "{out}");
    assert_eq!(code, 0);
}

/// Regression: check's reuse run relied on a 5 ms sleep to find its
/// instance parked again; a guest still working after its answer and body
/// (here for 30 ms) sent the next call to another instance. The run waits
/// for the instance to be given back instead.
#[test]
fn the_reuse_run_waits_for_a_guest_still_working_after_its_answer() {
    let script = support::scratch_path("slow.txt");
    std::fs::write(&script, "GET /slow\nGET /slow\nGET /slow\n").unwrap();
    let html = support::scratch_path("slow.html");
    let (code, out, err) = check_full(&[
        HALF_BODY,
        "--script",
        script.to_str().unwrap(),
        "--seed",
        "1",
        "--calls",
        "10",
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("the script once on one reused instance; 3 calls on 1 instance"),
        "{page}"
    );
}
