//! `reprise-bench soak`: an endurance run, not a benchmark (and not in CI).
//!
//! One `reprise serve` hosts the `soak` fixture with chaos on
//! (`--chaos=0.1`), a 1 s call timeout and a 64 MiB memory cap. For
//! `--duration` (10 minutes by default):
//! - `wrk` drives the well-behaved `/ok` in 30 s segments, counting every
//!   answer by status and body (a Lua script, `answers.lua`);
//! - three clients of its own, one thread each over a keep-alive
//!   connection, loop over the misbehaving paths: `/trap` (traps), `/loop`
//!   (spins until the timeout ends it) and `/bomb` (allocates until the cap
//!   stops it);
//! - every 10 s the server's RSS (`VmRSS`) and live instances are sampled.
//!
//! Every answer is classified ([`answer`]): `/ok` must only ever get 200
//! `ok`, each misbehaving path only the host's answer for its failure (500
//! trap, 504 timeout, 500 memory limit). The run passes with no unexpected
//! answer and flat memory ([`report`]); it prints answers by kind per
//! client and RSS over time, and `--out DIR` writes them to
//! `DIR/<DATE>-soak.md`.

pub mod answer;
mod client;
pub mod report;

use crate::load::{self, LoadSpec};
use crate::servers::{self, Launch, Running};
use crate::tools;
use answer::Kind;
use anyhow::Context as _;
use client::Client;
use report::{Sample, SoakReport, Tally, mib};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct SoakArgs {
    /// How long the soak lasts.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Seed of the server's chaos decisions (`reprise serve --seed`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Also write `<DATE>-soak.md` into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Connections wrk keeps open on `/ok`.
    #[arg(long, default_value_t = 16)]
    pub connections: u32,
}

/// The server's limits, besides chaos and its seed.
const LIMITS: &[&str] = &["--timeout", "1s", "--max-memory", "64MiB"];

/// How long one wrk run on `/ok` lasts; the soak is a series of them.
const SEGMENT: Duration = Duration::from_secs(30);

/// How often RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// The misbehaving clients' pause between requests: they misbehave
/// continuously without taking the machine from the well-behaved one.
const PAUSE: Duration = Duration::from_millis(5);

/// How long a misbehaving request may go unanswered (`/loop` should end
/// after the 1 s timeout).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest warm-up: samples before it (or the first fifth of a shorter
/// run) are not judged.
const MAX_WARM_UP: Duration = Duration::from_secs(60);

/// The wrk script that counts `/ok`'s answers.
const ANSWERS_LUA: &str = include_str!("answers.lua");

/// Runs the soak; returns whether it passed.
pub fn run(args: &SoakArgs) -> anyhow::Result<bool> {
    let reprise = tools::reprise()?;
    let wrk = tools::wrk()?;
    let component = reprise_test_programs::SOAK;
    let mut flags = vec![
        "--chaos=0.1".to_string(),
        "--seed".to_string(),
        args.seed.to_string(),
    ];
    flags.extend(LIMITS.iter().map(|s| s.to_string()));
    let command =
        crate::command_line(&["reprise serve", crate::short(component), &flags.join(" ")]);
    let script =
        std::env::temp_dir().join(format!("reprise-bench-soak-{}.lua", std::process::id()));
    std::fs::write(&script, ANSWERS_LUA)
        .with_context(|| format!("cannot write {}", script.display()))?;
    let result = soak(args, &reprise, &wrk, component, &flags, &script, command);
    let _ = std::fs::remove_file(&script);
    let report = result?;

    let markdown = report.to_markdown();
    println!("{markdown}");
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{}-soak.md", report.date));
        std::fs::write(&path, &markdown)?;
        eprintln!("soak: wrote {}", path.display());
    }
    eprintln!("soak: {}", report.verdict());
    Ok(report.passed())
}

