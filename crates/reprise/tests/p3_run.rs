//! p3 commands: `reprise run` runs `wasi:cli/run@0.3` components, preferring
//! the 0.3 export over 0.2 as `wasmtime run` does; argv[0] is the file name;
//! a trap exits 134, unlike a guest's `exit(err)` (1).

mod support;

use reprise_test_programs::{COMMAND, COMMAND_P3};
use support::run;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_p3_run_export_is_preferred_and_gets_the_file_name_as_argv0() {
    let output = run(&["run", COMMAND_P3, "a", "b"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "p3 run: command_p3.wasm a b\n");
    let output = run(&["run", COMMAND_P3, "--repeat", "3", "--policy", "reuse"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "p3 run: command_p3.wasm\n".repeat(3));
}

#[test]
fn exit_codes_of_p3_commands() {
    let code = |args: &[&str]| {
        let mut all = vec!["run", COMMAND_P3];
        all.extend_from_slice(args);
        run(&all)
    };
    assert_eq!(code(&["fail"]).status.code(), Some(1));
    assert_eq!(code(&["7"]).status.code(), Some(7));
    let trapped = code(&["trap"]);
    assert_eq!(trapped.status.code(), Some(134), "{}", stderr(&trapped));
    assert!(
        stderr(&trapped).contains("error: run 1 (instance 1) trapped"),
        "{}",
        stderr(&trapped)
    );
    // A p2 command's trap (a second run on one instance) exits 134 too.
    let again = run(&["run", COMMAND, "--repeat", "2", "--policy", "reuse"]);
    assert_eq!(again.status.code(), Some(134), "{}", stderr(&again));
}

#[test]
fn call_and_check_reach_the_p3_run_export() {
    let output = run(&[
        "call",
        COMMAND_P3,
        "wasi:cli/run@0.3.2#run()",
        "--repeat",
        "2",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "ok\nok\n");
    let output = run(&[
        "check",
        COMMAND_P3,
        "--call",
        "wasi:cli/run@0.3.2#run()",
        "--calls",
        "20",
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        stdout(&output).contains("verdict: reuse-safe"),
        "{}",
        stdout(&output)
    );
}
