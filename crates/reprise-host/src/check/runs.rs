//! Driving the runs of a check, in process (no sockets: the check compares
//! the component's behaviour, not the network's).

use super::script::{Script, ScriptedCall, ScriptedRequest};
use super::shrink::shrink;
use super::vary::{Sent, Tokens, call_values, request_values, vary_call, vary_request};
use super::{Answer, Baseline, LEAK_BUDGET, Observed, Report, Run, RunKind, judge};
use crate::front::http::{HttpFlavor, HttpFrontEnd, Routing, proxy_pre};
use crate::front::serial::invoke::parse_invocation;
use crate::front::serial::{Serial, SerialOptions};
use crate::policy::chaos::{Chaos, ChaosConfig};
use crate::pool::Bind;
use crate::pool::InstanceManager;
use crate::runtime::guest_output::Printed;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use wasmtime::component::Func;

/// What a check runs besides the baselines and the plain reuse runs.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The seed of all randomness: tokens, admission orders; chaos seeds
    /// are given separately.
    pub seed: u64,
    pub chaos_seeds: Vec<u64>,
    /// Calls of the long reuse run (the script repeated).
    pub long_calls: usize,
    /// Time the long run may take, and shrinking too.
    pub budget: Duration,
    /// Calls in flight at once in concurrent runs; `None`: the instance's
    /// max concurrency, at most the script length.
    pub concurrency: Option<usize>,
    /// Concurrent runs (seeds `seed`, `seed + 1`, ...).
    pub concurrent_runs: usize,
    /// Whether to shrink a finding.
    pub shrink: bool,
}

/// The fewest calls that still show the finding, as a script.
#[derive(Clone, Debug)]
pub struct Reproduction {
    pub script: Script,
    /// The run whose finding it reproduces.
    pub run: String,
    /// Calls of that run up to the finding.
    pub from_calls: usize,
    /// Whether shrinking finished (no single call more can go).
    pub minimal: bool,
    /// Calls in flight at once needed (1: serial).
    pub concurrency: usize,
}

/// Everything a check observed and concluded.
pub struct Outcome {
    pub runs: Vec<Run>,
    pub report: Report,
    pub repro: Option<Reproduction>,
    pub flavor: Option<HttpFlavor>,
}

/// The script as written and varied, with what each entry sends.
struct Variant {
    script: Script,
    sent: Vec<Vec<Sent>>,
}

fn variants(script: &Script, seed: u64, fresh: &InstanceManager) -> [Variant; 2] {
    let mut tokens = Tokens::new(seed);
    match script {
        Script::Http(requests) => {
            let plain = Variant {
                script: script.clone(),
                sent: requests.iter().map(request_values).collect(),
            };
            let (varied, sent): (Vec<_>, Vec<_>) = requests
                .iter()
                .map(|r| vary_request(r, &mut tokens))
                .unzip();
            [
                plain,
                Variant {
                    script: Script::Http(varied),
                    sent,
                },
            ]
        }
        Script::Calls(calls) => {
            let plain = Variant {
                script: script.clone(),
                sent: calls.iter().map(|c| call_values(&c.text)).collect(),
            };
            let (component, engine) = (fresh.component(), &fresh.engine().engine);
            let (varied, sent): (Vec<_>, Vec<_>) = calls
                .iter()
                .map(|call| {
                    let (text, sent) = vary_call(&call.text, &mut tokens);
                    match parse_invocation(component, engine, &text) {
                        Ok(invocation) if !sent.is_empty() => {
                            (ScriptedCall { text, invocation }, sent)
                        }
                        _ => (call.clone(), call_values(&call.text)),
                    }
                })
                .unzip();
            [
                plain,
                Variant {
                    script: Script::Calls(varied),
                    sent,
                },
            ]
        }
    }
}

/// Whether a run goes on after a call.
enum Next {
    Go,
    Stop(Option<String>),
}

/// Sends one request through `front`.
async fn send(front: &HttpFrontEnd, request: &ScriptedRequest, position: usize) -> Observed {
    let body = Full::new(request.body.clone())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut observed = Observed::serial(
        position,
        0,
        Answer::Http {
            status: 0,
            content_type: None,
            body: Bytes::new(),
        },
    );
    observed.request = request.summary();
    let request = match request.to_http(body) {
        Ok(request) => request,
        Err(e) => {
            observed.answer = Answer::Http {
                status: 400,
                content_type: None,
                body: Bytes::from(format!("<the request cannot be sent: {e}>")),
            };
            return observed;
        }
    };
    let served = front.call(request).await;
    let (parts, body) = served.response.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => Bytes::from(format!("<body failed: {e}>")),
    };
    observed.answer = Answer::Http {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    };
    observed.headers = parts
        .headers
        .iter()
        .filter(|(name, _)| *name != http::header::DATE)
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    // Like a real serial client, the next call comes once this one is over
    // for its instance too (a p2 guest runs on after sending its
    // response), so a reused instance is there to take it.
    served.settlement.settled().await;
    observed.instance = served.instance;
    observed.memory = served.settlement.memory_now();
    observed
}

