//! End-to-end tests of `reprise call`: the real binary calling exported functions of real
//! components, arguments and results in WAVE.

mod support;

use reprise_test_programs::{CALL_COUNTER, COMMAND, HELLO, VALUES};
use std::process::Output;
use support::run;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `reprise call FILE CALL ARGS...`, which must succeed; its stdout lines.
fn call_ok(file: &str, call: &str, args: &[&str]) -> Vec<String> {
    let output = run(&[&["call", file, call], args].concat());
    assert!(output.status.success(), "{call}: {}", stderr(&output));
    stdout(&output).lines().map(str::to_owned).collect()
}

/// `reprise call FILE CALL`, which must fail; its one `error: …` line.
fn call_err(file: &str, call: &str) -> String {
    let output = run(&["call", file, call]);
    assert!(
        !output.status.success(),
        "{call} succeeded: {}",
        stdout(&output)
    );
    assert_eq!(stdout(&output), "", "{call}");
    let stderr = stderr(&output);
    let errors: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{call}: {stderr}");
    errors[0].to_owned()
}

#[test]
fn counter_answers_1_every_time_under_fresh() {
    let lines = call_ok(
        CALL_COUNTER,
        "counter()",
        &["--policy", "fresh", "--repeat", "3"],
    );
    assert_eq!(lines, ["1", "1", "1"]);
}

#[test]
fn counter_counts_up_under_reuse() {
    let lines = call_ok(
        CALL_COUNTER,
        "counter()",
        &["--policy", "reuse", "--repeat", "3"],
    );
    assert_eq!(lines, ["1", "2", "3"]);
}

#[test]
fn max_calls_bounds_a_reused_instance() {
    let args = ["--policy", "reuse", "--max-calls", "2", "--repeat", "5"];
    assert_eq!(
        call_ok(CALL_COUNTER, "counter()", &args),
        ["1", "2", "1", "2", "1"]
    );
}

#[test]
fn prewarmed_instances_serve_calls_like_new_ones() {
    let args = ["--policy", "fresh", "--prewarm", "2", "--repeat", "4"];
    assert_eq!(
        call_ok(CALL_COUNTER, "counter()", &args),
        ["1", "1", "1", "1"]
    );
}

#[test]
fn unhinted_component_is_fresh_by_default() {
    assert_eq!(
        call_ok(CALL_COUNTER, "counter()", &["--repeat", "2"]),
        ["1", "1"]
    );
}

#[test]
fn interface_functions_are_called_by_their_full_name() {
    let args = ["--policy", "reuse", "--repeat", "2"];
    assert_eq!(
        call_ok(CALL_COUNTER, "reprise:test/counter#next()", &args),
        ["1", "2"]
    );
}

#[test]
fn an_interface_may_be_named_without_its_package() {
    let args = ["--policy", "reuse", "--repeat", "2"];
    assert_eq!(call_ok(CALL_COUNTER, "counter#next()", &args), ["1", "2"]);
    let error = call_err(CALL_COUNTER, "other#next()");
    assert!(error.starts_with("no export named `other#next`"), "{error}");
}

#[test]
fn a_bare_function_name_finds_the_one_interface_that_has_it() {
    let args = ["--policy", "reuse", "--repeat", "2"];
    assert_eq!(call_ok(CALL_COUNTER, "next()", &args), ["1", "2"]);
    // A top-level function of the name is what the bare name means.
    assert_eq!(call_ok(CALL_COUNTER, "counter()", &args), ["1", "2"]);
}

#[test]
fn a_function_taking_resources_is_listed_and_refused_by_name() {
    let error = call_err(HELLO, "nope()");
    assert!(
        error.contains("#handle(request: own<resource>, response-out: own<resource>)"),
        "{error}"
    );
    let error = call_err(HELLO, "handle(1, 2)");
    assert_eq!(
        error,
        "`handle` cannot be called with `reprise call`: its parameter `request` has type \
         own<resource>, which has no WAVE value"
    );
}

#[test]
fn chaos_replays_its_instance_history_from_the_seed() {
    let args = ["--repeat", "12", "--chaos=0.3", "--seed", "5"];
    let output = run(&[&["call", CALL_COUNTER, "counter()"][..], &args].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("chaos seed: 5"));
    let counts: Vec<u32> = stdout(&output)
        .lines()
        .map(|line| line.parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 12);
    // Instances were reused (a count past 1) and replaced (a 1 after the
    // first call) ...
    assert!(counts.iter().any(|&count| count > 1), "{counts:?}");
    assert!(counts[1..].contains(&1), "{counts:?}");
    // ... and two instances took turns: no single counter explains the
    // sequence.
    assert!(
        counts.windows(2).any(|w| w[1] != w[0] + 1 && w[1] != 1),
        "{counts:?}"
    );
    let again = call_ok(CALL_COUNTER, "counter()", &args);
    assert_eq!(again, stdout(&output).lines().collect::<Vec<_>>());
}

