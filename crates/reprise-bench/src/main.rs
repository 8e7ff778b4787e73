//! `reprise-bench`: Reprise's speed as ratios measured in one run.
//!
//! Serves the `hello`, `slow-init`, `preinit-heavy` and p3 (`hello-p3`, an awaiting
//! handler) fixtures with `reprise serve` under
//! each policy, with `wasmtime serve` (the same component, the same load
//! generator) and compares them with a native hyper server, the ceiling.
//! The `db/` scenarios serve `redis-counter` (a Redis connection opened in
//! `reprise:init`, one `INCR` per request) against a `redis-server` the
//! harness starts for the run: Reprise fresh, reused and pre-warmed beside
//! `wasmtime serve -Sinherit-network`, which builds the connection on each
//! instance's first request instead.
//! Load comes from `wrk` over loopback for a bounded time per scenario; the
//! servers run one at a time so each has the machine to itself. The
//! `check/hello` scenario times a default `reprise check` of `hello`
//! (against the absolute 20 s target; `--rounds` runs, median).
//!
//! ```sh
//! cargo run --release -p reprise-bench -- --out docs/benchmarks
//! ```
//!
//! `reprise-bench soak` is not a benchmark but an endurance run (not in CI):
//! mixed load with chaos on for `--duration` (10 minutes), well-behaved
//! requests beside traps, endless loops and memory bombs on one server,
//! judged by its answers and its RSS over time ([`soak`]).

mod check;
mod instantiate;
mod instructions;
mod load;
mod redis;
mod report;
mod servers;
mod soak;
mod tools;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use load::LoadSpec;
use redis::{Host, Redis};
use report::{Measurement, Report, TimeTarget};
use reprise_host::runtime::engine::Allocator;
use servers::{Launch, Running};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "reprise-bench",
    about = "Measure reprise serve against wasmtime serve and native hyper; print ratios",
    args_conflicts_with_subcommands = true
)]
struct Args {
    /// Without a command: the benchmark.
    #[command(subcommand)]
    command: Option<Command>,

    /// Load duration of each scenario.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// Connections wrk keeps open.
    #[arg(long, default_value_t = 16)]
    connections: u32,

    /// wrk threads (1 leaves the other core of a 2-core machine to the server).
    #[arg(long, default_value_t = 1)]
    threads: u32,

    /// Measure every scenario this many times, round-robin over the
    /// scenarios, and report each one's median run: on a small shared
    /// machine one run can be 10-15% off, and interleaving spreads slow
    /// phases of the machine over every server alike.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,

    /// Leave wasmtime serve out (it is installed with cargo on first use).
    #[arg(long)]
    skip_wasmtime: bool,

    /// Only run scenarios whose name contains this (e.g. `hello/`, `reprise-`, `check/`).
    #[arg(long)]
    only: Option<String>,

    /// Also write `<DATE>.md` and `<DATE>.json` into this directory.
    #[arg(long)]
    out: Option<PathBuf>,

    /// Exit non-zero when a ratio, time or instruction count misses its
    /// target.
    #[arg(long)]
    strict: bool,

    /// Also count each selected `hello` scenario's user-space instructions
    /// per request under valgrind's callgrind: unlike throughput, the count
    /// does not move with the machine's load. The reused p2 scenarios are
    /// counted a second time inside the guest's export call only, which
    /// splits the host's work from the call's. Slow: about a minute per
    /// count. The profiles stay in `<target dir>/bench-callgrind`, for
    /// `callgrind_annotate`.
    #[arg(long)]
    instructions: bool,

    /// Run only the native hyper server, on ADDR (how the harness starts it).
    #[arg(long, value_name = "ADDR", hide = true)]
    serve_native: Option<SocketAddr>,
}

#[derive(Subcommand)]
enum Command {
    /// Endurance run (not a benchmark, not in CI): well-behaved and
    /// misbehaving clients on one `reprise serve --chaos` for minutes;
    /// prints answers by kind and RSS over time, and fails on any unexpected
    /// answer or growing memory.
    Soak(soak::SoakArgs),
}

/// Which server a scenario starts.
enum Server {
    Native,
    Wasmtime(&'static [&'static str]),
    Reprise(&'static [&'static str]),
}