/// Sends `order`'s entries of `variant` one after another.
async fn http_serial(
    front: &HttpFrontEnd,
    variant: &Variant,
    order: impl Iterator<Item = usize>,
    mut next: impl FnMut(&Observed, usize) -> Next,
) -> (Vec<Observed>, Option<String>) {
    let Script::Http(requests) = &variant.script else {
        return (Vec::new(), None);
    };
    let mut calls = Vec::new();
    for (position, entry) in order.enumerate() {
        let mut observed = send(front, &requests[entry], position).await;
        observed.entry = entry;
        observed.sent = variant.sent[entry].clone();
        let decision = next(&observed, position + 1);
        calls.push(observed);
        if let Next::Stop(why) = decision {
            return (calls, why);
        }
    }
    (calls, None)
}

/// Sends all of `variant`'s entries, up to `k` at a time, in an order and
/// with delays drawn from `seed`.
async fn http_concurrent(
    front: &HttpFrontEnd,
    variant: &Variant,
    k: usize,
    seed: u64,
) -> Vec<Observed> {
    let Script::Http(requests) = &variant.script else {
        return Vec::new();
    };
    let mut random = Tokens::new(seed);
    let mut order: Vec<usize> = (0..requests.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, random.below(i as u64 + 1) as usize);
    }
    let delays: Vec<(u64, u64)> = (0..requests.len())
        .map(|_| (random.below(3000), random.below(2000)))
        .collect();
    let permits = tokio::sync::Semaphore::new(k.max(1));
    let clock = AtomicU64::new(0);
    let calls = order.iter().map(|&entry| {
        let (permits, clock) = (&permits, &clock);
        let (admit, read) = delays[entry];
        async move {
            tokio::time::sleep(Duration::from_micros(admit)).await;
            let _permit = permits.acquire().await;
            let started = clock.fetch_add(1, Relaxed);
            let mut observed = send(front, &requests[entry], entry).await;
            tokio::time::sleep(Duration::from_micros(read)).await;
            observed.ended = clock.fetch_add(1, Relaxed);
            observed.started = started;
            observed.entry = entry;
            observed.sent = variant.sent[entry].clone();
            (entry, observed)
        }
    });
    let mut done = futures::future::join_all(calls).await;
    done.sort_by_key(|(entry, _)| *entry);
    done.into_iter().map(|(_, observed)| observed).collect()
}

/// Makes `order`'s calls of `variant` one after another on `manager`'s
/// instances, as `reprise call` would, under `chaos` when given.
async fn calls_serial(
    manager: Arc<InstanceManager>,
    chaos: Option<Arc<Chaos>>,
    variant: &Variant,
    order: impl Iterator<Item = usize>,
    mut next: impl FnMut(&Observed, usize) -> Next,
) -> anyhow::Result<(Vec<Observed>, Option<String>)> {
    let Script::Calls(calls) = &variant.script else {
        return Ok((Vec::new(), None));
    };
    // Each export a new instance binds once, however often the script calls
    // it; `slot[i]` is where entry `i` finds its function.
    let mut distinct: Vec<&ScriptedCall> = Vec::new();
    let slot: Vec<usize> = calls
        .iter()
        .map(|call| {
            match distinct
                .iter()
                .position(|d| d.invocation.name == call.invocation.name)
            {
                Some(index) => index,
                None => {
                    distinct.push(call);
                    distinct.len() - 1
                }
            }
        })
        .collect();
    let binds: Vec<Bind<Func>> = distinct.iter().map(|call| call.invocation.bind()).collect();
    let bind: Bind<Vec<Func>> =
        Arc::new(move |store, instance| binds.iter().map(|bind| bind(store, instance)).collect());
    let options = SerialOptions { prewarm: 0, chaos };
    let mut serial = Serial::new(manager, bind, options);
    let mut observed = Vec::new();
    for (position, entry) in order.enumerate() {
        let call = &calls[entry];
        let served = serial
            .call(async |store, funcs| {
                let results = call.invocation.call(store, &funcs[slot[entry]]).await?;
                let printed = store.data_mut().printed.as_mut().map(Printed::take);
                let memory = store.data().memory_bytes().load(Relaxed);
                Ok((results, printed.unwrap_or_default(), memory))
            })
            .await;
        // No instance could be created: there is nothing to compare.
        let served = match served {
            Ok(served) => served,
            Err(e) => {
                serial.finish().await;
                return Err(e);
            }
        };
        let (answer, memory) = match served.result {
            Ok((results, printed, memory)) => (
                Answer::Call {
                    result: Ok(results),
                    printed,
                },
                Some(memory),
            ),
            Err(failure) => (
                Answer::Call {
                    result: Err(failure.to_string()),
                    printed: String::new(),
                },
                None,
            ),
        };
        let mut call_observed = Observed::serial(position, entry, answer);
        call_observed.instance = Some(served.instance);
        call_observed.memory = memory;
        call_observed.request = call.text.clone();
        call_observed.sent = variant.sent[entry].clone();
        let decision = next(&call_observed, position + 1);
        observed.push(call_observed);
        if let Next::Stop(why) = decision {
            serial.finish().await;
            return Ok((observed, why));
        }
    }
    serial.finish().await;
    Ok((observed, None))
}