fn soak(
    args: &SoakArgs,
    reprise: &Path,
    wrk: &Path,
    component: &str,
    flags: &[String],
    script: &Path,
    command: String,
) -> anyhow::Result<SoakReport> {
    let running = servers::reprise(reprise, component, flags, Launch::Direct)?;
    let started = Instant::now();
    eprintln!(
        "soak: `{command}` (pid {}) on http://{}, for {}",
        running.pid(),
        running.addr,
        humantime::format_duration(args.duration)
    );

    let (stop_sampling, stopped) = mpsc::channel::<()>();
    let sampler = {
        let (pid, admin) = (running.pid(), running.admin);
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            loop {
                if let Some(sample) = sample(pid, admin, started.elapsed()) {
                    samples.push(sample);
                }
                match stopped.recv_timeout(SAMPLE_EVERY) {
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => break samples,
                }
            }
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let misbehaving: Vec<_> = answer::MISBEHAVING
        .into_iter()
        .map(|(client, path, expected)| {
            let stop = stop.clone();
            let addr = running.addr;
            std::thread::spawn(move || misbehave(addr, client, path, expected, &stop, started))
        })
        .collect();

    let ok = well_behaved(args, wrk, &running, script, started);
    stop.store(true, Ordering::Relaxed);
    let mut tallies = Vec::new();
    let mut ok_per_sec = Vec::new();
    let ok_error = match ok {
        Ok((tally, rates)) => {
            tallies.push(tally);
            ok_per_sec = rates;
            None
        }
        Err(error) => Some(error),
    };
    for thread in misbehaving {
        tallies.push(thread.join().expect("a misbehaving client panicked"));
    }
    let _ = stop_sampling.send(());
    let samples = sampler.join().expect("the sampler panicked");
    let metrics = running.admin.map(final_metrics).unwrap_or_default();
    drop(running);
    if let Some(error) = ok_error {
        return Err(error.context("driving /ok with wrk"));
    }
    Ok(SoakReport {
        date: crate::today(),
        machine: crate::machine(),
        command,
        load: format!(
            "`wrk -t1 -c{}` on `{}` in {} s segments (answers counted by a Lua script); \
             one client each on {} (HTTP/1.1 keep-alive, {} ms between requests); \
             VmRSS sampled every {} s",
            args.connections,
            answer::OK_PATH,
            SEGMENT.as_secs(),
            answer::MISBEHAVING
                .iter()
                .map(|(_, path, _)| format!("`{path}`"))
                .collect::<Vec<_>>()
                .join(", "),
            PAUSE.as_millis(),
            SAMPLE_EVERY.as_secs()
        ),
        duration: args.duration,
        warm_up: MAX_WARM_UP.min(args.duration / 5),
        tallies,
        samples,
        ok_per_sec,
        metrics,
    })
}

/// Drives `/ok` with wrk, one segment after another, until the soak's
/// time is up: the answers, and each segment's throughput.
fn well_behaved(
    args: &SoakArgs,
    wrk: &Path,
    running: &Running,
    script: &Path,
    started: Instant,
) -> anyhow::Result<(Tally, Vec<f64>)> {
    let mut tally = Tally::new("ok (wrk)", answer::OK_PATH, Kind::Ok);
    let mut rates = Vec::new();
    let url = running.url_of(answer::OK_PATH);
    loop {
        let left = args.duration.saturating_sub(started.elapsed());
        if left < Duration::from_secs(1) {
            break;
        }
        let spec = LoadSpec {
            connections: args.connections,
            threads: 1,
            duration: SEGMENT.min(left),
        };
        let text = load::report(wrk, &url, &spec, Some(script))?;
        let result =
            load::parse(&text).with_context(|| format!("cannot read wrk's report:\n{text}"))?;
        let at = started.elapsed();
        for (status, body, count) in wrk_answers(&text) {
            tally.add(answer::classify(status, &body), count, at);
        }
        for (kind, count) in load::socket_errors(&text) {
            tally.add(Kind::NoAnswer(format!("wrk socket {kind}")), count, at);
        }
        rates.push(result.requests_per_sec);
        let rss = rss_bytes(running.pid()).map_or("?".to_string(), mib);
        eprintln!(
            "soak: {} / {}: /ok {:.0} req/s, {} unexpected so far; RSS {rss}",
            report::clock(at),
            report::clock(args.duration),
            result.requests_per_sec,
            tally.unexpected(),
        );
    }
    Ok((tally, rates))
}

/// Requests `path` over and over until `stop`, tallying the answers.
fn misbehave(
    addr: SocketAddr,
    client: &str,
    path: &'static str,
    expected: Kind,
    stop: &AtomicBool,
    started: Instant,
) -> Tally {
    let mut tally = Tally::new(client, path, expected);
    let mut http = Client::new(addr, ANSWER_TIMEOUT);
    while !stop.load(Ordering::Relaxed) {
        let kind = match http.get(path) {
            Ok((status, body)) => answer::classify(status, &String::from_utf8_lossy(&body)),
            Err(why) => Kind::NoAnswer(why.to_string()),
        };
        tally.add(kind, 1, started.elapsed());
        std::thread::sleep(PAUSE);
    }
    tally
}

/// The `answer` lines `answers.lua` prints: (status, body, count).
fn wrk_answers(text: &str) -> Vec<(u16, String, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(4, '\t');
            if fields.next()? != "answer" {
                return None;
            }
            let count = fields.next()?.parse().ok()?;
            let status = fields.next()?.parse().ok()?;
            Some((status, unescape(fields.next().unwrap_or_default()), count))
        })
        .collect()
}

