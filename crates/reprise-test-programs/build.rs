//! Builds the guest workspace (`guest/`) for wasm32-wasip2 and generates `$OUT_DIR/fixtures.rs`
//! with the path of every fixture component.
//!
//! The guest build lives in `<target dir>/guest`, shared by debug and release host builds.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

/// Variables a build script receives that must not reach the nested cargo: they describe the
/// host build (flags, target, features, cfgs) or would redirect its output.
const HOST_BUILD_VARS: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "RUSTC_WORKSPACE_WRAPPER",
    // The outer build's jobserver: its file descriptors are not valid in the
    // nested cargo (seen here as another rustc's output arriving on a probe's
    // stdin), so the nested build gets its own job count instead.
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
];
const HOST_BUILD_VAR_PREFIXES: &[&str] = &["CARGO_FEATURE_", "CARGO_CFG_"];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let guest_dir = manifest_dir
        .join("../../guest")
        .canonicalize()
        .expect("guest/ exists");
    let guest_target_dir = target_dir(&out_dir).join("guest");

    println!(
        "cargo:rerun-if-changed={}",
        guest_dir.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        guest_dir.join("Cargo.lock").display()
    );
    // The guest crate embeds hints with reprise-hint's encoder.
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("../reprise-hint/src").display()
    );
    for entry in fs::read_dir(&guest_dir).unwrap() {
        let path = entry.unwrap().path();
        // Cargo scans a directory recursively for changes.
        if path.is_dir() && path.file_name().is_some_and(|name| name != "target") {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    ensure_wasm_target();
    build_guests(&guest_dir, &guest_target_dir);

    let wasm_dir = guest_target_dir.join(WASM_TARGET).join("release");
    let fixtures = fixture_names(&guest_dir.join("fixtures"));
    let mut code = String::new();
    for name in &fixtures {
        let wasm = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
        // Not a rerun-if-changed: the nested build writes these while this script runs, which
        // would make cargo rerun it (and rebuild every dependent) once more.
        assert!(
            wasm.is_file(),
            "the guest build did not produce {}",
            wasm.display()
        );
        for line in module_docs(&guest_dir.join("fixtures").join(name)) {
            writeln!(code, "///{line}").unwrap();
        }
        writeln!(
            code,
            "pub const {}: &str = {:?};",
            const_name(name),
            wasm.to_str().unwrap()
        )
        .unwrap();
    }
    code.push_str(
        "/// Every fixture: `(name, path)`, by name.\npub const ALL: &[(&str, &str)] = &[\n",
    );
    for name in &fixtures {
        writeln!(code, "    ({name:?}, {}),", const_name(name)).unwrap();
    }
    code.push_str("];\n");
    assert!(
        fixtures.iter().any(|name| name == "example"),
        "guest/fixtures/example is missing"
    );
    let example = wasm_dir.join("example.wasm");
    writeln!(
        code,
        "/// The bundled example component (the `example` fixture), served by `reprise serve` with\n\
         /// no argument.\npub const EXAMPLE_BYTES: &[u8] = include_bytes!({:?});",
        example.to_str().unwrap()
    )
    .unwrap();
    fs::write(out_dir.join("fixtures.rs"), code).unwrap();
}

/// Cargo's target directory: the nearest ancestor of `OUT_DIR` (`<target>/[<triple>/]<profile>/
/// build/<pkg>-<hash>/out`) holding the `CACHEDIR.TAG` cargo puts there.
fn target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .unwrap_or_else(|| {
            out_dir
                .ancestors()
                .nth(4)
                .expect("OUT_DIR is <target>/<profile>/build/<pkg>/out")
        })
        .to_path_buf()
}

/// Installs the wasm32-wasip2 standard library with rustup if this toolchain lacks it.
fn ensure_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .expect("run rustc --print target-libdir");
    let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let has_std = fs::read_dir(&libdir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().starts_with("libstd-"))
    });
    if has_std {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status();
    if !status.is_ok_and(|status| status.success()) {
        panic!(
            "the Rust standard library for {WASM_TARGET} is not installed and `rustup target add \
             {WASM_TARGET}` failed; install it for this toolchain to build the test components"
        );
    }
}

fn build_guests(guest_dir: &Path, guest_target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--manifest-path",
        ])
        .arg(guest_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(guest_target_dir);
    if let Some(jobs) = env::var_os("NUM_JOBS") {
        command.arg("--jobs").arg(jobs);
    }
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if HOST_BUILD_VARS.contains(&&*key)
            || HOST_BUILD_VAR_PREFIXES
                .iter()
                .any(|prefix| key.starts_with(prefix))
        {
            command.env_remove(&*key);
        }
    }
    // The nested cargo's first step, asking rustc about the target, has been
    // seen to fail on a clean clone while the outer build runs its own
    // probes in parallel (rustc read another probe's text as its input). It
    // is transient, so that one failure is retried; real build errors are not.
    let mut attempts = 0;
    let output = loop {
        attempts += 1;
        let output = command
            .output()
            .expect("run cargo to build the guest workspace");
        let probe_failed = String::from_utf8_lossy(&output.stderr)
            .contains("failed to run `rustc` to learn about target-specific information");
        if output.status.success() || !probe_failed || attempts == 3 {
            break output;
        }
        println!("cargo:warning=retrying the guest build after a failed rustc probe");
    };
    if !output.status.success() {
        panic!(
            "building the guest workspace ({}) failed: {}\n{}{}",
            guest_dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
}

/// The fixtures: every directory under `guest/fixtures`, sorted.
fn fixture_names(fixtures_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(fixtures_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .map(|path| path.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// `slow-init` → `SLOW_INIT`.
fn const_name(fixture: &str) -> String {
    fixture.replace('-', "_").to_uppercase()
}

/// The `//!` lines opening a fixture's `lib.rs`, or `main.rs` for a command (its behaviour
/// contract), without the `//!`.
fn module_docs(fixture_dir: &Path) -> Vec<String> {
    fs::read_to_string(fixture_dir.join("src/lib.rs"))
        .or_else(|_| fs::read_to_string(fixture_dir.join("src/main.rs")))
        .unwrap_or_default()
        .lines()
        .map_while(|line| line.strip_prefix("//!"))
        .map(str::to_owned)
        .collect()
}
