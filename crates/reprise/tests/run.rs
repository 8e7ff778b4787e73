//! End-to-end tests of `reprise run`: the real binary running a real command component built with
//! Rust's std (`fn main`), once or repeatedly, on fresh or reused instances.

mod support;

use reprise_test_programs::{CALL_COUNTER, COMMAND};
use std::process::Output;
use support::run;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn stdout_and_stderr_pass_through() {
    // With no `RUST_LOG`, as a user runs it (the test helper asks for
    // Reprise's own lines).
    let output = support::reprise()
        .env_remove("RUST_LOG")
        .args(["run", COMMAND, "a", "b"])
        .output()
        .expect("run reprise");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "hello from command a b\n");
    // stderr is the command's alone, as under `wasmtime run`: tools that
    // compare a command's output see no host lines in it.
    assert_eq!(stderr(&output), "command stderr\n");
}

#[test]
fn the_exit_code_is_the_commands() {
    let output = run(&["run", COMMAND, "3"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(stdout(&output), "hello from command 3\n");
}

#[test]
fn arguments_that_look_like_flags_follow_a_double_dash() {
    let output = run(&["run", COMMAND, "--repeat", "2", "--", "--verbose"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "hello from command --verbose\n".repeat(2));
}

#[test]
fn fresh_instances_run_a_command_many_times() {
    let output = run(&["run", COMMAND, "--policy", "fresh", "--repeat", "3"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "hello from command \n".repeat(3));
}

#[test]
fn a_command_that_exits_gets_a_new_instance_even_under_reuse() {
    // `exit` ends its instance, so the next run cannot reuse it; every run fails with 7.
    let output = run(&["run", COMMAND, "7", "--policy", "reuse", "--repeat", "2"]);
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    assert_eq!(stdout(&output), "hello from command 7\n".repeat(2));
}

#[test]
fn a_second_run_on_one_instance_is_explained() {
    let output = run(&["run", COMMAND, "--policy", "reuse", "--repeat", "2"]);
    assert!(!output.status.success());
    // The first run completed normally.
    assert_eq!(stdout(&output), "hello from command \n");
    let stderr = stderr(&output);
    let error = stderr
        .lines()
        .find_map(|line| line.strip_prefix("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert_eq!(
        error,
        format!(
            "run 2 trapped on instance 1, which had run before: a command built with a standard \
             toolchain (Rust's `fn main`, C's `main`) can run only once per instance, and its \
             entry point traps when called again. Give every run a new instance: declare the \
             `fresh` hint (`reprise hint set {COMMAND} 'v1 fresh' -o OUT`) or run with \
             `--policy fresh` (wasm trap: wasm `unreachable` instruction executed in `_start`)"
        )
    );
}

/// A copy of the command fixture, written to scratch file `name` with the
/// `v1 fresh` hint; its path.
fn fresh_hinted_command(name: &str) -> String {
    let hinted = support::scratch_path(name).to_str().unwrap().to_owned();
    let set = run(&["hint", "set", COMMAND, "v1 fresh", "-o", &hinted]);
    assert!(set.status.success(), "{}", stderr(&set));
    hinted
}

#[test]
fn the_fresh_hint_makes_auto_run_a_command_many_times() {
    // The advice above, followed: the hinted command runs repeatedly under the default policy.
    let hinted = fresh_hinted_command("command-fresh.wasm");
    let output = run(&["run", &hinted, "--repeat", "3"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "hello from command \n".repeat(3));
    assert!(
        stderr(&output).contains("asks for a fresh instance per call"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn chaos_reuses_even_a_fresh_hinted_command_unless_told_not_to() {
    let hinted = fresh_hinted_command("command-fresh-chaos.wasm");
    // Seed 1 lands a run on an instance that ran before within 8 runs.
    let chaos = ["--repeat", "8", "--chaos", "--seed", "1"];
    let output = run(&[&["run", &hinted][..], &chaos].concat());
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("chaos seed: 1"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("which had run before"),
        "{}",
        stderr(&output)
    );
    let output = run(&[&["run", &hinted, "--chaos-respect-hint"][..], &chaos].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "hello from command \n".repeat(8));
}

#[test]
fn a_component_that_is_not_a_command_is_refused() {
    let output = run(&["run", CALL_COUNTER]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(
            "error: the component does not export wasi:cli/run (0.2.x or 0.3.x), so it is not a command; its \
             functions: counter() -> u32, announce(), reprise:test/counter#next() -> u32 (use \
             `reprise call` for those)"
        ),
        "{}",
        stderr(&output)
    );
}

#[test]
fn environment_variables_are_given_or_passed_on() {
    let output = support::reprise()
        .env("REPRISE_TEST_GREETING", "from the host")
        .args([
            "run",
            COMMAND,
            "--env",
            "GREETING=hi there",
            "--repeat",
            "2",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "hello from command \ngreeting: hi there\n".repeat(2)
    );
    // Nothing leaks from reprise's own environment unless named.
    let output = run(&["run", COMMAND]);
    assert_eq!(stdout(&output), "hello from command \n");
    let output = support::reprise()
        .env("GREETING", "passed on")
        .args(["run", COMMAND, "--env", "GREETING"])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&output),
        "hello from command \ngreeting: passed on\n"
    );
}

#[test]
fn a_directory_is_readable_under_its_guest_path() {
    let dir = support::scratch_path("dir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("note.txt"), "a note\n").unwrap();
    let preopen = format!("{}::/data", dir.display());
    let output = run(&["run", COMMAND, "--dir", &preopen, "cat", "/data/note.txt"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "hello from command cat /data/note.txt\na note\n"
    );
    // Without the flag the guest sees no filesystem at all.
    let output = run(&["run", COMMAND, "cat", "/data/note.txt"]);
    assert_eq!(output.status.code(), Some(1));
    let output = run(&["run", COMMAND, "--dir", "/no/such/dir", "cat", "x"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("cannot open /no/such/dir"),
        "{}",
        stderr(&output)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stdin_reaches_the_command() {
    use std::io::Write;
    let mut child = support::reprise()
        .args(["run", COMMAND, "stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped in\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "hello from command stdin\npiped in\n");
}
