//! What a benchmark run measured, the ratios product.md sets targets for,
//! and the two forms results take: a markdown snapshot for people and JSON
//! for scripts.
//!
//! Every target is a ratio between two measurements of the same run on the
//! same machine, never an absolute number: absolute speeds vary from
//! machine to machine, ratios against a baseline measured alongside do not.
//! The exceptions: a [`TimeTarget`], a wall time the product sets an
//! absolute bound for on a named machine (a default `reprise check` of
//! hello in under 20 s on 2 cores), reported with the machine it ran on;
//! and an [`InstructionTarget`], a bound on the instructions the host
//! spends on a request outside the guest's call, a count callgrind takes
//! on a synthetic CPU, so it barely moves between machines of one
//! architecture.

use crate::load::LoadResult;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::time::Duration;

/// One server configuration under load.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// `hello/reprise-fresh`, `slow-init/wasmtime-reuse`, `hello/native`, …
    pub name: String,
    /// The command line that was measured, for the record.
    pub command: String,
    pub load: LoadResult,
    pub first_request: Duration,
    /// Requests per second of every run of the scenario, slowest first
    /// (filled in by [`median`]): how far one machine's runs spread.
    pub rounds_per_sec: Vec<f64>,
}

/// A ratio with a target, computed from two measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    pub name: &'static str,
    /// What it compares, in words.
    pub meaning: &'static str,
    pub value: f64,
    /// The ratio must be at least this.
    pub target: f64,
}

impl Ratio {
    pub fn met(&self) -> bool {
        self.value >= self.target
    }
}

/// A wall time with an absolute bound: the median of its runs must be at
/// most `target`.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeTarget {
    /// `check/hello`, as `--only` selects it.
    pub name: &'static str,
    /// What is timed, in words.
    pub meaning: &'static str,
    /// The command line that was timed, for the record.
    pub command: String,
    /// Every run's wall time, fastest first.
    pub runs: Vec<Duration>,
    pub target: Duration,
}

impl TimeTarget {
    /// The median run (zero for no runs).
    pub fn median(&self) -> Duration {
        match self.runs.len() {
            0 => Duration::ZERO,
            n => self.runs[(n - 1) / 2],
        }
    }

    pub fn met(&self) -> bool {
        !self.runs.is_empty() && self.median() <= self.target
    }
}

/// A bound on the instructions a scenario's host spends per request outside
/// the guest's export call: its whole count less the count taken inside
/// that call alone.
#[derive(Clone, Debug, PartialEq)]
pub struct InstructionTarget {
    pub name: &'static str,
    /// What is bounded, in words.
    pub meaning: &'static str,
    /// Instructions per request outside the export call.
    pub outside: f64,
    /// `outside` must be at most this.
    pub target: f64,
}

impl InstructionTarget {
    pub fn met(&self) -> bool {
        self.outside <= self.target
    }
}

/// The instruction targets: (name, meaning, scenario, most instructions per
/// request outside the export call).
const INSTRUCTION_TARGETS: &[(&str, &str, &str, f64)] = &[(
    "p2-reuse-outside-call",
    "hello, reused: reprise's instructions per request outside the guest's export call (hyper, tokio, dispatch)",
    "hello/reprise-reuse",
    10_000.0,
)];

/// Scenarios counted a second time, inside the guest's export call only:
/// the reused p2 `hello`, Reprise's and `wasmtime serve`'s for comparison.
const INSIDE_CALL_SCENARIOS: &[&str] = &["hello/reprise-reuse", "hello/wasmtime-reuse"];

/// Whether `--instructions` also counts `scenario` inside the guest's
/// export call.
pub fn counts_inside_call(scenario: &str) -> bool {
    INSIDE_CALL_SCENARIOS.contains(&scenario)
}