/// The unmeasured load before each measured run.
const WARMUP: Duration = Duration::from_secs(1);

/// `wasmtime serve` reuses p2 instances only when asked.
const WASMTIME_REUSE: &[&str] = &["--max-instance-reuse-count", "1000000"];

/// Every scenario: (name, component, server).
const SCENARIOS: &[(&str, Fixture, Server)] = &[
    ("hello/native", Fixture::Hello, Server::Native),
    (
        "hello/wasmtime-fresh",
        Fixture::Hello,
        Server::Wasmtime(&[]),
    ),
    (
        "hello/wasmtime-reuse",
        Fixture::Hello,
        Server::Wasmtime(WASMTIME_REUSE),
    ),
    (
        "hello/reprise-fresh",
        Fixture::Hello,
        Server::Reprise(&["--policy", "fresh"]),
    ),
    (
        "hello/reprise-reuse",
        Fixture::Hello,
        Server::Reprise(&["--policy", "reuse"]),
    ),
    (
        "hello/reprise-prewarm",
        Fixture::Hello,
        Server::Reprise(&["--policy", "fresh", "--prewarm", "16"]),
    ),
    (
        "hello/reprise-chaos",
        Fixture::Hello,
        Server::Reprise(&["--chaos=0.1", "--seed", "1"]),
    ),
    (
        "slow-init/wasmtime-fresh",
        Fixture::SlowInit,
        Server::Wasmtime(&[]),
    ),
    (
        "slow-init/wasmtime-reuse",
        Fixture::SlowInit,
        Server::Wasmtime(WASMTIME_REUSE),
    ),
    (
        "slow-init/reprise-fresh",
        Fixture::SlowInit,
        Server::Reprise(&["--policy", "fresh"]),
    ),
    (
        "slow-init/reprise-reuse",
        Fixture::SlowInit,
        Server::Reprise(&["--policy", "reuse"]),
    ),
    (
        "slow-init/reprise-prewarm",
        Fixture::SlowInit,
        Server::Reprise(&["--policy", "reuse", "--prewarm", "1"]),
    ),
    // ~50 ms of deterministic init: snapshotted at load (`--preinit auto`,
    // the default), run per instance (`never`), and wasmtime serve.
    (
        "preinit-heavy/wasmtime-fresh",
        Fixture::PreinitHeavy,
        Server::Wasmtime(&[]),
    ),
    (
        "preinit-heavy/reprise-fresh",
        Fixture::PreinitHeavy,
        Server::Reprise(&["--policy", "fresh"]),
    ),
    (
        "preinit-heavy/reprise-fresh-preinit-never",
        Fixture::PreinitHeavy,
        Server::Reprise(&["--policy", "fresh", "--preinit", "never"]),
    ),
    // wasi:http p3: instances take concurrent requests. wasmtime serve
    // reuses p3 instances by default (128 requests, 16 at a time each).
    (
        "hello-p3/wasmtime-reuse",
        Fixture::HelloP3,
        Server::Wasmtime(WASMTIME_P3),
    ),
    (
        "hello-p3/wasmtime-fresh",
        Fixture::HelloP3,
        Server::Wasmtime(WASMTIME_P3_FRESH),
    ),
    (
        "hello-p3/reprise-reuse",
        Fixture::HelloP3,
        Server::Reprise(&["--policy", "reuse"]),
    ),
    (
        "hello-p3/reprise-fresh",
        Fixture::HelloP3,
        Server::Reprise(&["--policy", "fresh"]),
    ),
    (
        "hello-p3/reprise-chaos",
        Fixture::HelloP3,
        Server::Reprise(&["--chaos=0.1", "--seed", "1"]),
    ),
    // A p3 handler that awaits a 2 ms timer before answering: with 16
    // connections, throughput is bounded by how many requests one instance
    // overlaps.
    (
        "await-p3/wasmtime-reuse",
        Fixture::AwaitP3,
        Server::Wasmtime(WASMTIME_P3),
    ),
    (
        "await-p3/reprise-reuse",
        Fixture::AwaitP3,
        Server::Reprise(&["--policy", "reuse"]),
    ),
    // redis-counter against the harness's redis-server: fresh, every request
    // opens a connection (wasmtime serve: on the instance's first, and only,
    // request); reused, an instance keeps the one its init opened.
    ("db/wasmtime-fresh", Fixture::Redis, Server::Wasmtime(&[])),
    (
        "db/wasmtime-reuse",
        Fixture::Redis,
        Server::Wasmtime(WASMTIME_REUSE),
    ),
    (
        "db/reprise-fresh",
        Fixture::Redis,
        Server::Reprise(&["--policy", "fresh"]),
    ),
    (
        "db/reprise-reuse",
        Fixture::Redis,
        Server::Reprise(&["--policy", "reuse"]),
    ),
    (
        "db/reprise-prewarm",
        Fixture::Redis,
        Server::Reprise(&["--policy", "reuse", "--prewarm", "4"]),
    ),
];

