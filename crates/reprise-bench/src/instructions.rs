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
//!
//! A server under callgrind runs some 50 times slower, so the work it does
//! by the clock whatever the load (timer threads, epoch ticks, reapers)
//! would weigh 50 times more per request than it does at full speed. So
//! the server is first counted for as long again while idle, and that
//! count is taken off before dividing: what remains is what requests cost.
//!
//! Some scenarios are counted twice: once whole, once with callgrind
//! collecting only inside the guest's export call (from the entry of the
//! fiber wasmtime runs the call on to its exit). The difference is what the
//! host spends on a request around the call: parsing and writing HTTP,
//! scheduling, turning the request into wasi:http values and back, and its
//! own dispatch.

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
    let idle_start = Instant::now();
    std::thread::sleep(spec.duration);
    // Each dump also zeroes the counters.
    callgrind_control(control, running.pid(), "--dump")?;
    let idle_time = idle_start.elapsed();
    let idle = read_dump(&dump_file(out, 1), Instant::now() + DUMP_TIMEOUT, running)?;
    let load_start = Instant::now();
    let load = load::run(wrk, &running.url(), spec)?;
    callgrind_control(control, running.pid(), "--dump")?;
    let load_time = load_start.elapsed();
    let busy = read_dump(&dump_file(out, 2), Instant::now() + DUMP_TIMEOUT, running)?;
    if load.requests == 0 {
        bail!("no request completed while counting");
    }
    Ok(net_per_request(
        busy,
        load_time,
        idle,
        idle_time,
        load.requests,
    ))
}

/// Instructions per request of a loaded run, less what the server spends
/// idle in as long a time (never below zero).
fn net_per_request(
    busy: u64,
    busy_time: Duration,
    idle: u64,
    idle_time: Duration,
    requests: u64,
) -> f64 {
    let idle_rate = idle as f64 / idle_time.as_secs_f64().max(f64::EPSILON);
    let background = idle_rate * busy_time.as_secs_f64();
    (busy as f64 - background).max(0.0) / requests as f64
}

/// Removes the dumps an earlier run left for `out`, so that only this run's
/// counts are read.
pub fn forget(out: &Path) -> anyhow::Result<()> {
    for part in 1..=2 {
        let dump = dump_file(out, part);
        match std::fs::remove_file(&dump) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", dump.display())),
        }
    }
    Ok(())
}

/// The file callgrind writes its `part`-th dump to when told to write `out`
/// (the first is the idle count, the second the loaded one).
fn dump_file(out: &Path, part: u32) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(format!(".{part}"));
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
/// A server whose every thread sleeps in the kernel runs none of them, so
/// while it idles, a request every [`POKE_AFTER`] gets a dump written
/// (one request's cost in a count of thousands).
fn read_dump(path: &Path, deadline: Instant, running: &Running) -> anyhow::Result<u64> {
    let mut poke_at = Instant::now() + POKE_AFTER;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(total) = total_instructions(&text)
        {
            return Ok(total);
        }
        if Instant::now() >= deadline {
            bail!("callgrind wrote no complete dump to {}", path.display());
        }
        if Instant::now() >= poke_at {
            let _ = crate::servers::get(running.addr, "/");
            poke_at = Instant::now() + POKE_AFTER;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How long to wait for a dump before waking the server with a request.
const POKE_AFTER: Duration = Duration::from_secs(2);

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
    fn what_the_server_spends_idle_is_taken_off() {
        let second = Duration::from_secs(1);
        // 1,000 idle instructions a second; 2 s loaded: 12,000 - 2,000 over
        // 100 requests.
        assert_eq!(
            net_per_request(12_000, 2 * second, 1_000, second, 100),
            100.0
        );
        // Never below zero, whatever the noise.
        assert_eq!(net_per_request(500, second, 1_000, second, 10), 0.0);
    }

    #[test]
    fn a_dump_still_being_written_has_no_total() {
        let partial =
            "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 847381994\nfn=(1) main\n";
        assert_eq!(total_instructions(partial), None);
    }

    #[test]
    fn the_dumps_go_beside_the_output_file() {
        let out = Path::new("/tmp/x/hello-native.callgrind");
        assert_eq!(
            dump_file(out, 1),
            Path::new("/tmp/x/hello-native.callgrind.1")
        );
        assert_eq!(
            dump_file(out, 2),
            Path::new("/tmp/x/hello-native.callgrind.2")
        );
    }
}