/// The instruction targets whose scenario was counted both whole and
/// inside the export call.
pub fn instruction_targets(
    whole: &[(String, f64)],
    inside: &[(String, f64)],
) -> Vec<InstructionTarget> {
    let count = |counts: &[(String, f64)], scenario: &str| {
        counts.iter().find(|(n, _)| n == scenario).map(|&(_, c)| c)
    };
    INSTRUCTION_TARGETS
        .iter()
        .filter_map(|&(name, meaning, scenario, target)| {
            let outside = count(whole, scenario)? - count(inside, scenario)?;
            Some(InstructionTarget {
                name,
                meaning,
                outside,
                target,
            })
        })
        .collect()
}

/// What a ratio divides.
#[derive(Clone, Copy)]
enum Quantity {
    /// Requests per second (higher is better).
    Throughput,
    /// First-request latency, the baseline over the measured (higher is better).
    FirstRequestSpeedup,
}

/// The targets: (name, meaning, numerator, denominator, quantity, target).
const TARGETS: &[(&str, &str, &str, &str, Quantity, f64)] = &[
    (
        "fresh-vs-wasmtime-fresh",
        "hello, fresh per request: reprise / wasmtime serve",
        "hello/reprise-fresh",
        "hello/wasmtime-fresh",
        Quantity::Throughput,
        1.5,
    ),
    (
        "reuse-vs-native",
        "hello, reused: reprise / native hyper",
        "hello/reprise-reuse",
        "hello/native",
        Quantity::Throughput,
        0.7,
    ),
    (
        "reuse-vs-wasmtime-reuse",
        "hello, reused: reprise / wasmtime serve",
        "hello/reprise-reuse",
        "hello/wasmtime-reuse",
        Quantity::Throughput,
        1.25,
    ),
    (
        "reuse-vs-fresh",
        "hello: reprise reused / reprise fresh",
        "hello/reprise-reuse",
        "hello/reprise-fresh",
        Quantity::Throughput,
        1.2,
    ),
    (
        "slow-init-reuse-vs-hello-reuse",
        "reused: slow-init / hello (initialization amortized)",
        "slow-init/reprise-reuse",
        "hello/reprise-reuse",
        Quantity::Throughput,
        0.95,
    ),
    (
        "slow-init-reuse-vs-fresh",
        "slow-init: reprise reused / reprise fresh",
        "slow-init/reprise-reuse",
        "slow-init/reprise-fresh",
        Quantity::Throughput,
        100.0,
    ),
    (
        "preinit-fresh-vs-hello-fresh",
        "fresh: preinit-heavy (50 ms init, snapshotted at load) / hello",
        "preinit-heavy/reprise-fresh",
        "hello/reprise-fresh",
        Quantity::Throughput,
        0.9,
    ),
    (
        "chaos-vs-reuse",
        "hello: reprise --chaos=0.1 / reprise reused",
        "hello/reprise-chaos",
        "hello/reprise-reuse",
        Quantity::Throughput,
        0.85,
    ),
    (
        "p3-reuse-vs-wasmtime-reuse",
        "hello-p3, reused: reprise / wasmtime serve -Sp3 (its defaults)",
        "hello-p3/reprise-reuse",
        "hello-p3/wasmtime-reuse",
        Quantity::Throughput,
        1.25,
    ),
    (
        "p3-fresh-vs-wasmtime-fresh",
        "hello-p3, fresh: reprise / wasmtime serve -Sp3 --max-instance-reuse-count 1",
        "hello-p3/reprise-fresh",
        "hello-p3/wasmtime-fresh",
        Quantity::Throughput,
        1.5,
    ),
    (
        "p3-chaos-vs-reuse",
        "hello-p3: reprise --chaos=0.1 / reprise reused",
        "hello-p3/reprise-chaos",
        "hello-p3/reprise-reuse",
        Quantity::Throughput,
        0.8,
    ),
    (
        "p3-await-reuse-vs-wasmtime-reuse",
        "await-p3 (2 ms timer per request), reused: reprise / wasmtime serve -Sp3",
        "await-p3/reprise-reuse",
        "await-p3/wasmtime-reuse",
        Quantity::Throughput,
        1.0,
    ),
    // redis-counter against a real Redis: `INCR` per request over the
    // connection an instance opened (Reprise: in `reprise:init`; wasmtime
    // serve: on the instance's first request).
    (
        "db-reuse-vs-fresh",
        "redis-counter: reprise reused (the connection init opened) / reprise fresh (a connection per request)",
        "db/reprise-reuse",
        "db/reprise-fresh",
        Quantity::Throughput,
        2.0,
    ),
    (
        "db-fresh-vs-wasmtime-fresh",
        "redis-counter, fresh (an instance and a connection per request): reprise / wasmtime serve -Sinherit-network",
        "db/reprise-fresh",
        "db/wasmtime-fresh",
        Quantity::Throughput,
        1.2,
    ),
    (
        "db-reuse-vs-wasmtime-fresh",
        "redis-counter: reprise reused / wasmtime serve fresh (its default: a connection per request)",
        "db/reprise-reuse",
        "db/wasmtime-fresh",
        Quantity::Throughput,
        3.0,
    ),
    (
        "db-reuse-vs-wasmtime-reuse",
        "redis-counter, reused (a connection per instance): reprise / wasmtime serve --max-instance-reuse-count",
        "db/reprise-reuse",
        "db/wasmtime-reuse",
        Quantity::Throughput,
        1.1,
    ),
    (
        "db-prewarm-first-request",
        "redis-counter first request: wasmtime serve (instantiate, connect) / reprise --prewarm 4 (connected before traffic)",
        "db/reprise-prewarm",
        "db/wasmtime-fresh",
        Quantity::FirstRequestSpeedup,
        2.0,
    ),
    (
        "prewarm-first-request",
        "slow-init first request: wasmtime serve (cold) / reprise --prewarm (warm)",
        "slow-init/reprise-prewarm",
        "slow-init/wasmtime-fresh",
        Quantity::FirstRequestSpeedup,
        4.0,
    ),
];

