//! `reprise check`: run the differential reuse report and print it.

use crate::cli::{CheckArgs, LogFormat};
use crate::guest::guest_output;
use anyhow::Context as _;
use reprise_host::check::{
    self, DEFAULT_CALLS, DEFAULT_SCRIPT, Outcome, Plan, Report, RunKind, Script, Verdict,
    parse_script,
};
use reprise_host::runtime::component::{self, Source};
use reprise_host::runtime::engine::EngineOptions;
use reprise_host::runtime::guest_output::GuestOutput;
use reprise_host::front::http::proxy_pre;
use reprise_host::front::serial::invoke::function_list;
use reprise_host::pool::{InstanceLimits, InstanceManager};
use reprise_host::policy::{Policy, ReuseBounds};
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code for bad input or usage.
const BAD_INPUT: u8 = 2;

fn bad_input(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(BAD_INPUT))
}

pub fn run(args: CheckArgs, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    let script_text = match &args.script {
        Some(path) => match std::fs::read_to_string(path) {
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
    let source = Source::File(args.component.clone());
    let bytes = component::read(&source)?;
    let declared = reprise_host::policy::adopt::effective_hint(&bytes, &source);

    let options = EngineOptions {
        max_memory: Some(args.max_memory),
        interruptible: true,
        ..EngineOptions::default()
    };
    let (engine, compiled) = component::load(&options, &bytes, &source)?;
    let limits = InstanceLimits {
        max_memory: Some(args.max_memory),
        timeout: Some(args.timeout),
        ..InstanceLimits::default()
    };
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
    let manager = |policy| {
        InstanceManager::new(engine.clone(), compiled.clone(), limits.clone(), policy)
            .map(|manager| Arc::new(manager.with_guest(guest.clone())))
    };
    let fresh = manager(Policy::Fresh)?;
    // Unbounded reuse: the check looks for what long-lived instances expose.
    let reused = manager(Policy::Reuse(ReuseBounds::default()))?;
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
        && !repro.to_string_lossy().ends_with(".http")
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
        concurrency: args.concurrency.map(|k| k as usize),
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
    let outcome =
        crate::instances::runtime()?.block_on(check::check(fresh, reused, &script, &plan))?;
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
        let path = repro_path.clone().unwrap_or_else(|| default_name.to_string());
        let mut command = format!("reprise check {file} --script {path} --seed {seed}");
        if repro.concurrency > 1 {
            command.push_str(&format!(" --concurrency {}", repro.concurrency));
        }
        (command, path)
    });
    let declared = declared.map(|h| h.to_string());
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
            for index in 0..calls.min(12) {
                println!("  {}. {}", index + 1, repro.script.summary(index));
            }
            if calls > 12 {
                println!("  … {} more", calls - 12);
            }
            if args.repro.is_some() {
                println!("  written to {path}; replay: {command}");
            } else {
                println!("  write it with --repro {path}, then replay: {command}");
            }
        }
    }
    Ok(match report.verdict {
        Verdict::ReuseSafe => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
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
                let what = if d.failed { "failed" } else { "answered differently" };
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
