//! `reprise check`: the differential reuse report.
//!
//! One script (HTTP requests, or calls of exported functions) runs against
//! the component fresh, twice (the baseline: what every host must agree
//! on, and the noise between two fresh instances), reused, reused with
//! every value varied to a token unique to its call, reused for a long
//! run, concurrently on one instance (p3), and under chaos with several
//! seeds. A component is portable across hosts only if every run answers
//! like the baseline, beyond noise, and no call's data reaches another
//! call's answer. Judging is a pure function of the observed runs
//! ([`judge`]), tested without wasm; [`runs`] drives the runs, and
//! [`shrink`] cuts a finding down to the fewest calls that show it.

pub mod html;
pub mod junit;
pub mod noise;
pub mod runs;
pub mod script;
pub mod shrink;
pub mod vary;

pub use noise::Pattern;
pub use runs::{Outcome, Plan, Reproduction, check};
pub use script::{
    DEFAULT_CALLS, DEFAULT_SCRIPT, Script, ScriptedCall, ScriptedRequest, is_http_file,
    parse_http_file, parse_script,
};
pub use vary::{Leak, Sent};

use bytes::Bytes;

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

    /// The answer's parts, each compared on its own: (name, text).
    pub fn parts(&self) -> Vec<(&'static str, String)> {
        match self {
            Answer::Http {
                status,
                content_type,
                body,
            } => vec![
                ("status", status.to_string()),
                ("content type", content_type.clone().unwrap_or_default()),
                ("body", String::from_utf8_lossy(body).into_owned()),
            ],
            Answer::Call { result, printed } => vec![
                (
                    "outcome",
                    if result.is_ok() { "ok" } else { "failed" }.to_string(),
                ),
                (
                    "result",
                    match result {
                        Ok(r) | Err(r) => r.clone(),
                    },
                ),
                ("stdout", printed.clone()),
            ],
        }
    }
}

impl Answer {
    /// The answer with every `from` in its text replaced by `to`.
    fn replaced(&self, from: &str, to: &str) -> Answer {
        match self {
            Answer::Http {
                status,
                content_type,
                body,
            } => Answer::Http {
                status: *status,
                content_type: content_type.as_ref().map(|c| c.replace(from, to)),
                body: match std::str::from_utf8(body) {
                    Ok(text) => Bytes::from(text.replace(from, to)),
                    Err(_) => body.clone(),
                },
            },
            Answer::Call { result, printed } => Answer::Call {
                result: match result {
                    Ok(r) => Ok(r.replace(from, to)),
                    Err(r) => Err(r.replace(from, to)),
                },
                printed: printed.replace(from, to),
            },
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

/// One call as observed, with everything a report (or a timeline
/// picture) shows of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub answer: Answer,
    /// The instance that served it (numbered per manager from 1).
    pub instance: Option<u64>,
    /// Linear memory of that instance after the call.
    pub memory: Option<u64>,
    /// 0-based index of the script entry this call made.
    pub entry: usize,
    /// The call as sent, in one line (`GET /?q=rpr...`, `greet("bob")`).
    pub request: String,
    /// The values it sent that leak detection looks for.
    pub sent: Vec<Sent>,
    /// Response headers (HTTP; `date` left out).
    pub headers: Vec<(String, String)>,
    /// Order of its start and of its end among all the run's starts and
    /// ends (0, 1, 2, ...): calls overlap when each started before the
    /// other ended.
    pub started: u64,
    pub ended: u64,
}

impl Observed {
    /// A serial call's observation, `position` in its run.
    pub fn serial(position: usize, entry: usize, answer: Answer) -> Self {
        Observed {
            answer,
            instance: None,
            memory: None,
            entry,
            request: String::new(),
            sent: Vec::new(),
            headers: Vec::new(),
            started: 2 * position as u64,
            ended: 2 * position as u64 + 1,
        }
    }

    /// The answer's parts and headers as leak detection scans them.
    fn scanned(&self) -> Vec<(String, String)> {
        let mut parts: Vec<(String, String)> = self
            .answer
            .parts()
            .into_iter()
            .filter(|(name, _)| matches!(*name, "body" | "result" | "stdout"))
            .map(|(name, text)| (name.to_string(), text))
            .collect();
        parts.extend(
            self.headers
                .iter()
                .filter(|(name, _)| name != "date")
                .map(|(name, value)| (format!("header {name}"), value.clone())),
        );
        parts
    }
}

/// Which kind of run: what it is compared against, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// Every call on a new instance: the baseline.
    Fresh,
    /// The script once, on one reused instance.
    Reuse,
    /// The script repeated on one reused instance.
    Long,
    /// The script's calls several at a time on one reused instance.
    Concurrent,
    /// Under chaos (random re-instantiation, several instances, perturbed
    /// I/O).
    Chaos,
}

/// The calls of one run of the script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// `fresh`, `fresh again`, `reuse`, `reuse, varied`, `long reuse`,
    /// `concurrent seed N`, `chaos seed N`.
    pub label: String,
    pub kind: RunKind,
    /// Whether it ran the varied script (values replaced by tokens).
    pub varied: bool,
    /// The seed of its randomness, if any.
    pub seed: Option<u64>,
    /// Calls at most in flight at once.
    pub concurrency: usize,
    pub calls: Vec<Observed>,
    /// Why it stopped before its planned calls, if it did.
    pub stopped: Option<String>,
}

