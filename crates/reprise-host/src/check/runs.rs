//! Driving the runs of a check, in process (no sockets: the check compares
//! the component's behaviour, not the network's).

use super::script::{Script, ScriptedCall, ScriptedRequest};
use super::shrink::shrink;
use super::vary::{
    CallData, Sent, Tokens, call_values, find_leaks, request_values, tokens_in, vary_call,
    vary_request,
};
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
use std::collections::{HashMap, HashSet};
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

/// Every call of the first fresh run failed (the component cannot be
/// instantiated, or fails whatever it is sent).
#[derive(Debug, thiserror::Error)]
#[error(
    "every call failed on a fresh instance, so there is nothing to compare reuse against; the \
     first answered: {0}"
)]
pub struct EveryFreshCallFailed(pub Answer);

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

/// One call a run makes: the script entry it stands for, as sent.
struct Step {
    entry: usize,
    call: Item,
    sent: Vec<Sent>,
}

enum Item {
    Request(ScriptedRequest),
    Call(ScriptedCall),
}

impl Variant {
    /// Entry `entry`, as sent.
    fn step(&self, entry: usize) -> Step {
        let call = match &self.script {
            Script::Http(requests) => Item::Request(requests[entry].clone()),
            Script::Calls(calls) => Item::Call(calls[entry].clone()),
        };
        Step {
            entry,
            call,
            sent: self.sent[entry].clone(),
        }
    }

    /// Its entries in `order`, as sent.
    fn steps(&self, order: impl IntoIterator<Item = usize>) -> impl Iterator<Item = Step> {
        order.into_iter().map(|entry| self.step(entry))
    }

    /// The entries at `picked`, as a variant of their own.
    fn pick(&self, picked: &[usize]) -> Variant {
        Variant {
            script: self.script.pick(picked),
            sent: picked.iter().map(|&e| self.sent[e].clone()).collect(),
        }
    }

    fn len(&self) -> usize {
        self.script.calls_per_run()
    }
}

/// Entry `index` of `script` with every value it sends replaced by a new
/// token: a call whose varied text no longer parses, or that has nothing to
/// vary, stays as written.
fn vary_entry(script: &Script, index: usize, tokens: &mut Tokens, fresh: &InstanceManager) -> Step {
    match script {
        Script::Http(requests) => {
            let (request, sent) = vary_request(&requests[index], tokens);
            Step {
                entry: index,
                call: Item::Request(request),
                sent,
            }
        }
        Script::Calls(calls) => {
            let call = &calls[index];
            let (text, sent) = vary_call(&call.text, tokens);
            let (component, engine) = (fresh.component(), &fresh.engine().engine);
            match parse_invocation(component, engine, &text) {
                Ok(invocation) if !sent.is_empty() => Step {
                    entry: index,
                    call: Item::Call(ScriptedCall { text, invocation }),
                    sent,
                },
                _ => Step {
                    entry: index,
                    call: Item::Call(call.clone()),
                    sent: call_values(&call.text),
                },
            }
        }
    }
}