/// Undoes `answers.lua`'s escapes (`\r`, `\n`, `\t`, `\\`).
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The RSS of process `pid` and, from its admin endpoint, its live
/// instances; `None` once the process is gone.
fn sample(pid: u32, admin: Option<SocketAddr>, at: Duration) -> Option<Sample> {
    let rss = rss_bytes(pid)?;
    let live = admin
        .and_then(|admin| servers::get(admin, "/metrics").ok())
        .and_then(|(_, text)| counter(&text, "reprise_live_instances"));
    Some(Sample { at, rss, live })
}

/// `VmRSS` of process `pid`, in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    vm_rss(&status)
}

/// The `VmRSS:` line of a `/proc/PID/status`, in bytes.
fn vm_rss(status: &str) -> Option<u64> {
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// One sample's value (`name value`) in Prometheus text.
fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (metric, value) = line.split_once(' ')?;
        (metric == name).then(|| value.trim().parse().ok())?
    })
}

/// The counters worth reporting after a soak: instances created, retired
/// by each reason that happened, calls, call errors, instances alive.
fn final_metrics(admin: SocketAddr) -> Vec<(String, u64)> {
    let Ok((_, text)) = servers::get(admin, "/metrics") else {
        return Vec::new();
    };
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (metric, value) = line.rsplit_once(' ')?;
            let value: u64 = value.trim().parse().ok()?;
            let wanted = matches!(
                metric,
                "reprise_instances_created_total"
                    | "reprise_instantiation_failures_total"
                    | "reprise_calls_total"
                    | "reprise_reused_calls_total"
                    | "reprise_call_errors_total"
                    | "reprise_live_instances"
            ) || (metric.starts_with("reprise_instances_retired_total") && value > 0);
            wanted.then(|| (metric.to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_answer_lines_are_read_back() {
        let text = "Requests/sec: 1.0\n\
                    answer\t120\t200\tok\\n\n\
                    answer\t2\t500\tthe component failed\\twhile \\\\ handling\\r\\n\n";
        assert_eq!(
            wrk_answers(text),
            [
                (200, "ok\n".to_string(), 120),
                (
                    500,
                    "the component failed\twhile \\ handling\r\n".to_string(),
                    2
                )
            ]
        );
        assert_eq!(answer::classify(200, &wrk_answers(text)[0].1), Kind::Ok);
    }

    #[test]
    fn rss_and_counters_are_read_from_procfs_and_prometheus_text() {
        let status = "Name:\treprise\nVmPeak:\t  200000 kB\nVmRSS:\t  102056 kB\nVmData:\t 1 kB\n";
        assert_eq!(vm_rss(status), Some(102_056 * 1024));
        assert_eq!(vm_rss("Name:\tx\n"), None);
        let metrics = "# HELP reprise_live_instances Instances currently alive.\n\
                       # TYPE reprise_live_instances gauge\n\
                       reprise_live_instances 3\n\
                       reprise_live_instances_other 9\n";
        assert_eq!(counter(metrics, "reprise_live_instances"), Some(3));
        assert_eq!(counter(metrics, "reprise_warm_instances"), None);
        // This process's own status has a VmRSS.
        assert!(rss_bytes(std::process::id()).is_some_and(|rss| rss > 0));
    }
}
