//! The load generator: `wrk` over loopback, and a parser for what it prints.
//!
//! `wrk` is a separate process with its own event loop, so the server under
//! test gets the load of a real client instead of one that shares its
//! runtime. Its text report is parsed here (a pure function, tested below)
//! into the few numbers the benchmark compares.

use anyhow::{Context as _, bail};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The shape of one load run.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Open connections kept busy.
    pub connections: u32,
    /// `wrk` threads; one leaves the other core to the server on a 2-core machine.
    pub threads: u32,
    /// How long the run lasts.
    pub duration: Duration,
}

/// What one load run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadResult {
    pub requests_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Completed requests.
    pub requests: u64,
    /// Non-2xx/3xx answers plus socket errors: a run with errors measured
    /// something other than the happy path.
    pub errors: u64,
}

/// Runs `wrk` against `url` and parses its report.
pub fn run(wrk: &Path, url: &str, spec: &LoadSpec) -> anyhow::Result<LoadResult> {
    let text = report(wrk, url, spec, None)?;
    parse(&text).with_context(|| format!("cannot read wrk's report:\n{text}"))
}

/// Runs `wrk` against `url`, with the Lua `script` (`-s`) if given, and
/// returns what it printed: its report, then whatever the script's `done`
/// writes.
pub fn report(
    wrk: &Path,
    url: &str,
    spec: &LoadSpec,
    script: Option<&Path>,
) -> anyhow::Result<String> {
    let mut command = Command::new(wrk);
    command
        .arg(format!("-t{}", spec.threads))
        .arg(format!("-c{}", spec.connections))
        .arg(format!("-d{}s", spec.duration.as_secs().max(1)))
        .arg("--latency");
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command
        .arg(url)
        .output()
        .with_context(|| format!("cannot run {}", wrk.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            output.status,
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(text)
}

/// wrk's socket errors by kind (`connect`, `read`, `write`, `timeout`),
/// those it counted at least one of.
pub fn socket_errors(text: &str) -> Vec<(String, u64)> {
    let mut errors = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("Socket errors:") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            for pair in words.chunks(2) {
                if let [kind, count] = pair
                    && let Ok(count) = count.trim_end_matches(',').parse::<u64>()
                    && count > 0
                {
                    errors.push((kind.to_string(), count));
                }
            }
        }
    }
    errors
}

/// Parses the report `wrk --latency` prints.
pub fn parse(text: &str) -> anyhow::Result<LoadResult> {
    let mut requests_per_sec = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut requests = None;
    let mut errors = 0;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => requests_per_sec = Some(value.parse::<f64>()?),
            ["50%", value] => p50 = Some(latency(value)?),
            ["99%", value] => p99 = Some(latency(value)?),
            [count, "requests", "in", ..] => requests = Some(count.parse::<u64>()?),
            ["Non-2xx", "or", "3xx", "responses:", count] => errors += count.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                // `connect 0, read 0, write 0, timeout 0`
                for count in rest.iter().skip(1).step_by(2) {
                    errors += count.trim_end_matches(',').parse::<u64>()?;
                }
            }
            _ => {}
        }
    }
    Ok(LoadResult {
        requests_per_sec: requests_per_sec.context("no `Requests/sec:` line")?,
        p50: p50.context("no 50% latency (was --latency given?)")?,
        p99: p99.context("no 99% latency (was --latency given?)")?,
        requests: requests.context("no `N requests in` line")?,
        errors,
    })
}

/// Parses one of wrk's latencies: `170.00us`, `1.23ms`, `2.00s`, `1.50m`.
fn latency(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .with_context(|| format!("latency `{text}` has no unit"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse()?;
    let seconds = match unit {
        "ns" => number / 1e9,
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => bail!("latency `{text}` has an unknown unit"),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
Running 5s test @ http://127.0.0.1:8080/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   180.23us   50.12us   2.00ms   90.00%
    Req/Sec    80.00k     2.00k   85.00k    70.00%
  Latency Distribution
     50%  170.00us
     75%  190.00us
     90%  220.00us
     99%    1.40ms
  400123 requests in 5.00s, 50.00MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:  80024.60
Transfer/sec:     10.00MB
";

    #[test]
    fn a_full_report_is_read() {
        let result = parse(REPORT).unwrap();
        assert_eq!(result.requests_per_sec, 80024.60);
        assert_eq!(result.p50, Duration::from_micros(170));
        assert_eq!(result.p99, Duration::from_micros(1400));
        assert_eq!(result.requests, 400123);
        assert_eq!(result.errors, 11);
    }

    #[test]
    fn a_clean_run_has_no_errors() {
        let clean: String = REPORT
            .lines()
            .filter(|l| !l.contains("errors") && !l.contains("Non-2xx"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse(&clean).unwrap().errors, 0);
    }

    #[test]
    fn a_report_without_latency_distribution_is_refused() {
        let short: String = REPORT
            .lines()
            .filter(|l| !l.trim_start().starts_with("50%"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(parse(&short).unwrap_err().to_string().contains("50%"));
    }

    #[test]
    fn socket_errors_are_kept_by_kind() {
        assert_eq!(
            socket_errors(REPORT),
            [
                ("connect".to_string(), 1),
                ("read".to_string(), 2),
                ("timeout".to_string(), 3)
            ]
        );
        assert!(socket_errors("Requests/sec: 1\n").is_empty());
    }

    #[test]
    fn latency_units() {
        assert_eq!(latency("2.00s").unwrap(), Duration::from_secs(2));
        assert_eq!(latency("1.50m").unwrap(), Duration::from_secs(90));
        assert!(latency("12").is_err());
        assert!(latency("3.0xs").is_err());
    }
}
