//! `reprise check`: the differential reuse report.
//!
//! One script (HTTP requests, or calls of exported functions) runs against
//! the component fresh (the baseline: what every host must agree on),
//! reused, and under chaos with several seeds. A component is portable
//! across hosts only if every run answers like the baseline. Judging is a
//! pure function of the observed runs ([`judge`]), tested without wasm.

use crate::chaos::{Chaos, ChaosConfig};
use crate::guest_output::Printed;
use crate::http::{HttpFrontEnd, Routing};
use crate::invoke::{Invocation, parse_invocation};
use crate::manager::InstanceManager;
use crate::serial::{Bind, Serial, SerialOptions};
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use wasmtime::Engine;
use wasmtime::component::{Component, Func};

/// What a check sends, in order.
#[derive(Debug)]
pub enum Script {
    /// Requests to the component's wasi:http handler.
    Http(Vec<ScriptedRequest>),
    /// Calls of its exported functions.
    Calls(Vec<Invocation>),
}

impl Script {
    /// Parses a script file: HTTP requests when its first entry is one
    /// (`METHOD /PATH`), otherwise calls in WAVE (`name(args)`), one per
    /// line, checked against `component`'s exports.
    pub fn parse(text: &str, component: &Component, engine: &Engine) -> Result<Script, String> {
        if Script::sends_requests(text) {
            return parse_script(text).map(Script::Http);
        }
        let calls = entries(text)
            .map(|(number, line)| {
                parse_invocation(component, engine, line)
                    .map_err(|e| format!("script line {number}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if calls.is_empty() {
            return Err("the script has no calls".to_string());
        }
        Ok(Script::Calls(calls))
    }

    /// Whether the script `text` holds HTTP requests rather than calls.
    pub fn sends_requests(text: &str) -> bool {
        entries(text)
            .next()
            .is_some_and(|(_, line)| is_request(line))
    }

    /// `call` (`name(args)` in WAVE), made `times` times.
    pub fn repeated_call(
        call: &str,
        times: usize,
        component: &Component,
        engine: &Engine,
    ) -> Result<Script, String> {
        let invocation = parse_invocation(component, engine, call).map_err(|e| e.to_string())?;
        Ok(Script::Calls(vec![invocation; times]))
    }

    /// Calls the script makes per run.
    pub fn calls_per_run(&self) -> usize {
        match self {
            Script::Http(requests) => requests.len(),
            Script::Calls(calls) => calls.len(),
        }
    }
}

/// Whether a script line is an HTTP request (`METHOD /PATH ...`) rather
/// than a call (`name(args)`, whose name always comes with its `(`).
fn is_request(line: &str) -> bool {
    line.split_once(' ').is_some_and(|(method, rest)| {
        !method.is_empty()
            && method.bytes().all(|b| b.is_ascii_alphabetic())
            && rest.starts_with('/')
    })
}

/// The lines of a script that say something, numbered from 1: blank lines
/// and `#` comments are skipped.
fn entries(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim_end()))
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
}

/// One request of a check script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptedRequest {
    pub method: Method,
    pub path: String,
    pub body: Bytes,
}

/// Calls per run when one call is repeated (`--call`), as many as the
/// default script makes.
pub const DEFAULT_CALLS: usize = 12;

/// The script used when none is given: plain GETs of `/`, enough calls for
/// state carried between calls, and chaos's re-instantiations, to show.
pub const DEFAULT_SCRIPT: &str = "# reprise check's default script\n\
    GET /\nGET /\nGET /\nGET /\nGET /\nGET /\nGET /\nGET /\nGET /\nGET /\nGET /\nGET /\n";

/// Parses a script of HTTP requests: one per line, `METHOD PATH [BODY]`;
/// the body is the rest of the line, sent as is. Blank lines and `#`
/// comments are skipped.
pub fn parse_script(text: &str) -> Result<Vec<ScriptedRequest>, String> {
    let mut requests = Vec::new();
    for (number, line) in entries(text) {
        let mut parts = line.splitn(3, ' ');
        let method = parts.next().unwrap_or_default();
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("script line {number}: `{method}` is not an HTTP method"))?;
        let path = parts.next().unwrap_or_default();
        if !path.starts_with('/') {
            return Err(format!(
                "script line {number}: expected `METHOD /PATH [BODY]`, got `{line}`"
            ));
        }
        requests.push(ScriptedRequest {
            method,
            path: path.to_string(),
            body: Bytes::copy_from_slice(parts.next().unwrap_or_default().as_bytes()),
        });
    }
    if requests.is_empty() {
        return Err("the script has no requests".to_string());
    }
    Ok(requests)
}