impl Run {
    /// A serial run of `kind` with `calls`.
    pub fn new(label: &str, kind: RunKind, varied: bool, calls: Vec<Observed>) -> Self {
        Run {
            label: label.to_string(),
            kind,
            varied,
            seed: None,
            concurrency: 1,
            calls,
            stopped: None,
        }
    }

    /// The values call `index` sent paired with those its script entry
    /// sent in the run's first repetition, where they differ: a long run
    /// sends each repetition its own tokens, and the baseline knows only
    /// the first repetition's.
    fn retokened(&self, index: usize) -> Vec<(&str, &str)> {
        let call = &self.calls[index];
        match (self.kind, self.calls.get(call.entry)) {
            (RunKind::Long, Some(first)) if first.entry == call.entry => call
                .sent
                .iter()
                .zip(&first.sent)
                .filter(|(own, reference)| own.value != reference.value)
                .map(|(own, reference)| (own.value.as_str(), reference.value.as_str()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Call `index`'s answer as the baseline can judge it: its own tokens
    /// replaced by those of the first repetition.
    fn comparable(&self, index: usize) -> Answer {
        let mut answer = self.calls[index].answer.clone();
        for (own, reference) in self.retokened(index) {
            answer = answer.replaced(own, reference);
        }
        answer
    }

    /// The 1-based calls that were in flight together with call `index`.
    pub fn in_flight_with(&self, index: usize) -> Vec<usize> {
        let Some(call) = self.calls.get(index) else {
            return Vec::new();
        };
        (0..self.calls.len())
            .filter(|&other| other != index)
            .filter(|&other| {
                let o = &self.calls[other];
                o.started < call.ended && call.started < o.ended
            })
            .map(|other| other + 1)
            .collect()
    }
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
    /// One call's data reaches another call's answer.
    LeaksBetweenCalls,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::ReuseSafe => "reuse-safe",
            Verdict::DependsOnReuse => "depends on reuse",
            Verdict::BreaksUnderReuse => "breaks under reuse",
            Verdict::LeaksBetweenCalls => "leaks between calls",
        }
    }
}

/// The first call where a run answered differently from the baseline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// 1-based position in the run.
    pub call: usize,
    /// 1-based script entry that call made.
    pub entry: usize,
    pub run: String,
    pub kind: RunKind,
    pub expected: Answer,
    pub actual: Answer,
    /// Whether it failed where fresh instances succeed.
    pub failed: bool,
    /// Calls of the same instance, right before it, that answered like
    /// the baseline.
    pub succeeded_before: usize,
    /// 1-based calls that were in flight with it (concurrent runs).
    pub in_flight_with: Vec<usize>,
}

/// Linear memory growth while one instance served consecutive calls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryTrend {
    /// Calls the instance served in a row.
    pub calls: usize,
    /// Average growth per call, in bytes.
    pub bytes_per_call: f64,
    /// The instance's linear memory after the first of those calls, bytes.
    pub start: u64,
    /// Whether it still grew in the second half of those calls: a steady
    /// leak, not a one-off warm-up allocation.
    pub still_growing: bool,
}

