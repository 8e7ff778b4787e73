//! `reprise check`: run the differential reuse report and print it.

use crate::cli::{CheckArgs, LogFormat};
use crate::guest::guest_output;
use anyhow::Context as _;
use reprise_host::check::{
    self, DEFAULT_CALLS, DEFAULT_SCRIPT, Outcome, Plan, Report, RunKind, Script, Verdict,
    parse_script,
};
use reprise_host::front::http::proxy_pre;
use reprise_host::front::serial::invoke::function_list;
use reprise_host::policy::{Policy, ReuseBounds};
use reprise_host::pool::InstanceLimits;
use reprise_host::runtime::component::Source;
use reprise_host::runtime::guest_output::GuestOutput;
use reprise_host::setup::{HostSettings, Setup};
use serde_json::json;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code for bad input or usage, or a check that could not run (a
/// finding is 1).
pub const BAD_INPUT: u8 = 2;

fn bad_input(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(BAD_INPUT))
}

pub fn run(args: CheckArgs, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    let script_text = match &args.script {
        Some(path) => match read_script(path) {
            Ok(text) => Some(text),
            Err(e) => return bad_input(format!("cannot read script {}: {e}", path.display())),
        },
        None => None,
    };
    let script_name = args
        .script
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    // What function calls print is part of their answer; otherwise,
    // whatever the guest prints stays out of the report.
    let calls = args.call.is_some()
        || (script_text.as_deref())
            .is_some_and(|text| !Script::file_sends_requests(&script_name, text));
    let output = match calls {
        true => GuestOutput::Captured,
        false => guest_output(log_format, true),
    };
    let guest = args.guest.environment(Vec::new(), false, output);
    // The check picks its own policies; the settings bound every instance.
    let settings = HostSettings {
        limits: InstanceLimits {
            max_memory: Some(args.max_memory),
            timeout: Some(args.timeout),
            ..InstanceLimits::default()
        },
        concurrent: true,
        preinit: args.preinit.mode(),
        ..HostSettings::default()
    };
    let setup = Setup::prepare(Source::File(args.component.clone()), settings)?;
    let declared = setup.hint;
    // Reuse without a bound on calls, age or idleness: the check looks for
    // what long-lived instances expose. Concurrency stays within what the
    // component declares: the host never exceeds it, nor does the check.
    // Without a declaration the check sends the host's default at once, and
    // an instance may take twice that: a call's task still finishing after
    // its answer then never fills the instance, which would make the
    // handler start another one in the middle of a concurrent run.
    let declared_concurrency = declared.as_ref().and_then(|hint| hint.max_concurrency());
    let default_concurrency = ReuseBounds::default().max_concurrency;
    let bounds = ReuseBounds {
        max_concurrency: declared_concurrency
            .unwrap_or(default_concurrency.saturating_mul(NonZeroU32::new(2).expect("two"))),
        ..ReuseBounds::default()
    };
    let concurrency = args.concurrency.or(match declared_concurrency {
        Some(_) => None,
        None => Some(u64::from(default_concurrency.get())),
    });
    let [fresh, reused] = setup.managers([Policy::Fresh, Policy::Reuse(bounds)], guest.clone())?;
    let (fresh, reused) = (Arc::new(fresh), Arc::new(reused));
    let (component, engine) = (fresh.component(), &fresh.engine().engine);
    let script = match (&args.call, &script_text) {
        (Some(call), _) => Script::repeated_call(call, DEFAULT_CALLS, component, engine),
        (None, Some(text)) => Script::parse_file(&script_name, text, component, engine),
        (None, None) if proxy_pre(&fresh).is_ok() => parse_script(DEFAULT_SCRIPT).map(Script::Http),
        (None, None) => {
            return bad_input(format!(
                "{} has no wasi:http handler to send requests to; name the functions to call \
                 with `--call 'name(args)'` or `--script FILE` (one call per line); its functions: {}",
                args.component.display(),
                function_list(component, engine)
            ));
        }
    };
    let script = match script {
        Ok(script) => script,
        Err(e) => return bad_input(e),
    };
    if let (Some(repro), Script::Http(_)) = (&args.repro, &script)
        && !check::is_http_file(&repro.to_string_lossy())
    {
        return bad_input(format!(
            "--repro {}: a script of requests is written in the .http format; name the file \
             `….http`",
            repro.display()
        ));
    }
    let seed = args.seed.unwrap_or_else(rand_seed);
    let seeds: Vec<u64> = (0..args.seeds).map(|i| seed.wrapping_add(i)).collect();
    let plan = Plan {
        seed,
        chaos_seeds: seeds.clone(),
        long_calls: args.calls,
        budget: args.time_budget,
        concurrency: concurrency.map(|k| k as usize),
        concurrent_runs: args.seeds.max(1) as usize,
        shrink: true,
    };
    if !args.json {
        eprintln!(
            "checking {} with {} calls (seed {seed}): fresh twice, reuse, reuse with varied \
             values, up to {} calls on one instance, concurrent (p3), and chaos with seeds {}",
            args.component.display(),
            script.calls_per_run(),
            args.calls.max(script.calls_per_run()),
            join(&seeds)
        );
    }
    // A snapshot must answer as per-instance init does: if it does not,
    // init was not as deterministic as it looked.
    let preinit = match setup.is_preinitialized() {
        true => Some(compare_preinit(
            &setup,
            guest,
            fresh.clone(),
            &script,
            seed,
        )?),
        false => None,
    };
    let outcome =
        crate::instances::runtime()?.block_on(check::check(fresh, reused, &script, &plan))?;
    if !args.json {
        match &preinit {
            Some(PreinitComparison {
                divergence: None,
                calls,
            }) => println!(
                "pre-initialized: the snapshot answered like per-instance init over {calls} calls"
            ),
            Some(PreinitComparison {
                divergence: Some((call, per_instance, snapshot)),
                ..
            }) => {
                println!("pre-initialization divergence: call {call}");
                println!("  per-instance init answered: {per_instance}");
                println!("  the snapshot answered: {snapshot}");
                println!(
                    "  init was not as deterministic as it looked; serve with --preinit never"
                );
            }
            None => {}
        }
    }
    let preinit_diverged = preinit.as_ref().is_some_and(|p| p.divergence.is_some());
    let file = args.component.display().to_string();
    let report = &outcome.report;
    if let Some(path) = &args.junit {
        std::fs::write(path, check::junit::junit(&file, &outcome.runs, report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let repro_path = args.repro.as_ref().map(|p| p.display().to_string());
    if let (Some(path), Some(repro)) = (&args.repro, &outcome.repro) {
        std::fs::write(path, repro.script.to_file_text())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let replay = outcome.repro.as_ref().map(|repro| {
        let default_name = match repro.script {
            Script::Http(_) => "repro.http",
            Script::Calls(_) => "repro.calls",
        };
        let path = repro_path
            .clone()
            .unwrap_or_else(|| default_name.to_string());
        let mut command = format!("reprise check {file} --script {path} --seed {seed}");
        if repro.concurrency > 1 {
            command.push_str(&format!(" --concurrency {}", repro.concurrency));
        }
        (command, path)
    });
    let declared = declared.map(|h| h.to_string());
    if let Some(path) = &args.html {
        let rerun = rerun_command(&args, &file, seed);
        let finding = replay.as_ref().map(|(command, path)| match &args.repro {
            Some(_) => command.clone(),
            // Write the shrunk script first (the check exits 1 on a finding).
            None => format!("{rerun} --repro {}; {command}", shell_word(path)),
        });
        let page = check::html::PageContext {
            component: &file,
            seed,
            declared_hint: declared.as_deref(),
            replay: &rerun,
            replay_finding: finding.as_deref(),
        };
        std::fs::write(path, check::html::html(&outcome, &page))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let set_command = format!(
        "reprise hint set {file} '{}' -o {file}",
        report.recommended_hint
    );
    if args.json {
        let value = json!({
            "component": file,
            "calls": script.calls_per_run(),
            "seed": seed,
            "runs": outcome.runs.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
            "run_details": outcome.runs.iter().map(|r| json!({
                "label": r.label,
                "calls": r.calls.len(),
                "concurrency": r.concurrency,
                "seed": r.seed,
                "stopped": r.stopped,
                "finding": report.finding_in(&r.label),
            })).collect::<Vec<_>>(),
            "chaos_seeds": seeds,
            "verdict": report.verdict.as_str(),
            "declared_hint": declared,
            "first_divergence": report.divergence.as_ref().map(|d| json!({
                "call": d.call,
                "entry": d.entry,
                "run": d.run,
                "expected": d.expected.to_string(),
                "actual": d.actual.to_string(),
                "succeeded_before": d.succeeded_before,
                "in_flight_with": d.in_flight_with,
            })),
            "leaks": report.leaks.iter().map(|l| json!({
                "run": l.run,
                "value": l.value,
                "from_call": l.from_call,
                "from": l.from_place,
                "to_call": l.to_call,
                "to": l.to_place,
                "evidence": l.to_string(),
            })).collect::<Vec<_>>(),
            "masked": report.masked,
            "notes": report.notes,
            "breaking_point": report.breaking_point,
            "memory": report.memory.map(|m| json!({
                "calls": m.calls,
                "bytes_per_call": m.bytes_per_call,
                "still_growing": m.still_growing,
            })),
            "reproduction": outcome.repro.as_ref().map(|r| json!({
                "calls": r.script.calls_per_run(),
                "from_run": r.run,
                "minimal": r.minimal,
                "script": r.script.to_file_text(),
                "replay": replay.as_ref().map(|(c, _)| c.clone()),
            })),
            "recommended_hint": report.recommended_hint,
            "set_hint_command": set_command,
            "preinit": preinit.as_ref().map(|p| json!({
                "calls": p.calls,
                "divergence": p.divergence.as_ref().map(|(call, per_instance, snapshot)| json!({
                    "call": call,
                    "per_instance": per_instance,
                    "snapshot": snapshot,
                })),
            })),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_text(&outcome, declared.as_deref(), &set_command);
        if let (Some(repro), Some((command, path))) = (&outcome.repro, &replay) {
            let calls = repro.script.calls_per_run();
            let shrunk = match repro.minimal {
                true => "shrunk",
                false => "not fully shrunk",
            };
            println!(
                "reproduction: {calls} call{} ({shrunk}, from {} calls of {}{}):",
                if calls == 1 { "" } else { "s" },
                repro.from_calls,
                repro.run,
                match repro.concurrency {
                    1 => String::new(),
                    k => format!(", {k} at a time"),
                }
            );
            // The whole script when it is short: what differs between its
            // calls may be a header or a body, which a summary leaves out.
            let text = repro.script.to_file_text();
            if calls <= 12 && text.len() <= 4096 {
                for line in text.lines() {
                    println!("  | {line}");
                }
            } else {
                for index in 0..calls.min(12) {
                    println!("  {}. {}", index + 1, repro.script.summary(index));
                }
                if calls > 12 {
                    println!("  … {} more", calls - 12);
                }
            }
            if args.repro.is_some() {
                println!("  written to {path}; replay: {command}");
            } else {
                println!("  write it with --repro {path}, then replay: {command}");
            }
        }
    }
    Ok(match report.verdict {
        Verdict::ReuseSafe if !preinit_diverged => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// The script's answers from the pre-initialization snapshot (`fresh`)
/// against those of per-instance init, both fresh.
struct PreinitComparison {
    calls: usize,
    /// The first call (from 1) that differs: per-instance, snapshot.
    divergence: Option<(usize, String, String)>,
}

fn compare_preinit(
    setup: &Setup,
    guest: reprise_host::runtime::instance::GuestEnvironment,
    snapshot: Arc<reprise_host::pool::InstanceManager>,
    script: &Script,
    seed: u64,
) -> anyhow::Result<PreinitComparison> {
    let [per_instance] = setup.managers_with(
        [Policy::Fresh],
        guest,
        reprise_host::runtime::preinit::PreinitMode::Never,
    )?;
    let runtime = crate::instances::runtime()?;
    let expected = runtime.block_on(check::runs::answers(Arc::new(per_instance), script, seed))?;
    let actual = runtime.block_on(check::runs::answers(snapshot, script, seed))?;
    let divergence = expected
        .iter()
        .zip(&actual)
        .position(|(a, b)| a != b)
        .map(|i| (i + 1, expected[i].to_string(), actual[i].to_string()));
    Ok(PreinitComparison {
        calls: expected.len(),
        divergence,
    })
}

fn print_text(outcome: &Outcome, declared: Option<&str>, set_command: &str) {
    let report: &Report = &outcome.report;
    for line in &report.masked {
        println!("masked: {line}");
    }
    for leak in report.leaks.iter().take(3) {
        println!("leak: {leak}");
    }
    if report.leaks.len() > 3 {
        println!("  … {} more leaks", report.leaks.len() - 3);
    }
    match &report.divergence {
        None => println!("every run answered like the fresh baseline"),
        Some(d) => {
            println!("first divergence: call {} under {}", d.call, d.run);
            if d.kind == RunKind::Long || d.succeeded_before + 1 >= d.call && d.call > 12 {
                let what = if d.failed {
                    "failed"
                } else {
                    "answered differently"
                };
                println!(
                    "  calls {}-{} succeeded on one instance, call {} {what}",
                    d.call - d.succeeded_before,
                    d.call - 1,
                    d.call
                );
            }
            if !d.in_flight_with.is_empty() {
                println!(
                    "  in flight together with calls {}",
                    check::noise::ranges(&d.in_flight_with)
                );
            }
            println!("  fresh answered: {}", d.expected);
            println!("  {} answered: {}", d.run, d.actual);
        }
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    match report.memory {
        Some(m) => println!(
            "memory while reused: {:+.1} KiB per call over {} calls{}",
            m.bytes_per_call / 1024.0,
            m.calls,
            if m.still_growing && m.bytes_per_call > 0.0 {
                " and still growing: likely a leak"
            } else {
                ""
            }
        ),
        None => println!("memory while reused: not measured (fewer than 3 calls on one instance)"),
    }
    println!("verdict: {}", report.verdict.as_str());
    let meaning = match report.verdict {
        Verdict::ReuseSafe => "the component answers the same whether hosts reuse instances or not",
        Verdict::DependsOnReuse => {
            "answers depend on state kept in the instance between calls; hosts that give \
             calls fresh instances (or reuse them differently) answer differently"
        }
        Verdict::BreaksUnderReuse => {
            "calls that succeed on a fresh instance fail on a reused one; hosts that reuse \
             instances will serve errors"
        }
        Verdict::LeaksBetweenCalls => {
            "data sent in one call reaches the answer of another; hosts that reuse instances \
             will show one caller's data to another"
        }
    };
    println!("  {meaning}");
    println!(
        "declared hint: {}",
        declared.map_or("none".to_string(), |h| format!("`{h}`"))
    );
    println!("recommended hint: {}", report.recommended_hint);
    if let Some(calls) = report.breaking_point
        && report.recommended_hint.contains("max-calls")
    {
        println!("  one instance broke after {calls} calls; retire it before");
    }
    if declared != Some(report.recommended_hint.as_str()) {
        println!("  {set_command}");
    }
}

/// The command line that runs this check again, with its seed.
fn rerun_command(args: &CheckArgs, file: &str, seed: u64) -> String {
    let mut command = format!("reprise check {}", shell_word(file));
    if let Some(script) = &args.script {
        command.push_str(&format!(
            " --script {}",
            shell_word(&script.display().to_string())
        ));
    }
    if let Some(call) = &args.call {
        command.push_str(&format!(" --call {}", shell_word(call)));
    }
    command.push_str(&format!(" --seed {seed}"));
    if args.seeds != 3 {
        command.push_str(&format!(" --seeds {}", args.seeds));
    }
    if args.calls != DEFAULT_LONG_CALLS {
        command.push_str(&format!(" --calls {}", args.calls));
    }
    if let Some(k) = args.concurrency {
        command.push_str(&format!(" --concurrency {k}"));
    }
    command
}

/// The `--calls` default.
const DEFAULT_LONG_CALLS: usize = 1000;

/// `word` as one shell word: as it is when it is plain, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    match plain {
        true => word.to_string(),
        false => format!("'{}'", word.replace('\'', "'\\''")),
    }
}

fn join(seeds: &[u64]) -> String {
    seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A random first seed; printed with the report so the run can be replayed.
fn rand_seed() -> u64 {
    reprise_host::policy::chaos::ChaosConfig::new(None, None, false)
        .map(|c| c.seed)
        .unwrap_or_default()
}

/// Reads a script, checking first that it is a regular file of a sane size
/// (a device such as `/dev/zero` would never end).
fn read_script(path: &std::path::Path) -> std::io::Result<String> {
    const MAX_SCRIPT_BYTES: u64 = 64 << 20;
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    if metadata.len() > MAX_SCRIPT_BYTES {
        return Err(std::io::Error::other("it is larger than 64 MiB"));
    }
    std::fs::read_to_string(path)
}