/// What one call answered, reduced to what must agree across runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP response's status, content type and body. Headers such as
    /// `date` differ legitimately and are left out.
    Http {
        status: u16,
        content_type: Option<String>,
        body: Bytes,
    },
    /// A function call's results in WAVE, or how the call failed, and
    /// what it printed on stdout.
    Call {
        result: Result<String, String>,
        printed: String,
    },
}

impl Answer {
    /// Whether the call failed: a 5xx, or a trap.
    pub fn failed(&self) -> bool {
        match self {
            Answer::Http { status, .. } => *status >= 500,
            Answer::Call { result, .. } => result.is_err(),
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Http { status, body, .. } => {
                write!(
                    f,
                    "{status} {:?}",
                    shortened(&String::from_utf8_lossy(body))
                )
            }
            Answer::Call { result, printed } => {
                match result {
                    Ok(results) => f.write_str(results)?,
                    Err(failure) => write!(f, "failed: {failure}")?,
                }
                if !printed.is_empty() {
                    write!(f, ", printing {:?}", shortened(printed))?;
                }
                Ok(())
            }
        }
    }
}

/// At most 120 characters of `text`, with `…` when there were more.
fn shortened(text: &str) -> String {
    let mut shown: String = text.chars().take(120).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown
}

/// One call as observed: its answer, and the linear memory of the instance
/// that served it, after the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub answer: Answer,
    pub instance: Option<u64>,
    pub memory: Option<u64>,
}

/// The calls of one run of the script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// `fresh`, `reuse`, or `chaos seed N`.
    pub label: String,
    pub calls: Vec<Observed>,
}

/// Pause between two calls of a script.
const CALL_GAP: std::time::Duration = std::time::Duration::from_millis(5);

/// Runs `script` serially through `front`, in process (no sockets: the
/// check compares the component's behaviour, not the network's).
async fn run_requests(label: String, front: &HttpFrontEnd, script: &[ScriptedRequest]) -> Run {
    let mut calls = Vec::with_capacity(script.len());
    for request in script {
        // Like a real serial client, leave the serving instance a moment to
        // finish its call (a p2 guest runs on after sending its response);
        // otherwise an instance still busy would never be seen reused.
        tokio::time::sleep(CALL_GAP).await;
        let body = Full::new(request.body.clone())
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::builder()
            .method(request.method.clone())
            .uri(format!("http://localhost{}", request.path))
            .header(http::header::HOST, "localhost")
            .body(body)
            .expect("script requests are valid");
        let served = front.call(request).await;
        let (parts, body) = served.response.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => Bytes::from(format!("<body failed: {e}>")),
        };
        calls.push(Observed {
            answer: Answer::Http {
                status: parts.status.as_u16(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                body,
            },
            instance: served.instance,
            memory: served.memory,
        });
    }
    Run { label, calls }
}

/// Runs `calls` one after another on `manager`'s instances, as `reprise
/// call` would, under `chaos` when given.
async fn run_calls(
    label: String,
    manager: Arc<InstanceManager>,
    chaos: Option<Arc<Chaos>>,
    calls: &[Invocation],
) -> anyhow::Result<Run> {
    // Each export a new instance binds once, however often the script calls
    // it; `slot[i]` is where call `i` finds its function.
    let mut distinct: Vec<&Invocation> = Vec::new();
    let slot: Vec<usize> = calls
        .iter()
        .map(
            |call| match distinct.iter().position(|d| d.name == call.name) {
                Some(index) => index,
                None => {
                    distinct.push(call);
                    distinct.len() - 1
                }
            },
        )
        .collect();
    let binds: Vec<Bind<Func>> = distinct.iter().map(|call| call.bind()).collect();
    let bind: Bind<Vec<Func>> =
        Arc::new(move |store, instance| binds.iter().map(|bind| bind(store, instance)).collect());
    let options = SerialOptions { prewarm: 0, chaos };
    let mut serial = Serial::new(manager, bind, options);
    let mut observed = Vec::with_capacity(calls.len());
    for (position, call) in calls.iter().enumerate() {
        let served = serial
            .call(async |store, funcs| {
                let results = call.call(store, &funcs[slot[position]]).await?;
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
                    result: Err(failure.summary()),
                    printed: String::new(),
                },
                None,
            ),
        };
        observed.push(Observed {
            answer,
            instance: Some(served.instance),
            memory,
        });
    }
    serial.finish().await;
    Ok(Run {
        label,
        calls: observed,
    })
}