#[test]
fn what_the_guest_prints_stays_out_of_the_results() {
    assert_eq!(call_ok(COMMAND, "run#run()", &[]), ["ok"]);
}

#[test]
fn records_lists_options_and_results_round_trip() {
    let cases = [
        ("describe({x: 1, y: -2})", "\"(1, -2)\""),
        ("mirror({x: 1, y: 2})", "{x: 2, y: 1}"),
        ("sum([1, 2, 3])", "6"),
        ("sum([])", "0"),
        ("maybe(some(\"hi\"))", "ok(\"hi\")"),
        ("maybe(none)", "err(\"none\")"),
        // A trailing option argument may be left out.
        ("maybe()", "err(\"none\")"),
        ("greet(\"ann\", 2)", "[\"hello, ann\", \"hello, ann\"]"),
        ("nothing()", "()"),
    ];
    for (call, expected) in cases {
        assert_eq!(call_ok(VALUES, call, &[]), [expected], "{call}");
    }
}

#[test]
fn an_unknown_name_lists_the_available_functions() {
    let error = call_err(CALL_COUNTER, "nope()");
    assert_eq!(
        error,
        "no export named `nope`; available: counter() -> u32, announce(), \
         reprise:test/counter#next() -> u32"
    );
    let error = call_err(VALUES, "nope()");
    assert!(
        error.contains("describe(p: record { x: s32, y: s32 }) -> string"),
        "{error}"
    );
    assert!(
        error.contains("maybe(x: option<string>) -> result<string, string>"),
        "{error}"
    );
}

#[test]
fn an_interface_is_not_a_function() {
    assert_eq!(
        call_err(CALL_COUNTER, "reprise:test/counter()"),
        "`reprise:test/counter` is an interface, not a function; its functions: \
         reprise:test/counter#next() -> u32"
    );
}

#[test]
fn an_ill_typed_argument_names_the_parameter_and_its_type() {
    assert_eq!(
        call_err(VALUES, "describe(\"hi\")"),
        "argument 1 (`p`) of `describe`: expected record { x: s32, y: s32 }, got `\"hi\"`: \
         invalid value type"
    );
    assert_eq!(
        call_err(VALUES, "describe({x: 1})"),
        "argument 1 (`p`) of `describe`: expected record { x: s32, y: s32 }, got `{x: 1}`: \
         missing field \"y\""
    );
    assert_eq!(
        call_err(VALUES, "greet(\"a\", 300)"),
        "argument 2 (`times`) of `greet`: expected u8, got `300`: invalid value"
    );
    assert_eq!(
        call_err(VALUES, "sum([1, \"x\"])"),
        "argument 1 (`xs`) of `sum`: expected list<u32>, got `[1, \"x\"]`: invalid value type \
         at `\"x\"`"
    );
}

#[test]
fn malformed_wave_is_pointed_at() {
    assert_eq!(
        call_err(VALUES, "describe({x: 1,, y: 2})"),
        "invalid WAVE in the arguments of `describe`: unexpected token: Comma at `,`"
    );
    assert_eq!(
        call_err(VALUES, "describe({x: 1, y: 2}"),
        "expected a call such as `name(arg, ...)`, got `describe({x: 1, y: 2}`"
    );
}

#[test]
fn the_wrong_number_of_arguments_is_rejected() {
    assert_eq!(
        call_err(VALUES, "describe({x: 1, y: 2}, 3)"),
        "`describe` takes 1 argument (p: record { x: s32, y: s32 }), got 2 argument(s)"
    );
    assert_eq!(
        call_err(VALUES, "greet(\"a\")"),
        "`greet` takes 2 arguments (name: string, times: u8), got 1 argument(s)"
    );
}

#[test]
fn a_trap_is_an_error_naming_it() {
    let output = run(&["call", VALUES, "fail(\"boom\")"]);
    assert!(!output.status.success());
    let stderr = stderr(&output);
    // The guest's panic message passes through, then Reprise names the trap.
    assert!(stderr.contains("boom"), "{stderr}");
    assert!(
        stderr.contains(
            "error: call 1 of `fail` (instance 1) trapped: wasm trap: wasm `unreachable` \
             instruction executed"
        ),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_a_component_is_refused() {
    let notes = support::scratch_path("notes.txt");
    std::fs::write(&notes, "hello").unwrap();
    let error = call_err(notes.to_str().unwrap(), "f()");
    assert!(
        error.ends_with(
            "is not a WebAssembly binary (it does not start with the `\\0asm` magic bytes)"
        ),
        "{error}"
    );
}