/// The script as written, and varied: repeated `repeats` times, each
/// repetition with tokens of its own.
fn variants(script: &Script, seed: u64, repeats: usize, fresh: &InstanceManager) -> [Variant; 2] {
    let mut tokens = Tokens::new(seed);
    let plain = Variant {
        script: script.clone(),
        sent: match script {
            Script::Http(requests) => requests.iter().map(request_values).collect(),
            Script::Calls(calls) => calls.iter().map(|c| call_values(&c.text)).collect(),
        },
    };
    let n = script.calls_per_run();
    let steps: Vec<Step> = (0..n * repeats)
        .map(|i| vary_entry(script, i % n, &mut tokens, fresh))
        .collect();
    let sent = steps.iter().map(|s| s.sent.clone()).collect();
    let varied = match script {
        Script::Http(_) => Script::Http(
            steps
                .into_iter()
                .filter_map(|s| match s.call {
                    Item::Request(r) => Some(r),
                    Item::Call(_) => None,
                })
                .collect(),
        ),
        Script::Calls(_) => Script::Calls(
            steps
                .into_iter()
                .filter_map(|s| match s.call {
                    Item::Call(c) => Some(c),
                    Item::Request(_) => None,
                })
                .collect(),
        ),
    };
    [
        plain,
        Variant {
            script: varied,
            sent,
        },
    ]
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

/// Sends `steps` one after another.
async fn http_serial(
    front: &HttpFrontEnd,
    steps: impl Iterator<Item = Step>,
    mut next: impl AsyncFnMut(&Observed, usize) -> Next,
) -> (Vec<Observed>, Option<String>) {
    let mut calls = Vec::new();
    for (position, step) in steps.enumerate() {
        let Item::Request(request) = &step.call else {
            continue;
        };
        let mut observed = send(front, request, position).await;
        observed.entry = step.entry;
        observed.sent = step.sent;
        let decision = next(&observed, position + 1).await;
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
    // The first call goes alone until the instance has taken it: the
    // handler starts an instance for every call that finds none taking
    // calls yet, and the run is about calls interleaving on one.
    let (first_taken, taken) = tokio::sync::watch::channel(false);
    let first = order.first().copied();
    let calls = order.iter().map(|&entry| {
        let (permits, clock, first_taken) = (&permits, &clock, &first_taken);
        let mut taken = taken.clone();
        let (admit, read) = delays[entry];
        async move {
            tokio::time::sleep(Duration::from_micros(admit)).await;
            if Some(entry) != first {
                let _ = taken.wait_for(|taken| *taken).await;
            }
            let _permit = permits.acquire().await;
            let started = clock.fetch_add(1, Relaxed);
            let sent = send(front, &requests[entry], entry);
            let mut observed = match Some(entry) == first {
                true => {
                    let accepted = front.manager().metrics().calls.load(Relaxed);
                    let mut sent = std::pin::pin!(sent);
                    let observed = loop {
                        tokio::select! {
                            observed = &mut sent => break observed,
                            () = tokio::time::sleep(Duration::from_micros(200)) => {
                                if front.manager().metrics().calls.load(Relaxed) > accepted {
                                    let _ = first_taken.send(true);
                                }
                            }
                        }
                    };
                    let _ = first_taken.send(true);
                    observed
                }
                false => sent.await,
            };
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

/// Makes `steps` one after another on `manager`'s instances, as `reprise
/// call` would, under `chaos` when given; `script` names the functions
/// they call.
async fn calls_serial(
    manager: Arc<InstanceManager>,
    chaos: Option<Arc<Chaos>>,
    script: &Script,
    steps: impl Iterator<Item = Step>,
    mut next: impl AsyncFnMut(&Observed, usize) -> Next,
) -> anyhow::Result<(Vec<Observed>, Option<String>)> {
    let Script::Calls(calls) = script else {
        return Ok((Vec::new(), None));
    };
    // Each export a new instance binds once, however often the script calls
    // it; a call finds its function by name.
    let mut distinct: Vec<&ScriptedCall> = Vec::new();
    for call in calls {
        if !distinct
            .iter()
            .any(|d| d.invocation.name == call.invocation.name)
        {
            distinct.push(call);
        }
    }
    let names: Vec<&str> = distinct
        .iter()
        .map(|d| d.invocation.name.as_str())
        .collect();
    let binds: Vec<Bind<Func>> = distinct.iter().map(|call| call.invocation.bind()).collect();
    let bind: Bind<Vec<Func>> =
        Arc::new(move |store, instance| binds.iter().map(|bind| bind(store, instance)).collect());
    let options = SerialOptions { prewarm: 0, chaos };
    let mut serial = Serial::new(manager, bind, options);
    let mut observed = Vec::new();
    for (position, step) in steps.enumerate() {
        let Item::Call(call) = &step.call else {
            continue;
        };
        let slot = names
            .iter()
            .position(|name| *name == call.invocation.name)
            .unwrap_or_default();
        let served = serial
            .call(async |store, funcs| {
                let results = call.invocation.call(store, &funcs[slot]).await?;
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
        let mut call_observed = Observed::serial(position, step.entry, answer);
        call_observed.instance = Some(served.instance);
        call_observed.memory = memory;
        call_observed.request = call.text.clone();
        call_observed.sent = step.sent.clone();
        let decision = next(&call_observed, position + 1).await;
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

/// Runs `steps` serially on one manager (`chaos` optional); `script` is
/// the script they come from.
async fn serial_run(
    manager: &Arc<InstanceManager>,
    chaos: Option<Arc<Chaos>>,
    script: &Script,
    steps: impl Iterator<Item = Step>,
    next: impl AsyncFnMut(&Observed, usize) -> Next,
) -> anyhow::Result<(Vec<Observed>, Option<String>)> {
    match script {
        Script::Http(_) => {
            let routing = Routing {
                chaos,
                ..Routing::default()
            };
            let front = HttpFrontEnd::new(manager.clone(), routing, false, 0)?;
            Ok(http_serial(&front, steps, next).await)
        }
        Script::Calls(_) => calls_serial(manager.clone(), chaos, script, steps, next).await,
    }
}

/// Every call goes on.
fn go() -> impl AsyncFnMut(&Observed, usize) -> Next {
    async |_: &Observed, _: usize| Next::Go
}

/// The answers of `script` run once, serially, on `manager`: what
/// `reprise check` compares between a pre-initialization snapshot and
/// per-instance init (`runtime::preinit`).
pub async fn answers(
    manager: Arc<InstanceManager>,
    script: &Script,
    seed: u64,
) -> anyhow::Result<Vec<Answer>> {
    let [plain, _] = variants(script, seed, 1, &manager);
    let steps = plain.steps(0..plain.len());
    let (calls, _) = serial_run(&manager, None, script, steps, go()).await?;
    Ok(calls.into_iter().map(|call| call.answer).collect())
}

/// Fresh samples taken of a call before a reused answer that differs from
/// its fresh ones counts: two samples can agree by chance (two timestamps
/// within one second, one of a few random words).
const CONFIRMING_SAMPLES: usize = 4;

/// Times the long run confirms one entry before it stops there: a
/// timestamp can cross a minute, then an hour.
const LONG_CONFIRMATIONS: usize = 3;

/// [`CONFIRMING_SAMPLES`] more fresh answers to entry `entry` of
/// `variant`, each from a new instance, taken now: after the answer they
/// judge, so that a reading of the clock moved on.
async fn confirm(
    fresh: &Arc<InstanceManager>,
    variant: &Variant,
    varied: bool,
    entry: usize,
) -> anyhow::Result<Run> {
    let steps = variant.steps(std::iter::repeat_n(entry, CONFIRMING_SAMPLES));
    let (calls, _) = serial_run(fresh, None, &variant.script, steps, go()).await?;
    let label = format!(
        "fresh samples of call {}{}",
        entry + 1,
        if varied { ", varied" } else { "" }
    );
    Ok(Run::new(&label, RunKind::Fresh, varied, calls))
}

/// The (variant, entry) pairs of calls in non-fresh `runs` that answered
/// unlike the baseline, not in `confirmed`; a call whose answer holds
/// another call's data is a leak, not noise, and needs no more samples.
fn unconfirmed(
    runs: &[Run],
    baseline: &Baseline,
    confirmed: &HashSet<(bool, usize)>,
) -> Vec<(bool, usize)> {
    let leaks = judge(runs).leaks;
    let mut pending = Vec::new();
    for run in runs.iter().filter(|r| r.kind != RunKind::Fresh) {
        for (index, call) in run.calls.iter().enumerate() {
            let key = (run.varied, call.entry);
            let sink = leaks
                .iter()
                .any(|l| l.run == run.label && l.to_call == index + 1);
            if !confirmed.contains(&key)
                && !sink
                && !pending.contains(&key)
                && !baseline.matches(run.varied, call.entry, &run.comparable(index))
            {
                pending.push(key);
            }
        }
    }
    pending
}

/// A front end for one concurrent run (or one replay of it while
/// shrinking), its instance already up: on a manager of its own with room
/// for one instance, so that the run's calls interleave on that instance
/// (a cold start would spread them over an instance each), and the
/// instance of the run before (idle until its timeout) takes no slot from
/// it.
async fn concurrent_front(reused: &Arc<InstanceManager>) -> anyhow::Result<HttpFrontEnd> {
    let one = Arc::new(reused.single(Duration::from_millis(50)));
    let front = HttpFrontEnd::new(one, Routing::default(), false, 0)?;
    front.warm_up().await?;
    Ok(front)
}

/// Calls a concurrent run keeps in flight: `requested`, else the
/// instance's max concurrency.
fn concurrency(requested: Option<usize>, reused: &InstanceManager) -> usize {
    let max = match reused.policy() {
        crate::policy::Policy::Reuse(bounds) => bounds.max_concurrency.get() as usize,
        crate::policy::Policy::Fresh => 1,
    };
    requested.unwrap_or(max)
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
    let n = script.calls_per_run();
    let takes_concurrent_calls = flavor == Some(HttpFlavor::P3);
    let k = concurrency(plan.concurrency, &reused);
    // The varied script has at least two calls, so one call's tokens can
    // reach another's answer, and, where calls run concurrently, at least
    // K, so K can be in flight.
    let repeats = match takes_concurrent_calls && k >= 2 {
        true => k.div_ceil(n).max(2usize.div_ceil(n)),
        false => 2usize.div_ceil(n),
    };
    let variants = variants(script, plan.seed, repeats, &fresh);
    let mut runs = Vec::new();
    // The baselines: each variant fresh, twice.
    for (varied, variant) in variants.iter().enumerate() {
        for label in ["fresh", "fresh again"] {
            let label = match varied {
                1 => format!("{label}, varied"),
                _ => label.to_string(),
            };
            let steps = variant.steps(0..variant.len());
            let (calls, _) = serial_run(&fresh, None, &variant.script, steps, go()).await?;
            // Reuse is judged against fresh answers: without one that
            // succeeded there is nothing to judge, and the rest would only
            // repeat the failure a thousand times.
            if runs.is_empty()
                && calls.iter().all(|call| call.answer.failed())
                && let Some(first) = calls.first()
            {
                return Err(EveryFreshCallFailed(first.answer.clone()).into());
            }
            runs.push(Run::new(&label, RunKind::Fresh, varied == 1, calls));
        }
    }
    for (varied, variant) in variants.iter().enumerate() {
        let label = ["reuse", "reuse, varied"][varied];
        let steps = variant.steps(0..variant.len());
        let (calls, _) = serial_run(&reused, None, &variant.script, steps, go()).await?;
        runs.push(Run::new(label, RunKind::Reuse, varied == 1, calls));
    }
    let mut baseline = Baseline::from_runs(&runs);
    let mut confirmed = HashSet::new();
    let long = long_run(
        &fresh,
        &reused,
        script,
        &variants[1],
        plan,
        &runs,
        &mut baseline,
    )
    .await?;
    confirmed.extend(long.1.iter().map(|r| (true, r.calls[0].entry)));
    runs.push(long.0);
    runs.extend(long.1);
    // Concurrent runs, where the handler takes concurrent calls.
    if takes_concurrent_calls && k >= 2 {
        for i in 0..plan.concurrent_runs as u64 {
            let seed = plan.seed.wrapping_add(i);
            let front = concurrent_front(&reused).await?;
            let calls = http_concurrent(&front, &variants[1], k, seed).await;
            front.manager().close();
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
        let plain = &variants[0];
        let steps = plain.steps(0..plain.len());
        let (calls, _) =
            serial_run(&reused, Some(chaos(seed)?), &plain.script, steps, go()).await?;
        let mut run = Run::new(&label, RunKind::Chaos, false, calls);
        run.seed = Some(seed);
        runs.push(run);
    }
    // Before a difference counts, more fresh samples of that call.
    loop {
        let baseline = Baseline::from_runs(&runs);
        let pending = unconfirmed(&runs, &baseline, &confirmed);
        if pending.is_empty() {
            break;
        }
        for (varied, entry) in pending {
            confirmed.insert((varied, entry));
            runs.push(confirm(&fresh, &variants[varied as usize], varied, entry).await?);
        }
    }
    let baseline = Baseline::from_runs(&runs);
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

/// The long run: the script repeated on one instance, each repetition with
/// tokens of its own (the first: `varied`'s), until the first divergence
/// (confirmed with more fresh samples), the call or time budget,
/// or the leak budget. The run, and the fresh samples it took.
async fn long_run(
    fresh: &Arc<InstanceManager>,
    reused: &Arc<InstanceManager>,
    script: &Script,
    varied: &Variant,
    plan: &Plan,
    runs: &[Run],
    baseline: &mut Baseline,
) -> anyhow::Result<(Run, Vec<Run>)> {
    let started = Instant::now();
    let (n, nv) = (script.calls_per_run(), varied.len());
    let long_calls = plan.long_calls.max(nv);
    let mut tokens = Tokens::new(plan.seed.rotate_left(32) ^ 0x1095_ca11);
    let steps = (0..long_calls).map(|i| match i < nv {
        true => varied.step(i),
        false => Step {
            entry: i % nv,
            ..vary_entry(script, i % n, &mut tokens, fresh)
        },
    });
    let mut samples: Vec<Run> = Vec::new();
    let mut confirmations = vec![0; nv];
    // Each token sent so far, and the call (from 1) that sent it.
    let mut senders: HashMap<String, usize> = HashMap::new();
    let next = async |call: &Observed, count: usize| {
        for sent in &call.sent {
            senders.entry(sent.value.clone()).or_insert(count);
        }
        // Another call's token in the answer is a leak, judged with the
        // run, not noise to sample again; the run goes on.
        let leaked = call.scanned().iter().any(|(_, text)| {
            tokens_in(text).any(|token| senders.get(token).is_some_and(|&from| from != count))
        });
        let mut answer = call.answer.clone();
        for (own, reference) in call.sent.iter().zip(&varied.sent[call.entry]) {
            answer = answer.replaced(&own.value, &reference.value);
        }
        while !leaked && !baseline.matches(true, call.entry, &answer) {
            if confirmations[call.entry] == LONG_CONFIRMATIONS {
                return Next::Stop(None);
            }
            confirmations[call.entry] += 1;
            match confirm(fresh, varied, true, call.entry).await {
                Ok(run) => samples.push(run),
                Err(_) => return Next::Stop(None),
            }
            *baseline = Baseline::from_runs(&[runs, &samples[..]].concat());
        }
        if call.memory.is_some_and(|m| m > LEAK_BUDGET) {
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
    };
    let (calls, stopped) = serial_run(reused, None, &varied.script, steps, next).await?;
    let mut long = Run::new("long reuse", RunKind::Long, true, calls);
    long.stopped = stopped;
    Ok((long, samples))
}

/// Replays of a finding that shrinking may make, besides its time budget.
const SHRINK_REPLAYS: usize = 60;

/// The finding of `report` cut down to the fewest calls that show it on
/// one reused instance (and, for a concurrent finding, the fewest in
/// flight at once, with the same seed).
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
    let (run, upto, keep, value, breaks_at) = match (serial_leak, serial_divergence) {
        (Some(leak), _) => (
            run_of(&leak.run),
            leak.to_call.max(leak.from_call),
            vec![leak.from_call - 1, leak.to_call - 1],
            Some(leak.value.clone()),
            None,
        ),
        (None, Some(d)) => (
            run_of(&d.run),
            d.call,
            vec![d.call - 1],
            None,
            (d.failed && d.succeeded_before + 1 == d.call).then_some(d.call),
        ),
        (None, None) => {
            let Some(run) = report
                .leaks
                .first()
                .map(|l| l.run.as_str())
                .or(report.divergences.first().map(|d| d.run.as_str()))
                .and_then(run_of)
            else {
                return Ok(None);
            };
            if run.kind == RunKind::Concurrent {
                return reproduce_concurrent(reused, &variants[1], run, baseline, plan).await;
            }
            // Chaos findings replay with their seed, whole.
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
    let mut replays = 0;
    let shows = async |candidate: &[usize]| -> Option<bool> {
        if started.elapsed() > plan.budget || replays == SHRINK_REPLAYS {
            return None;
        }
        replays += 1;
        let order: Vec<usize> = candidate.iter().map(|&p| entry_of(p)).collect();
        let Ok((calls, _)) =
            serial_run(reused, None, &variant.script, variant.steps(order), go()).await
        else {
            return Some(false);
        };
        let at = candidate.iter().position(|&p| p == sink)?;
        let call = calls.get(at)?;
        Some(match &value {
            Some(value) => call
                .scanned()
                .iter()
                .any(|(_, text)| text.contains(value.as_str())),
            None => !baseline.matches(varied, call.entry, &call.answer),
        })
    };
    let (shrunk, finished) = shrink(positions, |p| keep.contains(p), shows).await;
    // A failure at call k after k-1 good ones needs k calls on one
    // instance: that many is as short as it gets.
    let minimal = finished || breaks_at == Some(shrunk.len());
    let entries: Vec<usize> = shrunk.iter().map(|&p| entry_of(p)).collect();
    Ok(Some(Reproduction {
        script: variant.script.pick(&entries),
        run: run.label.clone(),
        from_calls: upto,
        minimal,
        concurrency: 1,
    }))
}

/// Whether the calls of a concurrent replay of `picked` entries of
/// `varied` show a finding: an answer unlike its fresh one, or a leak.
fn concurrent_finding(calls: &[Observed], picked: &[usize], baseline: &Baseline) -> bool {
    let diverges = calls
        .iter()
        .zip(picked)
        .any(|(call, &entry)| !baseline.matches(true, entry, &call.answer));
    let data: Vec<CallData> = calls
        .iter()
        .zip(picked)
        .map(|(call, &entry)| CallData {
            sent: &call.sent,
            answer: call.scanned(),
            fresh: baseline.fresh_texts(true, entry),
        })
        .collect();
    diverges || !find_leaks("", &data).is_empty()
}

/// A concurrent finding shrunk: the fewest calls of `run` that still show
/// it replayed with the run's seed, then the fewest in flight at once.
async fn reproduce_concurrent(
    reused: &Arc<InstanceManager>,
    varied: &Variant,
    run: &Run,
    baseline: &Baseline,
    plan: &Plan,
) -> anyhow::Result<Option<Reproduction>> {
    let seed = run.seed.unwrap_or(plan.seed);
    let started = Instant::now();
    let mut replays = 0;
    let mut shows = async |picked: &[usize], k: usize| -> Option<bool> {
        if started.elapsed() > plan.budget || replays == SHRINK_REPLAYS {
            return None;
        }
        replays += 1;
        if picked.len() < 2 {
            return Some(false);
        }
        let front = concurrent_front(reused).await.ok()?;
        let calls = http_concurrent(&front, &varied.pick(picked), k, seed).await;
        front.manager().close();
        Some(concurrent_finding(&calls, picked, baseline))
    };
    let k = run.concurrency;
    let entries: Vec<usize> = run.calls.iter().map(|c| c.entry).collect();
    let (picked, mut minimal) = shrink(
        entries,
        |_| false,
        async |p: &[usize]| shows(p, k.min(p.len())).await,
    )
    .await;
    let mut least = k.min(picked.len());
    for fewer in 2..least {
        match shows(&picked, fewer).await {
            Some(true) => {
                least = fewer;
                break;
            }
            Some(false) => {}
            None => {
                minimal = false;
                break;
            }
        }
    }
    Ok(Some(Reproduction {
        script: varied.script.pick(&picked),
        run: run.label.clone(),
        from_calls: run.calls.len(),
        minimal,
        concurrency: least,
    }))
}