/// `wasmtime serve` with WASIp3 on and its default reuse bounds.
const WASMTIME_P3: &[&str] = &["-Sp3"];

/// `wasmtime serve -Sp3` with a fresh instance per request.
const WASMTIME_P3_FRESH: &[&str] = &["-Sp3", "--max-instance-reuse-count", "1"];

#[derive(Clone, Copy)]
enum Fixture {
    Hello,
    SlowInit,
    PreinitHeavy,
    HelloP3,
    AwaitP3,
    /// `redis-counter`, against the run's [`Redis`].
    Redis,
}

impl Fixture {
    fn path(self) -> &'static str {
        match self {
            Fixture::Hello => reprise_test_programs::HELLO,
            Fixture::SlowInit => reprise_test_programs::SLOW_INIT,
            Fixture::PreinitHeavy => reprise_test_programs::PREINIT_HEAVY,
            Fixture::HelloP3 => reprise_test_programs::HELLO_P3,
            Fixture::AwaitP3 => reprise_test_programs::CHECK_P3_AWAIT_STATELESS,
            Fixture::Redis => reprise_test_programs::REDIS_COUNTER,
        }
    }

    /// The arguments `host` needs for this fixture beyond the scenario's
    /// flags, given what the run holds (`backends`).
    fn host_args(self, host: Host, backends: &Backends) -> anyhow::Result<Vec<String>> {
        Ok(match self {
            Fixture::Redis => backends
                .redis
                .as_ref()
                .context("the db/ scenarios need the run's redis-server")?
                .host_args(host),
            _ => Vec::new(),
        })
    }

    /// [`Self::host_args`] for the record: the same words, with `$REDIS`
    /// for the run's own Redis address.
    fn recorded_args(self, host: Host) -> Vec<String> {
        match self {
            Fixture::Redis => redis::host_args(host, "$REDIS"),
            _ => Vec::new(),
        }
    }

    /// Whether `--instructions` counts this fixture's scenarios: the
    /// minimal handlers, where the host's own cost shows.
    fn counts_instructions(self) -> bool {
        matches!(self, Fixture::Hello | Fixture::HelloP3)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Soak(soak)) = &args.command {
        return match soak::run(soak) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!("error: the soak run failed its verdict (see above)");
                ExitCode::FAILURE
            }
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(addr) = args.serve_native {
        return match servers::serve_native(addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&args) {
        Ok(report) => {
            let missed = report.ratios.iter().filter(|r| !r.met()).count()
                + report.time_targets.iter().filter(|t| !t.met()).count()
                + report
                    .instruction_targets
                    .iter()
                    .filter(|t| !t.met())
                    .count();
            if args.strict && missed > 0 {
                eprintln!("error: {missed} ratio(s), time(s) or count(s) missed their target");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<Report> {
    let selected = |name: &str| args.only.as_ref().is_none_or(|only| name.contains(only));
    let wants_wasmtime = !args.skip_wasmtime
        && SCENARIOS
            .iter()
            .any(|(name, _, s)| matches!(s, Server::Wasmtime(_)) && selected(name));
    let reprise = tools::reprise()?;
    let wasmtime = if wants_wasmtime {
        Some(tools::wasmtime()?)
    } else {
        None
    };
    let spec = LoadSpec {
        connections: args.connections,
        threads: args.threads,
        duration: args.duration,
    };
    let warmup = LoadSpec {
        duration: WARMUP,
        ..spec.clone()
    };

    let scenarios: Vec<_> = SCENARIOS
        .iter()
        .filter(|(name, _, server)| {
            selected(name) && (wasmtime.is_some() || !matches!(server, Server::Wasmtime(_)))
        })
        .collect();
    // wrk loads servers; a run of only `check/` scenarios needs none.
    let wrk = match scenarios.is_empty() {
        true => PathBuf::new(),
        false => tools::wrk()?,
    };
    let hosts = Hosts {
        reprise: &reprise,
        wasmtime: wasmtime.as_deref(),
    };
    // Held until the run ends: every db/ scenario and round talks to it.
    let backends = Backends {
        redis: match scenarios
            .iter()
            .any(|(_, fixture, _)| matches!(fixture, Fixture::Redis))
        {
            true => {
                let redis = Redis::start(&tools::redis_server()?)?;
                eprintln!(
                    "bench: redis-server on {} for the db/ scenarios",
                    redis.addr()
                );
                Some(redis)
            }
            false => None,
        },
    };
    let mut runs: Vec<Vec<Measurement>> = scenarios.iter().map(|_| Vec::new()).collect();
    for round in 1..=args.rounds {
        for ((name, fixture, server), runs) in scenarios.iter().zip(&mut runs) {
            let (running, command) = start(server, *fixture, hosts, &backends, Launch::Direct)?;
            eprintln!(
                "bench: {name} (round {round}/{}): {:?} of load…",
                args.rounds, spec.duration
            );
            // A short unmeasured run first: connections open, pool slots and
            // caches warm, so the measured run sees the steady state.
            load::run(&wrk, &running.url(), &warmup)
                .with_context(|| format!("{name} (warm-up)"))?;
            let load = load::run(&wrk, &running.url(), &spec).with_context(|| name.to_string())?;
            eprintln!(
                "bench: {name}: {:.0} req/s, p50 {:?}, p99 {:?}, {} errors",
                load.requests_per_sec, load.p50, load.p99, load.errors
            );
            runs.push(Measurement {
                name: name.to_string(),
                command,
                load,
                first_request: running.first_request,
                rounds_per_sec: Vec::new(),
            });
        }
    }
    let measurements: Vec<Measurement> = runs.into_iter().filter_map(report::median).collect();

    let mut time_targets = Vec::new();
    if selected(check::NAME) {
        let (runs, command) = check::measure(&reprise, reprise_test_programs::HELLO, args.rounds)
            .context(check::NAME)?;
        let target = TimeTarget {
            name: check::NAME,
            meaning: "hello: default `reprise check`, wall time (absolute target, 2 cores)",
            command,
            runs,
            target: check::TARGET,
        };
        eprintln!(
            "bench: {}: median {:.2} s (target ≤ {} s)",
            check::NAME,
            target.median().as_secs_f64(),
            check::TARGET.as_secs()
        );
        time_targets.push(target);
    }

    let mut instantiation = Vec::new();
    if selected("instantiation") || args.only.is_none() {
        for (label, allocator) in [
            ("pooling", Allocator::Pooling),
            ("on-demand", Allocator::OnDemand),
        ] {
            eprintln!("bench: instantiation with the {label} allocator…");
            match instantiate::measure(reprise_test_programs::HELLO, allocator) {
                Ok(time) => instantiation.push((label.to_string(), time)),
                Err(e) => eprintln!("bench: instantiation ({label}) skipped: {e:#}"),
            }
        }
    }

    let mut instructions = Vec::new();
    let mut inside_call_counts = Vec::new();
    if args.instructions {
        let (valgrind, control) = tools::callgrind()?;
        let dir = tools::callgrind_dir()?;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, fixture, server) in &scenarios {
            if !fixture.counts_instructions() {
                continue;
            }
            let passes: &[bool] = match report::counts_inside_call(name) {
                true => &[false, true],
                false => &[false],
            };
            for &inside_call in passes {
                let (file, what) = match inside_call {
                    false => (name.replace('/', "-"), "instructions"),
                    true => (
                        format!("{}-inside-call", name.replace('/', "-")),
                        "instructions inside the guest's export call",
                    ),
                };
                let out = dir.join(format!("{file}.callgrind"));
                instructions::forget(&out)?;
                eprintln!("bench: {name}: counting {what} under callgrind…");
                let launch = Launch::Callgrind {
                    valgrind: &valgrind,
                    out: &out,
                    inside_call,
                };
                let (running, _) = start(server, *fixture, hosts, &backends, launch)?;
                // One scenario that cannot be counted leaves the others'
                // counts and the whole run's throughput on record.
                match instructions::per_request(&control, &wrk, &running, &out, &warmup, &spec) {
                    Ok(per_request) => {
                        eprintln!("bench: {name}: {per_request:.0} {what} per request");
                        match inside_call {
                            false => instructions.push((name.to_string(), per_request)),
                            true => inside_call_counts.push((name.to_string(), per_request)),
                        }
                    }
                    Err(error) => eprintln!("bench: {name}: {what} not counted: {error:#}"),
                }
            }
        }
        eprintln!(
            "bench: callgrind profiles are in {} (read them with callgrind_annotate)",
            dir.display()
        );
    }

    let report = Report {
        date: today(),
        machine: machine(),
        load: format!(
            "wrk -t{} -c{} -d{}s --latency",
            spec.threads,
            spec.connections,
            spec.duration.as_secs().max(1)
        ),
        rounds: args.rounds,
        ratios: report::ratios(&measurements),
        measurements,
        instantiation,
        instruction_targets: report::instruction_targets(&instructions, &inside_call_counts),
        instructions,
        inside_call: inside_call_counts,
        time_targets,
    };
    let markdown = report.to_markdown();
    println!("{markdown}");
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let md = dir.join(format!("{}.md", report.date));
        let json = dir.join(format!("{}.json", report.date));
        std::fs::write(&md, &markdown)?;
        std::fs::write(
            &json,
            serde_json::to_string_pretty(&report.to_json())? + "\n",
        )?;
        eprintln!("bench: wrote {} and {}", md.display(), json.display());
    }
    Ok(report)
}

/// The host binaries a scenario may start.
#[derive(Clone, Copy)]
struct Hosts<'a> {
    reprise: &'a Path,
    /// `None` with `--skip-wasmtime`, when no wasmtime scenario is selected.
    wasmtime: Option<&'a Path>,
}

/// What scenarios' components need beside their server, held for a whole
/// run (every round, every scenario) and stopped after it.
struct Backends {
    /// For [`Fixture::Redis`]; started when a selected scenario needs it.
    redis: Option<Redis>,
}

/// Starts a scenario's server on `fixture`; returns it with the command
/// line it stands for.
fn start(
    server: &Server,
    fixture: Fixture,
    hosts: Hosts,
    backends: &Backends,
    launch: Launch,
) -> anyhow::Result<(Running, String)> {
    let component = fixture.path();
    // The scenario's flags, then what the fixture needs from this run.
    let args = |flags: &[&str], host| -> anyhow::Result<(Vec<String>, String)> {
        let mut args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let mut recorded = args.clone();
        args.extend(fixture.host_args(host, backends)?);
        recorded.extend(fixture.recorded_args(host));
        Ok((args, recorded.join(" ")))
    };
    Ok(match server {
        Server::Native => (
            servers::native(launch)?,
            "native hyper (reprise-bench --serve-native)".to_string(),
        ),
        Server::Wasmtime(flags) => {
            let wasmtime = hosts.wasmtime.context("wasmtime serve is not installed")?;
            let (args, recorded) = args(flags, Host::Wasmtime)?;
            (
                servers::wasmtime(wasmtime, component, &args, launch)?,
                command_line(&["wasmtime serve -Scli", &recorded, short(component)]),
            )
        }
        Server::Reprise(flags) => {
            let (args, recorded) = args(flags, Host::Reprise)?;
            (
                servers::reprise(hosts.reprise, component, &args, launch)?,
                command_line(&["reprise serve", short(component), &recorded]),
            )
        }
    })
}

/// The words of a command, without the gaps empty ones would leave.
fn command_line(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fixture path without the target directory, for the record.
fn short(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Today's date (UTC) as `YYYY-MM-DD`.
fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The CPU model, core count and kernel, as far as Linux tells.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, {} {}",
        std::env::consts::OS,
        kernel.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preinit_scenarios_compare_the_snapshot_with_per_instance_init_and_wasmtime() {
        let names: Vec<&str> = SCENARIOS
            .iter()
            .map(|(name, _, _)| *name)
            .filter(|name| name.starts_with("preinit-heavy/"))
            .collect();
        assert_eq!(
            names,
            [
                "preinit-heavy/wasmtime-fresh",
                "preinit-heavy/reprise-fresh",
                "preinit-heavy/reprise-fresh-preinit-never"
            ]
        );
        let never = SCENARIOS
            .iter()
            .find(|(name, _, _)| name.ends_with("preinit-never"));
        assert!(matches!(
            never,
            Some((_, Fixture::PreinitHeavy, Server::Reprise(flags))) if flags.contains(&"never")
        ));
        assert!(Fixture::PreinitHeavy.path().ends_with("preinit_heavy.wasm"));
    }

    #[test]
    fn db_scenarios_serve_redis_counter_on_every_host_and_policy() {
        let db: Vec<(&str, &Server)> = SCENARIOS
            .iter()
            .filter(|(name, _, _)| name.starts_with("db/"))
            .map(|(name, fixture, server)| {
                assert!(matches!(fixture, Fixture::Redis), "{name}");
                (*name, server)
            })
            .collect();
        let names: Vec<&str> = db.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "db/wasmtime-fresh",
                "db/wasmtime-reuse",
                "db/reprise-fresh",
                "db/reprise-reuse",
                "db/reprise-prewarm"
            ]
        );
        assert!(matches!(
            db[4].1,
            Server::Reprise(flags) if flags.contains(&"--prewarm") && flags.contains(&"reuse")
        ));
        assert!(Fixture::Redis.path().ends_with("redis_counter.wasm"));
        // What the snapshot records for the run's Redis.
        assert_eq!(
            Fixture::Redis.recorded_args(Host::Wasmtime).join(" "),
            "-Sinherit-network --env REDIS_ADDR=$REDIS"
        );
        assert!(Fixture::Hello.recorded_args(Host::Reprise).is_empty());
        // Without the run's Redis, a db/ server cannot be started.
        let none = Backends { redis: None };
        assert!(Fixture::Redis.host_args(Host::Reprise, &none).is_err());
        assert!(
            Fixture::Hello
                .host_args(Host::Reprise, &none)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn instructions_are_counted_only_for_the_hello_fixtures() {
        let counted: Vec<&str> = SCENARIOS
            .iter()
            .filter(|(_, fixture, _)| fixture.counts_instructions())
            .map(|(name, _, _)| *name)
            .filter(|name| !name.starts_with("hello/") && !name.starts_with("hello-p3/"))
            .collect();
        assert!(counted.is_empty(), "{counted:?}");
        assert!(!Fixture::Redis.counts_instructions());
    }

    #[test]
    fn soak_is_a_subcommand_and_the_benchmark_stays_the_default() {
        let bench = Args::try_parse_from(["reprise-bench", "--only", "db/"]).unwrap();
        assert!(bench.command.is_none());
        assert_eq!(bench.duration, Duration::from_secs(5));
        let soak =
            Args::try_parse_from(["reprise-bench", "soak", "--duration", "2m", "--seed", "7"])
                .unwrap();
        let Some(Command::Soak(soak)) = soak.command else {
            panic!("not the soak command");
        };
        assert_eq!(soak.duration, Duration::from_secs(120));
        assert_eq!(soak.seed, 7);
        let default = Args::try_parse_from(["reprise-bench", "soak"]).unwrap();
        let Some(Command::Soak(default)) = default.command else {
            panic!("not the soak command");
        };
        assert_eq!(default.duration, Duration::from_secs(600));
        // The benchmark's flags do not mix with the command.
        assert!(Args::try_parse_from(["reprise-bench", "--only", "db/", "soak"]).is_err());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_517), (2026, 3, 5));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