/// The runs a check makes: fresh, reused, and chaos with each of `seeds`.
pub async fn run_all(
    fresh: Arc<InstanceManager>,
    reused: Arc<InstanceManager>,
    seeds: &[u64],
    script: &Script,
) -> anyhow::Result<Vec<Run>> {
    let chaos = |seed| {
        ChaosConfig::new(None, Some(seed), false)
            .map(|config| Arc::new(Chaos::new(config)))
            .map_err(anyhow::Error::msg)
    };
    let mut runs = Vec::new();
    match script {
        Script::Http(requests) => {
            let front = HttpFrontEnd::new(fresh.clone(), Routing::default(), false, 0)?;
            runs.push(run_requests("fresh".into(), &front, requests).await);
            let front = HttpFrontEnd::new(reused.clone(), Routing::default(), false, 0)?;
            runs.push(run_requests("reuse".into(), &front, requests).await);
            for &seed in seeds {
                let routing = Routing {
                    chaos: Some(chaos(seed)?),
                    ..Routing::default()
                };
                let front = HttpFrontEnd::new(reused.clone(), routing, false, 0)?;
                runs.push(run_requests(format!("chaos seed {seed}"), &front, requests).await);
            }
        }
        Script::Calls(calls) => {
            runs.push(run_calls("fresh".into(), fresh.clone(), None, calls).await?);
            runs.push(run_calls("reuse".into(), reused.clone(), None, calls).await?);
            for &seed in seeds {
                let label = format!("chaos seed {seed}");
                runs.push(run_calls(label, reused.clone(), Some(chaos(seed)?), calls).await?);
            }
        }
    }
    fresh.close();
    reused.close();
    Ok(runs)
}

/// How the component fares when its instances are reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every run answered like the fresh baseline.
    ReuseSafe,
    /// Reuse changes successful answers: the component keeps state between
    /// calls and is correct only when reused (and only as reused).
    DependsOnReuse,
    /// Reuse turns successful answers into failures.
    BreaksUnderReuse,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::ReuseSafe => "reuse-safe",
            Verdict::DependsOnReuse => "depends on reuse",
            Verdict::BreaksUnderReuse => "breaks under reuse",
        }
    }
}

/// The first call where a run answered differently from the baseline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// 1-based position in the script.
    pub call: usize,
    pub run: String,
    pub expected: Answer,
    pub actual: Answer,
}

/// Linear memory growth while one instance served consecutive calls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryTrend {
    /// Calls the instance served in a row.
    pub calls: usize,
    /// Average growth per call, in bytes.
    pub bytes_per_call: f64,
    /// Whether it still grew in the second half of those calls: a steady
    /// leak, not a one-off warm-up allocation.
    pub still_growing: bool,
}

/// Memory that a leaking instance may reach before `reprise check`'s
/// recommended `max-calls` retires it.
pub const LEAK_BUDGET: u64 = 64 << 20;

/// The check's conclusion.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub verdict: Verdict,
    pub divergence: Option<Divergence>,
    pub memory: Option<MemoryTrend>,
    /// The hint the component should declare, in canonical form.
    pub recommended_hint: String,
}