/// Memory that a leaking instance may reach before `reprise check`'s
/// recommended `max-calls` retires it.
pub const LEAK_BUDGET: u64 = 64 << 20;

/// What fresh instances answer to each script entry, beyond noise.
#[derive(Clone, Debug, Default)]
pub struct Baseline {
    /// For the script as written (`[0]`) and varied (`[1]`): per entry,
    /// every fresh sample and each part's pattern.
    entries: [Vec<EntryBaseline>; 2],
}

#[derive(Clone, Debug)]
struct EntryBaseline {
    /// The first fresh answer, shown as what was expected.
    answer: Answer,
    /// Every fresh sample's parts, in the order of [`Answer::parts`].
    samples: Vec<Vec<String>>,
    /// Every fresh sample, all parts and headers joined.
    fresh_texts: Vec<String>,
    /// What all samples of each part agree on.
    parts: Vec<(&'static str, Pattern)>,
}

impl Baseline {
    /// The baseline the fresh runs among `runs` set: every fresh call of
    /// an entry is one sample of its answer, whichever run made it.
    pub fn from_runs(runs: &[Run]) -> Self {
        let mut baseline = Baseline::default();
        for varied in [false, true] {
            let mut calls: Vec<Vec<&Observed>> = Vec::new();
            for run in runs
                .iter()
                .filter(|r| r.kind == RunKind::Fresh && r.varied == varied)
            {
                for call in &run.calls {
                    if calls.len() <= call.entry {
                        calls.resize_with(call.entry + 1, Vec::new);
                    }
                    calls[call.entry].push(call);
                }
            }
            if !varied {
                calls = pooled_by_request(&calls);
            }
            baseline.entries[varied as usize] = calls
                .iter()
                .map_while(|samples| EntryBaseline::of(samples))
                .collect();
        }
        baseline
    }

    fn entry(&self, varied: bool, entry: usize) -> Option<&EntryBaseline> {
        self.entries[varied as usize].get(entry)
    }

    /// Fresh samples of script entry `entry`.
    pub fn samples(&self, varied: bool, entry: usize) -> usize {
        self.entry(varied, entry).map_or(0, |e| e.samples.len())
    }

    /// Whether `answer` to script entry `entry` matches what fresh
    /// instances answered, beyond noise (true when there is no baseline):
    /// each part equal to that part of some fresh sample, or matching what
    /// all samples agree on.
    pub fn matches(&self, varied: bool, entry: usize, answer: &Answer) -> bool {
        let Some(base) = self.entry(varied, entry) else {
            return true;
        };
        answer.parts().iter().zip(&base.parts).enumerate().all(
            |(index, ((_, text), (_, pattern)))| {
                base.samples.iter().any(|s| s[index] == *text) || pattern.matches(text)
            },
        )
    }

    /// Every fresh sample of `entry`, all parts and headers joined.
    pub fn fresh_texts(&self, varied: bool, entry: usize) -> Vec<String> {
        self.entry(varied, entry)
            .map(|e| e.fresh_texts.clone())
            .unwrap_or_default()
    }

    /// The fresh answer to `entry`.
    pub fn answer(&self, varied: bool, entry: usize) -> Option<&Answer> {
        self.entry(varied, entry).map(|e| &e.answer)
    }

    /// What was masked: `body of calls 1-12 (differs between fresh
    /// instances)`, one line per part (and variant).
    pub fn masked(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (varied, entries) in self.entries.iter().enumerate() {
            let mut by_part: Vec<(&str, Vec<usize>)> = Vec::new();
            for (index, entry) in entries.iter().enumerate() {
                for (name, pattern) in &entry.parts {
                    if !pattern.is_masked() {
                        continue;
                    }
                    match by_part.iter_mut().find(|(n, _)| n == name) {
                        Some((_, calls)) => calls.push(index + 1),
                        None => by_part.push((name, vec![index + 1])),
                    }
                }
            }
            for (name, calls) in by_part {
                let variant = if varied == 1 { ", varied" } else { "" };
                let example = entries[calls[0] - 1]
                    .parts
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, p)| shortened(&p.to_string()))
                    .unwrap_or_default();
                lines.push(format!(
                    "{name} of calls {}{variant} (differs between fresh instances): {example:?}",
                    noise::ranges(&calls)
                ));
            }
        }
        lines
    }
}

