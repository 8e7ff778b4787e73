//! `reprise check`: run the differential reuse report and print it.

use crate::cli::{CheckArgs, LogFormat};
use crate::guest::guest_output;
use anyhow::Context as _;
use reprise_host::check::{
    self, DEFAULT_CALLS, DEFAULT_SCRIPT, Report, Script, Verdict, parse_script,
};
use reprise_host::component::{self, Source};
use reprise_host::engine::EngineOptions;
use reprise_host::guest_output::GuestOutput;
use reprise_host::http::proxy_pre;
use reprise_host::invoke::function_list;
use reprise_host::manager::{InstanceLimits, InstanceManager};
use reprise_host::policy::{Policy, ReuseBounds};
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(args: CheckArgs, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    let script_text = match &args.script {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read script {}", path.display()))?,
        ),
        None => None,
    };
    let source = Source::File(args.component.clone());
    let bytes = component::read(&source)?;
    let declared = crate::hint::effective_hint(&bytes, &source);

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
        || (script_text.as_deref()).is_some_and(|text| !Script::sends_requests(text));
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
        (None, Some(text)) => Script::parse(text, component, engine),
        (None, None) if proxy_pre(&fresh).is_ok() => parse_script(DEFAULT_SCRIPT).map(Script::Http),
        (None, None) => Err(format!(
            "{} has no wasi:http handler to send requests to; name the functions to call \
             with `--call 'name(args)'` or `--script FILE` (one call per line); its functions: {}",
            args.component.display(),
            function_list(component, engine)
        )),
    }
    .map_err(anyhow::Error::msg)?;
    let first_seed = args.seed.unwrap_or_else(rand_seed);
    let seeds: Vec<u64> = (0..args.seeds)
        .map(|i| first_seed.wrapping_add(i))
        .collect();
    if !args.json {
        eprintln!(
            "checking {} with {} calls: fresh, reuse, and chaos with seeds {}",
            args.component.display(),
            script.calls_per_run(),
            join(&seeds)
        );
    }
    let runs =
        crate::instances::runtime()?.block_on(check::run_all(fresh, reused, &seeds, &script))?;
    let report = check::judge(&runs);
    let file = args.component.display().to_string();
    let declared = declared.map(|h| h.to_string());
    let set_command = format!(
        "reprise hint set {file} '{}' -o {file}",
        report.recommended_hint
    );
    if args.json {
        let value = json!({
            "component": file,
            "calls": script.calls_per_run(),
            "runs": runs.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
            "chaos_seeds": seeds,
            "verdict": report.verdict.as_str(),
            "declared_hint": declared,
            "first_divergence": report.divergence.as_ref().map(|d| json!({
                "call": d.call,
                "run": d.run,
                "expected": d.expected.to_string(),
                "actual": d.actual.to_string(),
            })),
            "memory": report.memory.map(|m| json!({
                "calls": m.calls,
                "bytes_per_call": m.bytes_per_call,
                "still_growing": m.still_growing,
            })),
            "recommended_hint": report.recommended_hint,
            "set_hint_command": set_command,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_text(&report, declared.as_deref(), &set_command);
    }
    Ok(match report.verdict {
        Verdict::ReuseSafe => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

fn print_text(report: &Report, declared: Option<&str>, set_command: &str) {
    match &report.divergence {
        None => println!("every run answered like the fresh baseline"),
        Some(d) => {
            println!("first divergence: call {} under {}", d.call, d.run);
            println!("  fresh answered: {}", d.expected);
            println!("  {} answered: {}", d.run, d.actual);
        }
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
    };
    println!("  {meaning}");
    println!(
        "declared hint: {}",
        declared.map_or("none".to_string(), |h| format!("`{h}`"))
    );
    println!("recommended hint: {}", report.recommended_hint);
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
    reprise_host::chaos::ChaosConfig::new(None, None, false)
        .map(|c| c.seed)
        .unwrap_or_default()
}