/// Compares every run with the first (fresh) one and concludes.
pub fn judge(runs: &[Run]) -> Report {
    let (baseline, others) = runs.split_first().expect("at least the fresh run");
    let mut divergence = None;
    let mut breaks = false;
    for run in others {
        for (index, (expected, actual)) in baseline.calls.iter().zip(&run.calls).enumerate() {
            if expected.answer == actual.answer {
                continue;
            }
            let failed = actual.answer.failed() && !expected.answer.failed();
            breaks |= failed;
            let earlier = divergence
                .as_ref()
                .is_none_or(|d: &Divergence| index + 1 < d.call);
            if earlier {
                divergence = Some(Divergence {
                    call: index + 1,
                    run: run.label.clone(),
                    expected: expected.answer.clone(),
                    actual: actual.answer.clone(),
                });
            }
        }
    }
    let memory = others
        .iter()
        .find(|run| run.label == "reuse")
        .and_then(memory_trend);
    let verdict = match (&divergence, breaks) {
        (None, _) => Verdict::ReuseSafe,
        (Some(_), true) => Verdict::BreaksUnderReuse,
        (Some(_), false) => Verdict::DependsOnReuse,
    };
    let recommended_hint = match verdict {
        Verdict::ReuseSafe => match memory.filter(|m| m.still_growing && m.bytes_per_call > 0.0) {
            Some(leak) => {
                let calls = (LEAK_BUDGET as f64 / leak.bytes_per_call).floor().max(1.0);
                format!("v1 reuse max-calls={calls}")
            }
            None => "v1 reuse".to_string(),
        },
        Verdict::DependsOnReuse | Verdict::BreaksUnderReuse => "v1 fresh".to_string(),
    };
    Report {
        verdict,
        divergence,
        memory,
        recommended_hint,
    }
}

