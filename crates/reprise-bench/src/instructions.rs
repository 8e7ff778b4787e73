//! User-space instructions per request, counted by valgrind's callgrind.
//!
//! Throughput on a small shared machine moves 10-15% between runs, and a
//! ratio that misses its target by less than that says little about where
//! the time goes. An instruction count does not move: callgrind executes
//! the server on a synthetic CPU and counts every instruction of every
//! thread (the kernel's work is not counted). The server starts with
//! counting off, is warmed up, counts while `wrk` sends a fixed load, and
//! dumps its totals; their sum divided by the requests `wrk` completed is
//! the server's user-space cost of one request, comparable across hosts.

use crate::load::{self, LoadSpec};
use crate::servers::Running;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long to wait for callgrind to write the counts it was asked to dump.
const DUMP_TIMEOUT: Duration = Duration::from_secs(60);

/// Counts the instructions `running` (started under callgrind writing to
/// `out`) spends on the requests of one `spec` load run, after `warmup`.
/// Returns instructions per completed request.
pub fn per_request(
    control: &Path,
    wrk: &Path,
    running: &Running,
    out: &Path,
    warmup: &LoadSpec,
    spec: &LoadSpec,
) -> anyhow::Result<f64> {
    load::run(wrk, &running.url(), warmup).context("warm-up")?;
    callgrind_control(control, running.pid(), "--instr=on")?;
    let load = load::run(wrk, &running.url(), spec)?;
    callgrind_control(control, running.pid(), "--dump")?;
    let instructions = read_dump(&dump_file(out), Instant::now() + DUMP_TIMEOUT)?;
    if load.requests == 0 {
        bail!("no request completed while counting");
    }
    Ok(instructions as f64 / load.requests as f64)
}

/// Removes a dump an earlier run left for `out`, so that only this run's
/// counts are read.
pub fn forget(out: &Path) -> anyhow::Result<()> {
    let dump = dump_file(out);
    match std::fs::remove_file(&dump) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", dump.display())),
    }
}

/// The file callgrind writes its first dump to when told to write `out`.
fn dump_file(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

fn callgrind_control(control: &Path, pid: u32, action: &str) -> anyhow::Result<()> {
    let output = Command::new(control)
        .arg(action)
        .arg(pid.to_string())
        .output()
        .with_context(|| format!("cannot run {}", control.display()))?;
    if !output.status.success() {
        bail!(
            "callgrind_control {action} {pid} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Waits for a complete dump at `path` (callgrind writes it from the
/// server's own threads, a moment after being asked) and reads its total.
fn read_dump(path: &Path, deadline: Instant) -> anyhow::Result<u64> {
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(total) = total_instructions(&text)
        {
            return Ok(total);
        }
        if Instant::now() >= deadline {
            bail!("callgrind wrote no complete dump to {}", path.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The instruction total of a callgrind dump: its `totals:` line, the last
/// thing callgrind writes (so a dump still being written has none yet).
/// Instructions (`Ir`) are the only event callgrind collects by default.
fn total_instructions(dump: &str) -> Option<u64> {
    dump.lines()
        .rev()
        .find_map(|line| line.strip_prefix("totals:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_comes_from_the_totals_line() {
        let dump = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 847381994\n\
                    fn=(1) main\n3 12\n\ntotals: 847381994\n";
        assert_eq!(total_instructions(dump), Some(847_381_994));
    }

    #[test]
    fn a_dump_still_being_written_has_no_total() {
        let partial =
            "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 847381994\nfn=(1) main\n";
        assert_eq!(total_instructions(partial), None);
    }

    #[test]
    fn the_first_dump_goes_beside_the_output_file() {
        assert_eq!(
            dump_file(Path::new("/tmp/x/hello-native.callgrind")),
            Path::new("/tmp/x/hello-native.callgrind.1")
        );
    }
}
