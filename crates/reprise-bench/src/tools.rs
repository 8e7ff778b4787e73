//! The programs a benchmark run needs beside itself, found or installed.
//!
//! - `wrk`, the load generator: from `PATH`, else installed with Debian's
//!   `apt-get` when that is possible;
//! - valgrind's callgrind, for `--instructions`, found or installed the same
//!   way;
//! - `redis-server`, the database of the `db/` scenarios, found or installed
//!   the same way;
//! - `wasmtime` 48 (the CLI, for `wasmtime serve`): from `PATH` when it is
//!   that version, else `cargo install`ed once into the target directory
//!   (it takes minutes; later runs reuse it);
//! - `reprise` itself: the binary built beside this one, built with cargo
//!   when missing, so the two always share a profile.

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The wasmtime release Reprise is built on, and the one it is compared with.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Where programs the harness installs go: `<target dir>/bench-tools`.
pub fn tools_dir() -> anyhow::Result<PathBuf> {
    Ok(profile_dir()?
        .parent()
        .context("the benchmark binary is not inside a cargo target directory")?
        .join("bench-tools"))
}

/// Where `--instructions` leaves its callgrind profiles: `<target dir>/bench-callgrind`.
pub fn callgrind_dir() -> anyhow::Result<PathBuf> {
    Ok(tools_dir()?.with_file_name("bench-callgrind"))
}

/// The directory holding this binary (`<target dir>/release`).
fn profile_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the benchmark binary")?;
    Ok(exe
        .parent()
        .context("the benchmark binary has no directory")?
        .to_path_buf())
}

/// `name` on `PATH`, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The `wrk` load generator, installed with `apt-get` if missing.
pub fn wrk() -> anyhow::Result<PathBuf> {
    debian_program("wrk", "wrk", "the load generator")
}

/// Valgrind's `valgrind` and `callgrind_control`, installed with `apt-get`
/// if missing: they count the instructions a server spends per request.
pub fn callgrind() -> anyhow::Result<(PathBuf, PathBuf)> {
    let valgrind = debian_program("valgrind", "valgrind", "the instruction counter")?;
    let control = debian_program("callgrind_control", "valgrind", "the instruction counter")?;
    Ok((valgrind, control))
}

/// Debian's `redis-server`, installed with `apt-get` if missing: the
/// database the `db/` scenarios' component keeps a connection to.
pub fn redis_server() -> anyhow::Result<PathBuf> {
    debian_program(
        "redis-server",
        "redis-server",
        "the db/ scenarios' database",
    )
}

/// `program` from `PATH`, else from Debian's `package`, installed with
/// `apt-get` when that is possible (updating the package lists once if the
/// first attempt fails); `what` names it in the error otherwise.
fn debian_program(program: &str, package: &str, what: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = on_path(program) {
        return Ok(path);
    }
    if on_path("apt-get").is_some() {
        eprintln!("bench: installing {package} with apt-get");
        let apt = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let installed = apt(&["install", "-y", "-q", package])
            || (apt(&["update", "-q"]) && apt(&["install", "-y", "-q", package]));
        if installed && let Some(path) = on_path(program) {
            return Ok(path);
        }
    }
    bail!(
        "{what} `{program}` is not installed and could not be installed; install it (Debian/Ubuntu: `apt-get install {package}`) and run again"
    )
}

/// The `wasmtime` CLI at [`WASMTIME_VERSION`], installed with cargo if missing.
pub fn wasmtime() -> anyhow::Result<PathBuf> {
    let local = tools_dir()?.join("bin").join("wasmtime");
    for candidate in [Some(local.clone()), on_path("wasmtime")]
        .into_iter()
        .flatten()
    {
        if is_wasmtime_48(&candidate) {
            return Ok(candidate);
        }
    }
    let root = tools_dir()?;
    eprintln!(
        "bench: installing wasmtime-cli {WASMTIME_VERSION} into {} with cargo \
         (about 10 minutes on 2 cores, once; pass --skip-wasmtime to leave it out)",
        root.display()
    );
    let status = Command::new(cargo())
        .args([
            "install",
            "--locked",
            "--quiet",
            "wasmtime-cli",
            "--version",
        ])
        .arg(format!("={WASMTIME_VERSION}"))
        .arg("--root")
        .arg(&root)
        .status()
        .context("cannot run cargo to install wasmtime-cli")?;
    if !status.success() || !is_wasmtime_48(&local) {
        bail!("installing wasmtime-cli {WASMTIME_VERSION} failed ({status})");
    }
    Ok(local)
}

fn is_wasmtime_48(path: &Path) -> bool {
    Command::new(path)
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout).contains(&format!("wasmtime {WASMTIME_VERSION}"))
        })
}

/// The `reprise` binary of the same build as this one.
pub fn reprise() -> anyhow::Result<PathBuf> {
    let path = profile_dir()?.join("reprise");
    if !path.is_file() {
        eprintln!("bench: building reprise (cargo build --release -p reprise)");
        let status = Command::new(cargo())
            .args(["build", "--release", "-p", "reprise"])
            .status()
            .context("cannot run cargo to build reprise")?;
        if !status.success() || !path.is_file() {
            bail!(
                "{} is missing; build it with `cargo build --release -p reprise`",
                path.display()
            );
        }
    }
    Ok(path)
}

/// The cargo that runs this program (`cargo run` sets `CARGO`), else the one on `PATH`.
fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| "cargo".into())
}