/// Each entry's fresh samples together with those of every entry that
/// sends the same request (the same line and the same values), which a
/// fresh instance answers alike: twelve `GET /` give each of them 24
/// samples to learn the noise from instead of 2.
fn pooled_by_request<'a>(calls: &[Vec<&'a Observed>]) -> Vec<Vec<&'a Observed>> {
    let same = |a: &Observed, b: &Observed| a.request == b.request && a.sent == b.sent;
    calls
        .iter()
        .map(|samples| {
            let Some(first) = samples.first() else {
                return Vec::new();
            };
            let mut pooled = samples.clone();
            for other in calls.iter().filter(|other| !std::ptr::eq(*other, samples)) {
                if other.first().is_some_and(|o| same(o, first)) {
                    pooled.extend(other.iter().copied());
                }
            }
            pooled
        })
        .collect()
}

impl EntryBaseline {
    /// The baseline of one entry from its fresh `calls` (none without).
    fn of(calls: &[&Observed]) -> Option<Self> {
        let first = calls.first()?;
        let names: Vec<&'static str> = first.answer.parts().iter().map(|(n, _)| *n).collect();
        let samples: Vec<Vec<String>> = calls
            .iter()
            .map(|c| c.answer.parts().into_iter().map(|(_, text)| text).collect())
            .collect();
        let parts = names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let texts: Vec<&str> = samples
                    .iter()
                    .filter_map(|s| s.get(index).map(String::as_str))
                    .collect();
                (*name, Pattern::of(&texts))
            })
            .collect();
        Some(EntryBaseline {
            answer: first.answer.clone(),
            fresh_texts: calls.iter().map(|c| joined(c)).collect(),
            samples,
            parts,
        })
    }
}

/// All of an answer's parts and headers, joined, for "does the fresh
/// answer hold this value too".
fn joined(call: &Observed) -> String {
    call.scanned()
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The check's conclusion.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub verdict: Verdict,
    /// The earliest divergence over all runs.
    pub divergence: Option<Divergence>,
    /// The first divergence of each run that had one, in run order.
    pub divergences: Vec<Divergence>,
    /// Every leak found, in run order.
    pub leaks: Vec<Leak>,
    /// What was masked as noise.
    pub masked: Vec<String>,
    pub memory: Option<MemoryTrend>,
    /// Calls one instance served correctly before the long run broke it.
    pub breaking_point: Option<usize>,
    /// Runs that stopped early, and why.
    pub notes: Vec<String>,
    /// The hint the component should declare, in canonical form.
    pub recommended_hint: String,
}

impl Report {
    /// What went wrong in the run labelled `run`, if anything: its leak or
    /// its divergence, in one line.
    pub fn finding_in(&self, run: &str) -> Option<String> {
        if let Some(leak) = self.leaks.iter().find(|l| l.run == run) {
            return Some(leak.to_string());
        }
        self.divergences
            .iter()
            .find(|d| d.run == run)
            .map(|d| format!("call {}: expected {}, got {}", d.call, d.expected, d.actual))
    }
}