/// The growth over the longest streak of calls served by one instance.
fn memory_trend(run: &Run) -> Option<MemoryTrend> {
    let mut best: &[Observed] = &[];
    let mut start = 0;
    for end in 1..=run.calls.len() {
        let streak_ends =
            end == run.calls.len() || run.calls[end].instance != run.calls[start].instance;
        if streak_ends {
            if end - start > best.len() {
                best = &run.calls[start..end];
            }
            start = end;
        }
    }
    let memory: Vec<u64> = best.iter().map(|c| c.memory).collect::<Option<_>>()?;
    if memory.len() < 3 {
        return None;
    }
    let first = memory[0];
    let last = *memory.last()?;
    let middle = memory[memory.len() / 2];
    Some(MemoryTrend {
        calls: memory.len(),
        bytes_per_call: last.saturating_sub(first) as f64 / (memory.len() - 1) as f64,
        still_growing: last > middle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer::Http {
            status,
            content_type: Some("text/plain".into()),
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    fn run(label: &str, calls: &[(u16, &str, u64, u64)]) -> Run {
        Run {
            label: label.into(),
            calls: calls
                .iter()
                .map(|&(status, body, instance, memory)| Observed {
                    answer: answer(status, body),
                    instance: Some(instance),
                    memory: Some(memory),
                })
                .collect(),
        }
    }

    #[test]
    fn scripts_parse_methods_paths_and_bodies() {
        let script = parse_script("# comment\nGET /\n\nPOST /echo hello world\n").unwrap();
        assert_eq!(script.len(), 2);
        assert_eq!(script[1].method, Method::POST);
        assert_eq!(script[1].path, "/echo");
        assert_eq!(script[1].body, Bytes::from_static(b"hello world"));
        assert!(parse_script("GET nowhere").unwrap_err().contains("line 1"));
        assert!(
            parse_script("G@T /")
                .unwrap_err()
                .contains("not an HTTP method")
        );
        assert!(
            parse_script("# nothing\n")
                .unwrap_err()
                .contains("no requests")
        );
        assert!(parse_script(DEFAULT_SCRIPT).unwrap().len() >= 10);
    }

    #[test]
    fn script_lines_are_requests_or_calls() {
        assert!(is_request("GET /"));
        assert!(is_request("POST /echo some body"));
        assert!(!is_request("counter()"));
        assert!(!is_request("greet(\"a /b\")"));
        assert!(!is_request("f (1)"));
        assert!(!is_request("GET nowhere"));
    }

    #[test]
    fn a_call_that_traps_only_when_reused_breaks() {
        let call = |result: Result<&str, &str>, instance| Observed {
            answer: Answer::Call {
                result: result.map(str::to_string).map_err(str::to_string),
                printed: String::new(),
            },
            instance: Some(instance),
            memory: None,
        };
        let fresh = Run {
            label: "fresh".into(),
            calls: vec![call(Ok("()"), 1), call(Ok("()"), 2)],
        };
        let reuse = Run {
            label: "reuse".into(),
            calls: vec![call(Ok("()"), 1), call(Err("wasm trap"), 1)],
        };
        let report = judge(&[fresh, reuse]);
        assert_eq!(report.verdict, Verdict::BreaksUnderReuse);
        assert_eq!(
            report.divergence.unwrap().actual.to_string(),
            "failed: wasm trap"
        );
    }

    #[test]
    fn identical_runs_are_reuse_safe() {
        let fresh = run("fresh", &[(200, "hi", 1, 65536), (200, "hi", 2, 65536)]);
        let reuse = run("reuse", &[(200, "hi", 1, 65536), (200, "hi", 1, 65536)]);
        let report = judge(&[fresh, reuse]);
        assert_eq!(report.verdict, Verdict::ReuseSafe);
        assert_eq!(report.divergence, None);
        assert_eq!(report.recommended_hint, "v1 reuse");
    }

    #[test]
    fn changed_successful_answers_depend_on_reuse() {
        let fresh = run(
            "fresh",
            &[(200, "1", 1, 0), (200, "1", 2, 0), (200, "1", 3, 0)],
        );
        let reuse = run(
            "reuse",
            &[(200, "1", 1, 0), (200, "2", 1, 0), (200, "3", 1, 0)],
        );
        let report = judge(&[fresh, reuse]);
        assert_eq!(report.verdict, Verdict::DependsOnReuse);
        let divergence = report.divergence.unwrap();
        assert_eq!(divergence.call, 2);
        assert_eq!(divergence.run, "reuse");
        assert_eq!(divergence.actual, answer(200, "2"));
    }

    #[test]
    fn failures_under_reuse_break() {
        let fresh = run("fresh", &[(200, "ok", 1, 0), (200, "ok", 2, 0)]);
        let reuse = run("reuse", &[(200, "ok", 1, 0), (200, "ok", 1, 0)]);
        let chaos = run("chaos seed 3", &[(200, "ok", 1, 0), (500, "failed", 1, 0)]);
        let report = judge(&[fresh, reuse, chaos]);
        assert_eq!(report.verdict, Verdict::BreaksUnderReuse);
        assert_eq!(report.divergence.unwrap().run, "chaos seed 3");
        assert_eq!(report.recommended_hint, "v1 fresh");
    }

    #[test]
    fn the_earliest_divergence_is_reported() {
        let fresh = run(
            "fresh",
            &[(200, "a", 1, 0), (200, "a", 2, 0), (200, "a", 3, 0)],
        );
        let reuse = run(
            "reuse",
            &[(200, "a", 1, 0), (200, "a", 1, 0), (200, "b", 1, 0)],
        );
        let chaos = run(
            "chaos seed 1",
            &[(200, "a", 1, 0), (200, "c", 1, 0), (200, "a", 1, 0)],
        );
        let divergence = judge(&[fresh, reuse, chaos]).divergence.unwrap();
        assert_eq!(
            (divergence.call, divergence.run.as_str()),
            (2, "chaos seed 1")
        );
    }

    #[test]
    fn a_steady_leak_is_measured_and_bounded() {
        let page = 65536;
        let fresh = run("fresh", &[(200, "ok", 1, page); 5]);
        let calls: Vec<(u16, &str, u64, u64)> = (0..5)
            .map(|i| (200, "ok", 1, page + i * 4 * page))
            .collect();
        let reuse = run("reuse", &calls);
        let report = judge(&[fresh, reuse]);
        assert_eq!(report.verdict, Verdict::ReuseSafe);
        let memory = report.memory.unwrap();
        assert_eq!(memory.calls, 5);
        assert_eq!(memory.bytes_per_call, (4 * page) as f64);
        assert!(memory.still_growing);
        assert_eq!(report.recommended_hint, "v1 reuse max-calls=256");
    }

    #[test]
    fn one_off_growth_is_not_a_leak() {
        let fresh = run("fresh", &[(200, "ok", 1, 0); 6]);
        let mut calls = vec![(200, "ok", 1, 131072); 6];
        calls[0].3 = 65536;
        let report = judge(&[fresh, run("reuse", &calls)]);
        assert!(!report.memory.unwrap().still_growing);
        assert_eq!(report.recommended_hint, "v1 reuse");
    }
}