fn chaos(seed: u64) -> anyhow::Result<Arc<Chaos>> {
    ChaosConfig::new(None, Some(seed), false)
        .map(|config| Arc::new(Chaos::new(config)))
        .map_err(anyhow::Error::from)
}

/// Runs the script `order` serially on one manager (`chaos` optional).
async fn serial_run(
    manager: &Arc<InstanceManager>,
    chaos: Option<Arc<Chaos>>,
    variant: &Variant,
    order: impl Iterator<Item = usize>,
    next: impl FnMut(&Observed, usize) -> Next,
) -> anyhow::Result<(Vec<Observed>, Option<String>)> {
    match &variant.script {
        Script::Http(_) => {
            let routing = Routing {
                chaos,
                ..Routing::default()
            };
            let front = HttpFrontEnd::new(manager.clone(), routing, false, 0)?;
            Ok(http_serial(&front, variant, order, next).await)
        }
        Script::Calls(_) => calls_serial(manager.clone(), chaos, variant, order, next).await,
    }
}

/// The answers of `script` run once, serially, on `manager`: what
/// `reprise check` compares between a pre-initialization snapshot and
/// per-instance init (`runtime::preinit`).
pub async fn answers(
    manager: Arc<InstanceManager>,
    script: &Script,
    seed: u64,
) -> anyhow::Result<Vec<Answer>> {
    let variants = variants(script, seed, &manager);
    let n = script.calls_per_run();
    let (calls, _) = serial_run(&manager, None, &variants[0], 0..n, |_, _| Next::Go).await?;
    Ok(calls.into_iter().map(|call| call.answer).collect())
}

/// The runs of a check, judged, and its finding shrunk.
pub async fn check(
    fresh: Arc<InstanceManager>,
    reused: Arc<InstanceManager>,
    script: &Script,
    plan: &Plan,
) -> anyhow::Result<Outcome> {
    let flavor = match script {
        Script::Http(_) => Some(proxy_pre(&fresh)?.1),
        Script::Calls(_) => None,
    };
    let variants = variants(script, plan.seed, &fresh);
    let n = script.calls_per_run();
    let mut runs = Vec::new();
    let all = || 0..n;
    let go = |_: &Observed, _: usize| Next::Go;
    // The baselines: each variant fresh, twice.
    for (varied, variant) in variants.iter().enumerate() {
        for label in ["fresh", "fresh again"] {
            let label = match varied {
                1 => format!("{label}, varied"),
                _ => label.to_string(),
            };
            let (calls, _) = serial_run(&fresh, None, variant, all(), go).await?;
            runs.push(Run::new(&label, RunKind::Fresh, varied == 1, calls));
        }
    }
    let baseline = Baseline::from_runs(&runs);
    for (varied, variant) in variants.iter().enumerate() {
        let label = ["reuse", "reuse, varied"][varied];
        let (calls, _) = serial_run(&reused, None, variant, all(), go).await?;
        runs.push(Run::new(label, RunKind::Reuse, varied == 1, calls));
    }
    // The long run: the script repeated on one instance, until the first
    // divergence, the call or time budget, or the leak budget.
    let started = Instant::now();
    let long_calls = plan.long_calls.max(n);
    let (calls, stopped) = serial_run(
        &reused,
        None,
        &variants[0],
        (0..long_calls).map(|i| i % n),
        |call, count| {
            if !baseline.matches(false, call.entry, &call.answer) {
                Next::Stop(None)
            } else if call.memory.is_some_and(|m| m > LEAK_BUDGET) {
                Next::Stop(Some(format!(
                    "stopped after {count} of {long_calls} calls: the instance holds more than {} MiB",
                    LEAK_BUDGET >> 20
                )))
            } else if count < long_calls && started.elapsed() > plan.budget {
                Next::Stop(Some(format!(
                    "stopped after {count} of {long_calls} calls: the time budget of {:?} ran out",
                    plan.budget
                )))
            } else {
                Next::Go
            }
        },
    )
    .await?;
    let mut long = Run::new("long reuse", RunKind::Long, false, calls);
    long.stopped = stopped;
    runs.push(long);
    // Concurrent runs, where the handler takes concurrent calls.
    let max = match reused.policy() {
        crate::policy::Policy::Reuse(bounds) => bounds.max_concurrency.get() as usize,
        crate::policy::Policy::Fresh => 1,
    };
    let k = plan.concurrency.unwrap_or(max).min(n);
    if flavor == Some(HttpFlavor::P3) && k >= 2 {
        for i in 0..plan.concurrent_runs as u64 {
            let seed = plan.seed.wrapping_add(i);
            let front = HttpFrontEnd::new(reused.clone(), Routing::default(), false, 0)?;
            let calls = http_concurrent(&front, &variants[1], k, seed).await;
            let mut run = Run::new(
                &format!("concurrent seed {seed}"),
                RunKind::Concurrent,
                true,
                calls,
            );
            run.seed = Some(seed);
            run.concurrency = k;
            runs.push(run);
        }
    }
    for &seed in &plan.chaos_seeds {
        let label = format!("chaos seed {seed}");
        let (calls, _) = serial_run(&reused, Some(chaos(seed)?), &variants[0], all(), go).await?;
        let mut run = Run::new(&label, RunKind::Chaos, false, calls);
        run.seed = Some(seed);
        runs.push(run);
    }
    let report = judge(&runs);
    let repro = match plan.shrink {
        true => reproduce(&reused, &variants, &runs, &report, &baseline, plan).await?,
        false => None,
    };
    fresh.close();
    reused.close();
    Ok(Outcome {
        runs,
        report,
        repro,
        flavor,
    })
}