/// Compares every run with the fresh baseline and concludes.
pub fn judge(runs: &[Run]) -> Report {
    let baseline = Baseline::from_runs(runs);
    let mut divergences = Vec::new();
    let mut leaks = Vec::new();
    for run in runs.iter().filter(|r| r.kind != RunKind::Fresh) {
        if let Some(d) = first_divergence(&baseline, run) {
            divergences.push(d);
        }
        let data: Vec<vary::CallData> = run
            .calls
            .iter()
            .enumerate()
            .map(|(index, call)| {
                // What fresh instances answered, in this call's own tokens.
                let retokened = run.retokened(index);
                let fresh = baseline
                    .entry(run.varied, call.entry)
                    .map(|e| {
                        e.fresh_texts
                            .iter()
                            .map(|text| {
                                retokened.iter().fold(text.clone(), |t, (own, reference)| {
                                    t.replace(reference, own)
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                vary::CallData {
                    sent: &call.sent,
                    answer: call.scanned(),
                    fresh,
                }
            })
            .collect();
        leaks.extend(vary::find_leaks(&run.label, &data));
    }
    let mut divergence: Option<Divergence> = None;
    for d in &divergences {
        if divergence.as_ref().is_none_or(|best| d.call < best.call) {
            divergence = Some(d.clone());
        }
    }
    // The long run's trend, or, when it stopped too early to have one (it
    // diverged at once), the reuse run's.
    let trend_of = |kind| {
        runs.iter()
            .find(|run| run.kind == kind)
            .and_then(memory_trend)
    };
    let memory = trend_of(RunKind::Long).or_else(|| trend_of(RunKind::Reuse));
    let breaks = divergences.iter().any(|d| d.failed);
    let verdict = if !leaks.is_empty() {
        Verdict::LeaksBetweenCalls
    } else if breaks {
        Verdict::BreaksUnderReuse
    } else if divergence.is_some() {
        Verdict::DependsOnReuse
    } else {
        Verdict::ReuseSafe
    };
    // A component that breaks only after many calls on one instance is
    // reusable for fewer: a reuse or long run whose instance failed at
    // call k after answering calls 1 to k-1 like the baseline sets the
    // breaking point k-1, and bounds max-calls if every divergence is such
    // a failure after at least as many calls.
    let breaking_point = divergences
        .iter()
        .filter(|d| matches!(d.kind, RunKind::Reuse | RunKind::Long))
        .filter(|d| d.failed && d.succeeded_before + 1 == d.call)
        .map(|d| d.succeeded_before)
        .min();
    let explained = breaking_point.is_some_and(|calls| {
        divergences
            .iter()
            .all(|d| d.failed && d.succeeded_before >= calls)
    });
    let leak_bound = memory
        .filter(|m| m.still_growing && m.bytes_per_call > 0.0)
        .map(|leak| {
            // The budget counts what the instance holds, its start included.
            let room = LEAK_BUDGET.saturating_sub(leak.start) as f64;
            (room / leak.bytes_per_call).floor().max(1.0) as usize
        });
    let bounded = |bound: Option<usize>| match bound {
        Some(calls) => format!("v1 reuse max-calls={calls}"),
        None => "v1 reuse".to_string(),
    };
    let recommended_hint = match (verdict, breaking_point) {
        (Verdict::ReuseSafe, _) => bounded(leak_bound),
        // One call per instance is what fresh instances give.
        (Verdict::BreaksUnderReuse, Some(calls)) if explained && calls > 1 => {
            bounded(Some(leak_bound.map_or(calls, |leak| leak.min(calls))))
        }
        _ => "v1 fresh".to_string(),
    };
    let notes = runs
        .iter()
        .filter_map(|r| r.stopped.as_ref().map(|why| format!("{}: {why}", r.label)))
        .collect();
    Report {
        verdict,
        divergence,
        divergences,
        leaks,
        masked: baseline.masked(),
        memory,
        breaking_point,
        notes,
        recommended_hint,
    }
}

/// The first call of `run` that answered differently from the baseline.
pub fn first_divergence(baseline: &Baseline, run: &Run) -> Option<Divergence> {
    let like_baseline =
        |index: usize| baseline.matches(run.varied, run.calls[index].entry, &run.comparable(index));
    let index = (0..run.calls.len()).find(|&index| !like_baseline(index))?;
    let call = &run.calls[index];
    let expected = baseline.answer(run.varied, call.entry)?.clone();
    let succeeded_before = (0..index)
        .rev()
        .take_while(|&before| run.calls[before].instance == call.instance && like_baseline(before))
        .count();
    Some(Divergence {
        call: index + 1,
        entry: call.entry + 1,
        run: run.label.clone(),
        kind: run.kind,
        failed: call.answer.failed() && !expected.failed(),
        expected,
        actual: call.answer.clone(),
        succeeded_before,
        in_flight_with: match run.kind {
            RunKind::Concurrent => run.in_flight_with(index),
            _ => Vec::new(),
        },
    })
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
        start: first,
        still_growing: last > middle,
    })
}

#[cfg(test)]
mod tests;
