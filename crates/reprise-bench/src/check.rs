//! `check/hello`: how long a default `reprise check` of a hello-sized
//! component takes, end to end (process start, compiling the component,
//! every run of the check, shrinking), against the target of 20 s
//! on a 2-core machine.

use anyhow::{Context as _, bail};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The scenario's name, as `--only` selects it.
pub const NAME: &str = "check/hello";

/// The time a default check of hello may take.
pub const TARGET: Duration = Duration::from_secs(20);

/// A default check of `component`, timed `runs` times: every run's wall
/// time, fastest first, and the command timed.
pub fn measure(
    reprise: &Path,
    component: &str,
    runs: u32,
) -> anyhow::Result<(Vec<Duration>, String)> {
    // A fixed seed keeps the runs alike; every other option is the default.
    let args = ["check", component, "--seed", "1"];
    let mut times = Vec::new();
    for run in 1..=runs {
        eprintln!("bench: {NAME} (run {run}/{runs}): reprise check…");
        let started = Instant::now();
        let output = Command::new(reprise)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("cannot run {}", reprise.display()))?;
        let elapsed = started.elapsed();
        if !output.status.success() {
            bail!(
                "`reprise {}` failed ({}); hello should be reuse-safe:\n{}{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        eprintln!("bench: {NAME}: {:.2} s", elapsed.as_secs_f64());
        times.push(elapsed);
    }
    times.sort();
    let short = component.rsplit('/').next().unwrap_or(component);
    Ok((times, format!("reprise check {short} --seed 1")))
}