/// One scenario's median run by throughput, with the median first-request
/// latency of all its runs (the two vary independently) and every run's
/// throughput; `None` for no runs.
pub fn median(mut runs: Vec<Measurement>) -> Option<Measurement> {
    let mut firsts: Vec<Duration> = runs.iter().map(|m| m.first_request).collect();
    firsts.sort();
    runs.sort_by(|a, b| a.load.requests_per_sec.total_cmp(&b.load.requests_per_sec));
    let all = runs.iter().map(|m| m.load.requests_per_sec).collect();
    let middle = runs.len().checked_sub(1)? / 2;
    let mut median = runs.swap_remove(middle);
    median.first_request = firsts[middle];
    median.rounds_per_sec = all;
    Some(median)
}

/// The ratios whose two measurements are both present.
pub fn ratios(measurements: &[Measurement]) -> Vec<Ratio> {
    let find = |name: &str| measurements.iter().find(|m| m.name == name);
    TARGETS
        .iter()
        .filter_map(|&(name, meaning, num, den, quantity, target)| {
            let (num, den) = (find(num)?, find(den)?);
            let value = match quantity {
                Quantity::Throughput => num.load.requests_per_sec / den.load.requests_per_sec,
                Quantity::FirstRequestSpeedup => {
                    den.first_request.as_secs_f64() / num.first_request.as_secs_f64()
                }
            };
            Some(Ratio {
                name,
                meaning,
                value,
                target,
            })
        })
        .collect()
}

/// A whole run.
pub struct Report {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub machine: String,
    /// How the load was generated, e.g. `wrk -t1 -c16 -d5s`.
    pub load: String,
    /// Runs per scenario, interleaved; each figure is the median run.
    pub rounds: u32,
    pub measurements: Vec<Measurement>,
    /// `(allocator, time per instance)`.
    pub instantiation: Vec<(String, Duration)>,
    /// `(scenario, user-space instructions per request)`, with `--instructions`.
    pub instructions: Vec<(String, f64)>,
    /// `(scenario, instructions per request inside the guest's export
    /// call)`, for the scenarios [`counts_inside_call`] names.
    pub inside_call: Vec<(String, f64)>,
    pub instruction_targets: Vec<InstructionTarget>,
    pub ratios: Vec<Ratio>,
    /// Wall times with absolute targets (`check/hello`).
    pub time_targets: Vec<TimeTarget>,
}

fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn micros(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 10.0
}

fn human(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

impl Report {
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Reprise benchmark, {}\n", self.date);
        let _ = writeln!(out, "- machine: {}", self.machine);
        let _ = writeln!(
            out,
            "- load: `{}` over loopback; each figure is the median of {} interleaved rounds\n",
            self.load, self.rounds
        );
        out.push_str("| scenario | req/s | runs (req/s) | p50 | p99 | errors | first request |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        for m in &self.measurements {
            let runs: Vec<String> = m.rounds_per_sec.iter().map(|r| format!("{r:.0}")).collect();
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} | {} | {} |",
                m.name,
                m.load.requests_per_sec,
                runs.join(", "),
                human(m.load.p50),
                human(m.load.p99),
                m.load.errors,
                human(m.first_request)
            );
        }
        if !self.instantiation.is_empty() {
            out.push_str("\n| instantiation (hello) | time per instance |\n|---|---:|\n");
            for (allocator, time) in &self.instantiation {
                let _ = writeln!(out, "| {allocator} | {:.1} µs |", micros(*time));
            }
        }
        if !self.instructions.is_empty() {
            let native = self
                .instructions
                .iter()
                .find(|(name, _)| name == "hello/native")
                .map(|&(_, n)| n);
            out.push_str(
                "\n| scenario (callgrind) | user-space instructions per request | × native |\n|---|---:|---:|\n",
            );
            for (name, count) in &self.instructions {
                let relative = native.map_or("".into(), |n| format!("{:.1}", count / n));
                let _ = writeln!(out, "| {name} | {count:.0} | {relative} |");
            }
        }
        if !self.inside_call.is_empty() {
            out.push_str(
                "\n| scenario (callgrind) | instructions per request | inside the guest's export call | outside it |\n|---|---:|---:|---:|\n",
            );
            for (name, inside) in &self.inside_call {
                let whole = self.instructions.iter().find(|(n, _)| n == name);
                if let Some((_, whole)) = whole {
                    let outside = whole - inside;
                    let _ = writeln!(out, "| {name} | {whole:.0} | {inside:.0} | {outside:.0} |");
                }
            }
        }
        if !self.instruction_targets.is_empty() {
            out.push_str(
                "\n| instruction target | meaning | per request | target | |\n|---|---|---:|---:|---|\n",
            );
            for t in &self.instruction_targets {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | ≤ {:.0} | {} |",
                    t.name,
                    t.meaning,
                    t.outside,
                    t.target,
                    if t.met() { "met" } else { "**missed**" }
                );
            }
        }
        out.push_str("\n| ratio | meaning | value | target | |\n|---|---|---:|---:|---|\n");
        for r in &self.ratios {
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | ≥ {} | {} |",
                r.name,
                r.meaning,
                r.value,
                r.target,
                if r.met() { "met" } else { "**missed**" }
            );
        }
        if !self.time_targets.is_empty() {
            out.push_str(
                "\n| time target | meaning | median | runs | target | |\n|---|---|---:|---:|---:|---|\n",
            );
            for t in &self.time_targets {
                let runs: Vec<String> = t
                    .runs
                    .iter()
                    .map(|r| format!("{:.2}", r.as_secs_f64()))
                    .collect();
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.2} s | {} | ≤ {} s | {} |",
                    t.name,
                    t.meaning,
                    t.median().as_secs_f64(),
                    runs.join(", "),
                    t.target.as_secs_f64(),
                    if t.met() { "met" } else { "**missed**" }
                );
            }
        }
        out.push_str("\nCommands measured:\n\n");
        for m in &self.measurements {
            let _ = writeln!(out, "- {}: `{}`", m.name, m.command);
        }
        for t in &self.time_targets {
            let _ = writeln!(out, "- {}: `{}`", t.name, t.command);
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let scenarios: serde_json::Map<String, Value> = self
            .measurements
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    json!({
                        "requests_per_sec": m.load.requests_per_sec,
                        "requests_per_sec_runs": m.rounds_per_sec,
                        "p50_us": micros(m.load.p50),
                        "p99_us": micros(m.load.p99),
                        "requests": m.load.requests,
                        "errors": m.load.errors,
                        "first_request_us": micros(m.first_request),
                        "command": m.command,
                    }),
                )
            })
            .collect();
        let instantiation: serde_json::Map<String, Value> = self
            .instantiation
            .iter()
            .map(|(name, time)| (name.clone(), json!(micros(*time))))
            .collect();
        let ratios: serde_json::Map<String, Value> = self
            .ratios
            .iter()
            .map(|r| {
                (
                    r.name.to_string(),
                    json!({ "value": r.value, "target": r.target, "met": r.met() }),
                )
            })
            .collect();
        let instructions: serde_json::Map<String, Value> = self
            .instructions
            .iter()
            .map(|(name, count)| (name.clone(), json!(count.round())))
            .collect();
        let inside_call: serde_json::Map<String, Value> = self
            .inside_call
            .iter()
            .map(|(name, count)| (name.clone(), json!(count.round())))
            .collect();
        let instruction_targets: serde_json::Map<String, Value> = self
            .instruction_targets
            .iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    json!({ "outside_call": t.outside.round(), "target": t.target, "met": t.met() }),
                )
            })
            .collect();
        let time_targets: serde_json::Map<String, Value> = self
            .time_targets
            .iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    json!({
                        "seconds": seconds(t.median()),
                        "runs_seconds": t.runs.iter().map(|r| seconds(*r)).collect::<Vec<_>>(),
                        "target_seconds": t.target.as_secs_f64(),
                        "met": t.met(),
                        "command": t.command,
                    }),
                )
            })
            .collect();
        json!({
            "date": self.date,
            "machine": self.machine,
            "load": self.load,
            "rounds": self.rounds,
            "scenarios": scenarios,
            "instantiation_us": instantiation,
            "instructions_per_request": instructions,
            "instructions_inside_call": inside_call,
            "instruction_targets": instruction_targets,
            "ratios": ratios,
            "time_targets": time_targets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(name: &str, rps: f64, first_ms: u64) -> Measurement {
        Measurement {
            name: name.into(),
            command: String::new(),
            load: LoadResult {
                requests_per_sec: rps,
                p50: Duration::from_micros(100),
                p99: Duration::from_micros(900),
                requests: 1,
                errors: 0,
            },
            first_request: Duration::from_millis(first_ms),
            rounds_per_sec: Vec::new(),
        }
    }

    #[test]
    fn a_snapshotted_heavy_init_is_held_to_hello_fresh() {
        let ratios = ratios(&[
            measured("preinit-heavy/reprise-fresh", 27_900.0, 1),
            measured("hello/reprise-fresh", 30_000.0, 1),
        ]);
        let preinit = ratios
            .iter()
            .find(|r| r.name == "preinit-fresh-vs-hello-fresh")
            .unwrap();
        assert!((preinit.value - 0.93).abs() < 1e-9);
        assert!(preinit.met());
        assert_eq!(preinit.target, 0.9);
    }

    #[test]
    fn ratios_divide_the_named_measurements() {
        let ratios = ratios(&[
            measured("hello/reprise-fresh", 30_000.0, 1),
            measured("hello/wasmtime-fresh", 20_000.0, 1),
            measured("slow-init/reprise-prewarm", 10.0, 2),
            measured("slow-init/wasmtime-fresh", 50.0, 30),
        ]);
        let fresh = ratios
            .iter()
            .find(|r| r.name == "fresh-vs-wasmtime-fresh")
            .unwrap();
        assert_eq!(fresh.value, 1.5);
        assert!(fresh.met());
        // First-request latency: the cold baseline over the warm one.
        let warm = ratios
            .iter()
            .find(|r| r.name == "prewarm-first-request")
            .unwrap();
        assert_eq!(warm.value, 15.0);
    }

    #[test]
    fn the_median_run_stands_for_a_scenario() {
        let median = median(vec![
            measured("hello/native", 300.0, 9),
            measured("hello/native", 100.0, 1),
            measured("hello/native", 200.0, 5),
        ])
        .unwrap();
        assert_eq!(median.load.requests_per_sec, 200.0);
        assert_eq!(median.first_request, Duration::from_millis(5));
        // Every run stays on record, so the snapshot shows the spread.
        assert_eq!(median.rounds_per_sec, [100.0, 200.0, 300.0]);
        let report = Report {
            date: "2026-11-26".into(),
            machine: "test".into(),
            load: "wrk".into(),
            rounds: 3,
            measurements: vec![median],
            instantiation: vec![],
            instructions: vec![],
            inside_call: vec![],
            instruction_targets: vec![],
            ratios: vec![],
            time_targets: vec![],
        };
        assert!(
            report
                .to_markdown()
                .contains("| hello/native | 200 | 100, 200, 300 |"),
            "{}",
            report.to_markdown()
        );
        assert_eq!(
            report.to_json()["scenarios"]["hello/native"]["requests_per_sec_runs"],
            json!([100.0, 200.0, 300.0])
        );
        assert!(super::median(vec![]).is_none());
    }

    #[test]
    fn instruction_counts_are_shown_against_native() {
        let report = Report {
            date: "2026-11-26".into(),
            machine: "test".into(),
            load: "wrk".into(),
            rounds: 1,
            measurements: vec![],
            instantiation: vec![],
            instructions: vec![
                ("hello/native".into(), 6_644.4),
                ("hello/reprise-reuse".into(), 46_984.2),
            ],
            inside_call: vec![],
            instruction_targets: vec![],
            ratios: vec![],
            time_targets: vec![],
        };
        let markdown = report.to_markdown();
        assert!(
            markdown.contains("| hello/native | 6644 | 1.0 |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| hello/reprise-reuse | 46984 | 7.1 |"),
            "{markdown}"
        );
        assert_eq!(
            report.to_json()["instructions_per_request"]["hello/reprise-reuse"],
            json!(46_984.0)
        );
    }

    #[test]
    fn the_host_share_is_the_whole_count_less_the_calls() {
        let whole = vec![
            ("hello/native".to_string(), 6_700.0),
            ("hello/reprise-reuse".to_string(), 41_550.4),
            ("hello/wasmtime-reuse".to_string(), 70_100.0),
        ];
        let inside = vec![
            ("hello/reprise-reuse".to_string(), 27_970.0),
            ("hello/wasmtime-reuse".to_string(), 30_000.0),
        ];
        let targets = instruction_targets(&whole, &inside);
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].name, "p2-reuse-outside-call");
        assert!((targets[0].outside - 13_580.4).abs() < 1e-6);
        assert!(!targets[0].met());
        // Without the count inside the call there is nothing to judge.
        assert!(instruction_targets(&whole, &[]).is_empty());
        let met = instruction_targets(&whole, &[("hello/reprise-reuse".to_string(), 32_000.0)]);
        assert!(met[0].met());
        let report = Report {
            date: "2026-12-01".into(),
            machine: "test".into(),
            load: "wrk".into(),
            rounds: 1,
            measurements: vec![],
            instantiation: vec![],
            instructions: whole,
            inside_call: inside,
            instruction_targets: targets,
            ratios: vec![],
            time_targets: vec![],
        };
        let markdown = report.to_markdown();
        assert!(
            markdown.contains("| hello/reprise-reuse | 41550 | 27970 | 13580 |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| 13580 | ≤ 10000 | **missed** |"),
            "{markdown}"
        );
        let json = report.to_json();
        assert_eq!(
            json["instructions_inside_call"]["hello/wasmtime-reuse"],
            json!(30_000.0)
        );
        let target = &json["instruction_targets"]["p2-reuse-outside-call"];
        assert_eq!(target["outside_call"], json!(13_580.0));
        assert_eq!(target["met"], false);
        assert!(counts_inside_call("hello/reprise-reuse"));
        assert!(!counts_inside_call("hello-p3/reprise-reuse"));
    }

    #[test]
    fn db_ratios_compare_reprise_with_itself_and_with_wasmtime() {
        let ratios = ratios(&[
            measured("db/wasmtime-fresh", 4_000.0, 3),
            measured("db/wasmtime-reuse", 20_000.0, 3),
            measured("db/reprise-fresh", 6_000.0, 1),
            measured("db/reprise-reuse", 24_000.0, 1),
            measured("db/reprise-prewarm", 24_000.0, 1),
        ]);
        let value = |name: &str| ratios.iter().find(|r| r.name == name).unwrap().value;
        assert_eq!(value("db-reuse-vs-fresh"), 4.0);
        assert_eq!(value("db-fresh-vs-wasmtime-fresh"), 1.5);
        assert_eq!(value("db-reuse-vs-wasmtime-fresh"), 6.0);
        assert_eq!(value("db-reuse-vs-wasmtime-reuse"), 1.2);
        assert_eq!(value("db-prewarm-first-request"), 3.0);
        // Only db/ measurements: no other ratio applies.
        assert!(
            ratios.iter().all(|r| r.name.starts_with("db-")),
            "{ratios:?}"
        );
    }

    #[test]
    fn ratios_missing_a_measurement_are_left_out() {
        let ratios = ratios(&[measured("hello/reprise-reuse", 1.0, 1)]);
        assert!(ratios.is_empty(), "{ratios:?}");
    }

    #[test]
    fn a_ratio_below_target_is_missed() {
        let ratios = ratios(&[
            measured("hello/reprise-reuse", 60.0, 1),
            measured("hello/native", 100.0, 1),
        ]);
        assert_eq!(ratios.len(), 1);
        assert!(!ratios[0].met());
        let report = Report {
            date: "2026-11-25".into(),
            machine: "test".into(),
            load: "wrk".into(),
            rounds: 1,
            measurements: vec![],
            instantiation: vec![],
            instructions: vec![],
            inside_call: vec![],
            instruction_targets: vec![],
            ratios,
            time_targets: vec![],
        };
        // Three decimals, so a ratio just under its target never reads as
        // equal to it.
        assert!(
            report
                .to_markdown()
                .contains("| 0.600 | ≥ 0.7 | **missed** |"),
            "{}",
            report.to_markdown()
        );
        assert_eq!(report.to_json()["ratios"]["reuse-vs-native"]["met"], false);
    }

    #[test]
    fn a_time_target_reports_its_median_against_the_bound() {
        let check = |name, secs: &[f64]| TimeTarget {
            name,
            meaning: "default reprise check of hello",
            command: "reprise check hello.wasm --seed 1".into(),
            runs: secs.iter().map(|&s| Duration::from_secs_f64(s)).collect(),
            target: Duration::from_secs(20),
        };
        let report = Report {
            date: "2026-12-01".into(),
            machine: "test".into(),
            load: "wrk".into(),
            rounds: 3,
            measurements: vec![],
            instantiation: vec![],
            instructions: vec![],
            inside_call: vec![],
            instruction_targets: vec![],
            ratios: vec![],
            time_targets: vec![
                check("check/hello", &[6.5, 7.25, 30.0]),
                check("check/slow", &[21.0]),
            ],
        };
        let markdown = report.to_markdown();
        assert!(
            markdown.contains(
                "| check/hello | default reprise check of hello | 7.25 s | 6.50, 7.25, 30.00 | ≤ 20 s | met |"
            ),
            "{markdown}"
        );
        assert!(
            markdown.contains("| 21.00 s | 21.00 | ≤ 20 s | **missed** |"),
            "{markdown}"
        );
        assert!(markdown.contains("- check/hello: `reprise check hello.wasm --seed 1`"));
        let json = report.to_json();
        let hello = &json["time_targets"]["check/hello"];
        assert_eq!(hello["seconds"], json!(7.25));
        assert_eq!(hello["runs_seconds"], json!([6.5, 7.25, 30.0]));
        assert_eq!(hello["target_seconds"], json!(20.0));
        assert_eq!(hello["met"], true);
        assert_eq!(json["time_targets"]["check/slow"]["met"], false);
        assert!(!check("check/none", &[]).met());
    }
}
