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
    assert!(out.contains("over 12 calls"), "{out}");
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
    assert!(actual.starts_with("failed: wasm trap"), "{actual}");
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