/// The finding of `report` cut down to the fewest calls that show it on
/// one reused instance.
async fn reproduce(
    reused: &Arc<InstanceManager>,
    variants: &[Variant; 2],
    runs: &[Run],
    report: &Report,
    baseline: &Baseline,
    plan: &Plan,
) -> anyhow::Result<Option<Reproduction>> {
    let run_of = |label: &str| runs.iter().find(|r| r.label == label);
    // A leak seen serially: keep its source and its sink.
    let serial_leak = report
        .leaks
        .iter()
        .find(|l| run_of(&l.run).is_some_and(|r| r.kind == RunKind::Reuse));
    let serial_divergence = report
        .divergences
        .iter()
        .find(|d| matches!(d.kind, RunKind::Reuse | RunKind::Long));
    let (run, upto, keep, value) = match (serial_leak, serial_divergence) {
        (Some(leak), _) => (
            run_of(&leak.run),
            leak.to_call.max(leak.from_call),
            vec![leak.from_call - 1, leak.to_call - 1],
            Some(leak.value.clone()),
        ),
        (None, Some(d)) => (run_of(&d.run), d.call, vec![d.call - 1], None),
        (None, None) => {
            // Concurrent or chaos findings replay with their seed, whole.
            let Some(run) = report
                .leaks
                .first()
                .map(|l| l.run.as_str())
                .or(report.divergences.first().map(|d| d.run.as_str()))
                .and_then(run_of)
            else {
                return Ok(None);
            };
            let variant = &variants[run.varied as usize];
            return Ok(Some(Reproduction {
                script: variant.script.clone(),
                run: run.label.clone(),
                from_calls: run.calls.len(),
                minimal: false,
                concurrency: run.concurrency,
            }));
        }
    };
    let Some(run) = run else { return Ok(None) };
    let variant = &variants[run.varied as usize];
    let sink = upto - 1;
    let positions: Vec<usize> = (0..upto).collect();
    let started = Instant::now();
    let varied = run.varied;
    let entry_of = |p: usize| run.calls[p].entry;
    let shows = async |candidate: &[usize]| -> bool {
        if started.elapsed() > plan.budget {
            return false;
        }
        let order: Vec<usize> = candidate.iter().map(|&p| entry_of(p)).collect();
        let Ok((calls, _)) =
            serial_run(reused, None, variant, order.into_iter(), |_, _| Next::Go).await
        else {
            return false;
        };
        let Some(at) = candidate.iter().position(|&p| p == sink) else {
            return false;
        };
        let Some(call) = calls.get(at) else {
            return false;
        };
        match &value {
            Some(value) => call
                .scanned()
                .iter()
                .any(|(_, text)| text.contains(value.as_str())),
            None => !baseline.matches(varied, call.entry, &call.answer),
        }
    };
    let (shrunk, minimal) = shrink(positions, |p| keep.contains(p), shows, 40).await;
    let entries: Vec<usize> = shrunk.iter().map(|&p| entry_of(p)).collect();
    Ok(Some(Reproduction {
        script: variant.script.pick(&entries),
        run: run.label.clone(),
        from_calls: upto,
        minimal,
        concurrency: 1,
    }))
}
