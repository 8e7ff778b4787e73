//! `reprise check --html`: the check as one self-contained page.
//!
//! A pure function of the check's [`Outcome`] (and the few strings only
//! the CLI knows) to HTML: inline CSS and inline SVG, no script and no
//! external resource (a Content-Security-Policy forbids both). Per run, a
//! timeline of which instance served which call (for concurrent runs,
//! bars from each call's start to its end, in start/end order), its calls
//! compared with the fresh baseline (the differing part of each diverging
//! answer highlighted), leaks marked at their source and sink calls, and
//! the memory curve of the long reuse run. Long runs are summarized: the
//! first [`FIRST_CALLS`] calls and [`AROUND`] calls either side of each
//! finding, with the number of calls elided. Every piece of text the guest
//! or the script controls is escaped.

use super::vary::Leak;
use super::{Answer, Baseline, Divergence, Observed, Outcome, Run, RunKind, Verdict, noise};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// What the page shows beyond the outcome: what the CLI knows.
#[derive(Clone, Debug, Default)]
pub struct PageContext<'a> {
    /// The component checked, as named on the command line.
    pub component: &'a str,
    /// The seed of the check's random choices.
    pub seed: u64,
    /// The hint the component declares, if any.
    pub declared_hint: Option<&'a str>,
    /// The command that runs the whole check again.
    pub replay: &'a str,
    /// The command that replays the shrunk finding, if there is one.
    pub replay_finding: Option<&'a str>,
}

/// Calls of a run always shown.
pub const FIRST_CALLS: usize = 50;
/// Calls shown either side of a finding beyond the first ones.
pub const AROUND: usize = 3;
/// Runs up to this many calls more than [`FIRST_CALLS`] are shown whole.
const ELIDE_SLACK: usize = 10;
/// Characters of one answer part shown in a call's row.
const CELL_CHARS: usize = 160;
/// Characters of context kept either side of a diff's differing part.
const DIFF_CONTEXT: usize = 120;
/// Characters of a differing part shown.
const DIFF_CHARS: usize = 2000;
/// Points of the memory curve at most.
const MEMORY_POINTS: usize = 400;
/// Calls drawn in a concurrent timeline at most.
const TIMELINE_ROWS: usize = 200;
/// Leaks per run that get their calls shown and marked.
const LEAKS_SHOWN: usize = 20;

/// Escapes `text` for HTML text and attribute values alike. Control
/// characters (other than newline and tab) and bidirectional overrides are
/// shown as `\u{..}`, so no answer can hide or reorder what is around it.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            '\r' => out.push_str("\\r"),
            c if c.is_control()
                || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, and how many were cut.
fn clip(text: &str, max: usize) -> (&str, usize) {
    match text.char_indices().nth(max) {
        Some((at, _)) => (&text[..at], text[at..].chars().count()),
        None => (text, 0),
    }
}

/// `text` clipped to `max` characters and escaped, with every occurrence
/// of a `needle` wrapped in `<mark class="leak">`.
fn marked(text: &str, needles: &[&str], max: usize) -> String {
    let (shown, cut) = clip(text, max);
    let mut out = String::new();
    let mut rest = shown;
    loop {
        let next = needles
            .iter()
            .filter(|n| !n.is_empty())
            .filter_map(|n| rest.find(n).map(|at| (at, n.len())))
            .min();
        let Some((at, len)) = next else { break };
        out.push_str(&escape(&rest[..at]));
        let _ = write!(
            out,
            "<mark class=\"leak\">{}</mark>",
            escape(&rest[at..at + len])
        );
        rest = &rest[at + len..];
    }
    out.push_str(&escape(rest));
    if cut > 0 {
        let _ = write!(out, "<span class=\"cut\">… {cut} more characters</span>");
    }
    out
}

/// The common prefix and suffix of `a` and `b` (in bytes, on character
/// boundaries, not overlapping).
fn common(a: &str, b: &str) -> (usize, usize) {
    let prefix: usize = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.len_utf8())
        .sum();
    let suffix: usize = a[prefix..]
        .chars()
        .rev()
        .zip(b[prefix..].chars().rev())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.len_utf8())
        .sum();
    (prefix, suffix)
}

/// `text` split at `prefix` and `text.len() - suffix`, its middle wrapped
/// in `<tag>`, the context either side shortened.
fn diff_side(text: &str, prefix: usize, suffix: usize, tag: &str) -> String {
    let (head, middle, tail) = (
        &text[..prefix],
        &text[prefix..text.len() - suffix],
        &text[text.len() - suffix..],
    );
    let mut out = String::new();
    let head_chars = head.chars().count();
    if head_chars > DIFF_CONTEXT {
        let skip = head_chars - DIFF_CONTEXT;
        let at = head.char_indices().nth(skip).map_or(0, |(at, _)| at);
        let _ = write!(out, "<span class=\"cut\">… {skip} characters …</span>");
        out.push_str(&escape(&head[at..]));
    } else {
        out.push_str(&escape(head));
    }
    let (shown, cut) = clip(middle, DIFF_CHARS);
    let _ = write!(out, "<{tag}>{}</{tag}>", escape(shown));
    if cut > 0 {
        let _ = write!(
            out,
            "<span class=\"cut\">… {cut} more differing characters …</span>"
        );
    }
    let (shown, cut) = clip(tail, DIFF_CONTEXT);
    out.push_str(&escape(shown));
    if cut > 0 {
        let _ = write!(out, "<span class=\"cut\">… {cut} characters</span>");
    }
    out
}

/// Expected against actual, part by part, the differing parts only, with
/// what differs highlighted (`<del>` in the expected, `<ins>` in the
/// actual answer).
fn answer_diff(expected: &Answer, actual: &Answer) -> String {
    let mut out = String::from("<table class=\"diff\">");
    for ((name, want), (_, got)) in expected.parts().iter().zip(actual.parts().iter()) {
        if want == got {
            continue;
        }
        let (prefix, suffix) = common(want, got);
        let _ = write!(
            out,
            "<tr><th>{name}</th><td><div class=\"side\">fresh</div><pre class=\"expected\">{}</pre></td>\
             <td><div class=\"side\">this run</div><pre class=\"actual\">{}</pre></td></tr>",
            diff_side(want, prefix, suffix, "del"),
            diff_side(got, prefix, suffix, "ins"),
        );
    }
    out.push_str("</table>");
    out
}

/// An answer in one cell: its parts, clipped, with leaked values marked.
fn answer_cell(answer: &Answer, headers: &[(String, String)], needles: &[&str]) -> String {
    let mut out = String::new();
    match answer {
        Answer::Http {
            status,
            content_type,
            body,
        } => {
            let class = if *status >= 500 {
                "status bad"
            } else {
                "status"
            };
            let _ = write!(out, "<span class=\"{class}\">{status}</span> ");
            if let Some(ct) = content_type {
                let _ = write!(out, "<span class=\"ct\">{}</span> ", escape(ct));
            }
            let body = String::from_utf8_lossy(body);
            let _ = write!(
                out,
                "<code class=\"body\">{}</code>",
                marked(&body, needles, CELL_CHARS)
            );
        }
        Answer::Call { result, printed } => {
            match result {
                Ok(r) => {
                    let _ = write!(out, "<code>{}</code>", marked(r, needles, CELL_CHARS));
                }
                Err(e) => {
                    let _ = write!(
                        out,
                        "<span class=\"status bad\">failed</span> <code>{}</code>",
                        marked(e, needles, CELL_CHARS)
                    );
                }
            }
            if !printed.is_empty() {
                let _ = write!(
                    out,
                    " <span class=\"ct\">stdout</span> <code>{}</code>",
                    marked(printed, needles, CELL_CHARS)
                );
            }
        }
    }
    let leaked_headers: Vec<&(String, String)> = headers
        .iter()
        .filter(|(_, v)| needles.iter().any(|n| !n.is_empty() && v.contains(n)))
        .collect();
    for (name, value) in leaked_headers {
        let _ = write!(
            out,
            "<div class=\"hdr\">header {}: <code>{}</code></div>",
            escape(name),
            marked(value, needles, CELL_CHARS)
        );
    }
    out
}

/// The colour of instance `n` (none: grey).
fn instance_colour(instance: Option<u64>) -> String {
    match instance {
        Some(n) => format!("hsl({} 60% 62%)", (n.wrapping_mul(67) % 360)),
        None => "#bbb".to_string(),
    }
}

fn instance_name(instance: Option<u64>) -> String {
    instance.map_or("unknown instance".to_string(), |n| format!("instance {n}"))
}

/// What the page marks in one run.
struct Marks<'a> {
    /// Per call (0-based), whether it answered like the baseline.
    matches: Vec<bool>,
    divergence: Option<&'a Divergence>,
    leaks: Vec<&'a Leak>,
}

impl Marks<'_> {
    fn is_source(&self, call: usize) -> bool {
        self.leaks.iter().any(|l| l.from_call == call)
    }
    fn is_sink(&self, call: usize) -> bool {
        self.leaks.iter().any(|l| l.to_call == call)
    }
}

/// The 0-based calls of a run shown: all of a short run; of a long one the
/// first [`FIRST_CALLS`] and [`AROUND`] either side of each finding.
pub fn shown_calls(len: usize, findings: &[usize]) -> BTreeSet<usize> {
    if len <= FIRST_CALLS + ELIDE_SLACK {
        return (0..len).collect();
    }
    let mut shown: BTreeSet<usize> = (0..FIRST_CALLS).collect();
    for &f in findings {
        let from = f.saturating_sub(AROUND);
        let to = (f + AROUND).min(len - 1);
        shown.extend(from..=to);
    }
    if len > 0 {
        shown.insert(len - 1);
    }
    shown
}

/// The timeline of a serial run: one strip, a segment per streak of calls
/// one instance served, with the findings marked.
fn serial_timeline(run: &Run, marks: &Marks) -> String {
    let n = run.calls.len().max(1);
    let (width, left, strip) = (760.0, 10.0, 26.0);
    let x = |call: usize| left + (width - 2.0 * left) * call as f64 / n as f64;
    let mut svg = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {width} 58\" width=\"{width}\" height=\"58\" role=\"img\">"
    );
    let mut start = 0;
    for end in 1..=run.calls.len() {
        if end < run.calls.len() && run.calls[end].instance == run.calls[start].instance {
            continue;
        }
        let instance = run.calls[start].instance;
        let calls = if end - start == 1 {
            format!("call {}", start + 1)
        } else {
            format!("calls {}-{}", start + 1, end)
        };
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"6\" width=\"{:.1}\" height=\"{strip}\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"0.5\"><title>{calls} on {}</title></rect>",
            x(start),
            (x(end) - x(start)).max(0.5),
            instance_colour(instance),
            instance_name(instance),
        );
        start = end;
    }
    let mut marker = |call: usize, class: &str, what: &str| {
        let cx = (x(call - 1) + x(call)) / 2.0;
        let _ = write!(
            svg,
            "<path class=\"{class}\" d=\"M{cx:.1} 4 L{:.1} 34 M{:.1} 36 L{:.1} 42 L{:.1} 42 Z\"><title>call {call}: {what}</title></path>",
            cx,
            cx,
            cx - 4.0,
            cx + 4.0
        );
    };
    // Every diverging call, up to a page-friendly number of them.
    let diverging = marks.matches.iter().enumerate().filter(|(_, ok)| !**ok);
    for (index, _) in diverging.take(TIMELINE_ROWS) {
        marker(index + 1, "m-diverge", "answered differently from fresh");
    }
    for leak in &marks.leaks {
        marker(leak.from_call, "m-source", "its value leaked");
        marker(leak.to_call, "m-sink", "answered with another call's value");
    }
    let _ = write!(
        svg,
        "<text x=\"{left}\" y=\"54\">1</text><text x=\"{:.1}\" y=\"54\" text-anchor=\"end\">{}</text></svg>",
        width - left,
        run.calls.len()
    );
    svg
}

/// The timeline of a concurrent run: per call a bar from its start to its
/// end, in the run's start/end order, coloured by instance; the diverging
/// call and the calls in flight with it marked.
fn concurrent_timeline(run: &Run, marks: &Marks) -> String {
    let rows = run.calls.len().min(TIMELINE_ROWS);
    let end = run
        .calls
        .iter()
        .map(|c| c.ended.max(c.started) + 1)
        .max()
        .unwrap_or(1) as f64;
    let (width, label, row) = (760.0, 70.0, 16.0);
    let height = row * rows as f64 + 24.0;
    let x = |order: u64| label + (width - label - 10.0) * order as f64 / end;
    let overlapping: Vec<usize> = marks
        .divergence
        .map(|d| d.in_flight_with.clone())
        .unwrap_or_default();
    let mut svg = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\">"
    );
    if let Some(d) = marks.divergence
        && let Some(call) = run.calls.get(d.call - 1)
    {
        let _ = write!(
            svg,
            "<rect class=\"band\" x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"{:.1}\"><title>while call {} was in flight</title></rect>",
            x(call.started),
            (x(call.ended) - x(call.started)).max(1.0),
            row * rows as f64,
            d.call
        );
    }
    for (index, call) in run.calls.iter().take(rows).enumerate() {
        let number = index + 1;
        let y = row * index as f64;
        let mut class = String::from("bar");
        if !marks.matches.get(index).copied().unwrap_or(true) {
            class.push_str(" bad");
        }
        if overlapping.contains(&number) {
            class.push_str(" overlap");
        }
        if marks.is_sink(number) {
            class.push_str(" sink");
        }
        if marks.is_source(number) {
            class.push_str(" source");
        }
        let _ = write!(
            svg,
            "<text x=\"4\" y=\"{:.1}\">call {number}</text><rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>call {number} (entry {}) on {}: started {}, ended {}</title></rect>",
            y + 12.0,
            x(call.started),
            y + 2.0,
            (x(call.ended) - x(call.started)).max(2.0),
            row - 4.0,
            instance_colour(call.instance),
            call.entry + 1,
            instance_name(call.instance),
            call.started,
            call.ended
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{label}\" y=\"{:.1}\">order 0</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text></svg>",
        height - 6.0,
        width - 10.0,
        height - 6.0,
        end as u64 - 1
    );
    if run.calls.len() > rows {
        let _ = write!(
            svg,
            "<p class=\"note\">the timeline shows the first {rows} of {} calls</p>",
            run.calls.len()
        );
    }
    svg
}

/// The memory curve of `run`'s calls: an SVG polyline, at most
/// [`MEMORY_POINTS`] points.
fn memory_curve(run: &Run) -> Option<String> {
    let points: Vec<(usize, u64)> = run
        .calls
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.memory.map(|m| (i, m)))
        .collect();
    if points.len() < 2 {
        return None;
    }
    let step = points.len().div_ceil(MEMORY_POINTS);
    let mut sampled: Vec<(usize, u64)> = points.iter().copied().step_by(step).collect();
    if sampled.last() != points.last() {
        sampled.extend(points.last().copied());
    }
    let low = points.iter().map(|p| p.1).min()?;
    let high = points.iter().map(|p| p.1).max()?;
    let last_call = run.calls.len().saturating_sub(1).max(1);
    let (width, height, left, top, bottom) = (760.0, 180.0, 80.0, 10.0, 30.0);
    let x = |call: usize| left + (width - left - 10.0) * call as f64 / last_call as f64;
    let y = |memory: u64| match high - low {
        0 => top + (height - top - bottom) / 2.0,
        span => top + (height - top - bottom) * (1.0 - (memory - low) as f64 / span as f64),
    };
    let line: Vec<String> = sampled
        .iter()
        .map(|&(call, memory)| format!("{:.1},{:.1}", x(call), y(memory)))
        .collect();
    let mut svg = format!(
        "<svg class=\"memory\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\">\
         <line class=\"axis\" x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{:.1}\"/>\
         <line class=\"axis\" x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
        height - bottom,
        height - bottom,
        width - 10.0,
        height - bottom
    );
    let _ = write!(
        svg,
        "<polyline class=\"curve\" points=\"{}\"><title>linear memory after each call, {} of {} calls plotted</title></polyline>",
        line.join(" "),
        sampled.len(),
        points.len()
    );
    let mut label = |memory: u64| {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 4.0,
            y(memory) + 4.0,
            bytes(memory)
        );
    };
    label(high);
    if low != high {
        label(low);
    }
    let _ = write!(
        svg,
        "<text x=\"{left}\" y=\"{:.1}\">call 1</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">call {}</text></svg>",
        height - 10.0,
        width - 10.0,
        height - 10.0,
        run.calls.len()
    );
    Some(svg)
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
        n => format!("{:.1} KiB", n as f64 / 1024.0),
    }
}

fn call_anchor(run: usize, call: usize) -> String {
    format!("run-{run}-call-{call}")
}

/// One run's section: what it is, its finding, its timeline and its calls.
fn run_section(out: &mut String, index: usize, run: &Run, outcome: &Outcome, baseline: &Baseline) {
    let report = &outcome.report;
    let marks = Marks {
        matches: run
            .calls
            .iter()
            .map(|c| baseline.matches(run.varied, c.entry, &c.answer))
            .collect(),
        divergence: report.divergences.iter().find(|d| d.run == run.label),
        leaks: report
            .leaks
            .iter()
            .filter(|l| l.run == run.label)
            .take(LEAKS_SHOWN)
            .collect(),
    };
    let diverging = marks.matches.iter().filter(|ok| !**ok).count();
    let instances: BTreeSet<Option<u64>> = run.calls.iter().map(|c| c.instance).collect();
    let finding = report.finding_in(&run.label);
    let class = if finding.is_some() { "run bad" } else { "run" };
    let _ = write!(
        out,
        "<section class=\"{class}\" id=\"run-{index}\"><h2>{}</h2><p class=\"meta\">{}</p>",
        escape(&run.label),
        escape(&run_meta(run, instances.len(), diverging))
    );
    if let Some(finding) = &finding {
        let _ = write!(out, "<p class=\"finding\">{}</p>", escape(finding));
    }
    if let Some(why) = &run.stopped {
        let _ = write!(out, "<p class=\"note\">{}</p>", escape(why));
    }
    match run.kind {
        RunKind::Concurrent => out.push_str(&concurrent_timeline(run, &marks)),
        _ => out.push_str(&serial_timeline(run, &marks)),
    }
    if let Some(d) = marks.divergence {
        let _ = write!(
            out,
            "<div class=\"divergence\"><h3>first divergence: <a href=\"#{}\">call {}</a> (script entry {})</h3>",
            call_anchor(index, d.call),
            d.call,
            d.entry
        );
        if d.succeeded_before > 0 {
            let before = match d.succeeded_before {
                1 => format!("call {}", d.call - 1),
                _ => format!("calls {}-{}", d.call - d.succeeded_before, d.call - 1),
            };
            let _ = write!(
                out,
                "<p>{before} succeeded on the same instance right before it; call {} {}</p>",
                d.call,
                if d.failed {
                    "failed"
                } else {
                    "answered differently"
                }
            );
        }
        if !d.in_flight_with.is_empty() {
            let _ = write!(
                out,
                "<p>in flight together with calls {}</p>",
                noise::ranges(&d.in_flight_with)
            );
        }
        out.push_str(&answer_diff(&d.expected, &d.actual));
        out.push_str("</div>");
    }
    for (leak, sinks) in leak_groups(marks.leaks.iter().copied()) {
        out.push_str(&leak_line(index, leak, &sinks, false));
    }
    let mut findings: Vec<usize> = Vec::new();
    findings.extend(marks.divergence.map(|d| d.call - 1));
    for leak in &marks.leaks {
        findings.push(leak.from_call - 1);
        findings.push(leak.to_call - 1);
    }
    call_table(out, index, run, baseline, &marks, &findings);
    out.push_str("</section>\n");
}

/// Leaks of one value from one call to one place, grouped: each with the
/// 1-based calls whose answers held it, in order.
fn leak_groups<'a>(leaks: impl Iterator<Item = &'a Leak>) -> Vec<(&'a Leak, Vec<usize>)> {
    let mut groups: Vec<(&Leak, Vec<usize>)> = Vec::new();
    for leak in leaks {
        let same = |g: &&mut (&Leak, Vec<usize>)| {
            let first = g.0;
            first.run == leak.run
                && first.value == leak.value
                && first.from_call == leak.from_call
                && first.from_place == leak.from_place
                && first.to_place == leak.to_place
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some((_, sinks)) => sinks.push(leak.to_call),
            None => groups.push((leak, vec![leak.to_call])),
        }
    }
    groups
}

/// One leak (group) in words, its source and sink calls linked to their
/// rows of run `run` (the page's `index`), the value marked.
fn leak_line(run: usize, leak: &Leak, sinks: &[usize], with_run: bool) -> String {
    let mut out = String::from("<div class=\"leak-finding\">leak");
    if with_run {
        let _ = write!(out, " in <a href=\"#run-{run}\">{}</a>", escape(&leak.run));
    }
    let _ = write!(
        out,
        ": the value of {} sent in <a class=\"source\" href=\"#{}\">call {}</a> appeared in the {} of ",
        escape(&leak.from_place),
        call_anchor(run, leak.from_call),
        leak.from_call,
        escape(&leak.to_place),
    );
    out.push_str(if sinks.len() == 1 { "call " } else { "calls " });
    let links: Vec<String> = sinks
        .iter()
        .take(LEAKS_SHOWN)
        .map(|&call| {
            format!(
                "<a class=\"sink\" href=\"#{}\">{call}</a>",
                call_anchor(run, call)
            )
        })
        .collect();
    out.push_str(&links.join(", "));
    if sinks.len() > LEAKS_SHOWN {
        let _ = write!(out, " and {} more", sinks.len() - LEAKS_SHOWN);
    }
    let _ = write!(
        out,
        ": <code><mark class=\"leak\">{}</mark></code></div>",
        escape(clip(&leak.value, CELL_CHARS).0)
    );
    out
}

fn run_meta(run: &Run, instances: usize, diverging: usize) -> String {
    let kind = match run.kind {
        RunKind::Fresh => "every call on a new instance",
        RunKind::Reuse => "the script once on one reused instance",
        RunKind::Long => "the script repeated on one reused instance",
        RunKind::Concurrent => "the script's calls several at a time on one reused instance",
        RunKind::Chaos => "under chaos: random re-instantiation, two instances, perturbed I/O",
    };
    let mut meta = format!(
        "{kind}; {} call{} on {instances} instance{}",
        run.calls.len(),
        if run.calls.len() == 1 { "" } else { "s" },
        if instances == 1 { "" } else { "s" }
    );
    if run.varied {
        meta.push_str("; values varied to tokens unique to each call");
    }
    if run.concurrency > 1 {
        let _ = write!(meta, "; {} at a time", run.concurrency);
    }
    if let Some(seed) = run.seed {
        let _ = write!(meta, "; seed {seed}");
    }
    match diverging {
        0 => meta.push_str("; every call answered like fresh"),
        n => {
            let _ = write!(
                meta,
                "; {n} call{} answered differently from fresh",
                if n == 1 { "" } else { "s" }
            );
        }
    }
    meta
}

/// The calls of a run, against the baseline; long runs elided.
fn call_table(
    out: &mut String,
    index: usize,
    run: &Run,
    baseline: &Baseline,
    marks: &Marks,
    findings: &[usize],
) {
    let concurrent = run.kind == RunKind::Concurrent;
    let shown = shown_calls(run.calls.len(), findings);
    out.push_str("<table class=\"calls\"><thead><tr><th>call</th><th>entry</th><th>instance</th>");
    if concurrent {
        out.push_str("<th>start–end</th><th>in flight with</th>");
    }
    out.push_str("<th>sent</th><th>answer</th><th>vs fresh</th></tr></thead><tbody>");
    let columns = if concurrent { 8 } else { 6 };
    let mut next = 0;
    for &call in &shown {
        if call > next {
            elided_row(out, marks, next, call, columns);
        }
        next = call + 1;
        call_row(out, index, run, call, baseline, marks, columns);
    }
    if next < run.calls.len() {
        elided_row(out, marks, next, run.calls.len(), columns);
    }
    out.push_str("</tbody></table>");
}

/// A row standing for the 0-based calls `from..to`, left out.
fn elided_row(out: &mut String, marks: &Marks, from: usize, to: usize, columns: usize) {
    let diverging = marks.matches[from..to].iter().filter(|ok| !**ok).count();
    let _ = write!(
        out,
        "<tr class=\"elided\"><td colspan=\"{columns}\">… {} calls elided (calls {}-{}): {}</td></tr>",
        to - from,
        from + 1,
        to,
        match diverging {
            0 => "all answered like fresh".to_string(),
            n => format!("{n} of them answered differently from fresh"),
        }
    );
}

#[allow(clippy::too_many_arguments)]
fn call_row(
    out: &mut String,
    index: usize,
    run: &Run,
    call: usize,
    baseline: &Baseline,
    marks: &Marks,
    columns: usize,
) {
    let observed: &Observed = &run.calls[call];
    let number = call + 1;
    let ok = marks.matches[call];
    let mut class = vec![if ok { "ok" } else { "bad" }];
    let source = marks.is_source(number);
    let sink = marks.is_sink(number);
    if source {
        class.push("source");
    }
    if sink {
        class.push("sink");
    }
    if marks.divergence.is_some_and(|d| d.call == number) {
        class.push("first");
    }
    // The values that leaked out of this call, and into it.
    let sent_leaked: Vec<&str> = marks
        .leaks
        .iter()
        .filter(|l| l.from_call == number)
        .map(|l| l.value.as_str())
        .collect();
    let received: Vec<&str> = marks
        .leaks
        .iter()
        .filter(|l| l.to_call == number)
        .map(|l| l.value.as_str())
        .collect();
    let _ = write!(
        out,
        "<tr id=\"{}\" class=\"{}\"><td>{number}</td><td>{}</td><td><span class=\"swatch\" style=\"background:{}\"></span>{}</td>",
        call_anchor(index, number),
        class.join(" "),
        observed.entry + 1,
        instance_colour(observed.instance),
        observed.instance.map_or("?".to_string(), |n| n.to_string())
    );
    if run.kind == RunKind::Concurrent {
        let with = run.in_flight_with(call);
        let _ = write!(
            out,
            "<td>{}–{}</td><td>{}</td>",
            observed.started,
            observed.ended,
            if with.is_empty() {
                "none".to_string()
            } else {
                noise::ranges(&with)
            }
        );
    }
    let mut sent = format!(
        "<code>{}</code>",
        marked(&observed.request, &sent_leaked, CELL_CHARS)
    );
    for value in &observed.sent {
        let _ = write!(
            sent,
            "<div class=\"sent\">{}: <code>{}</code></div>",
            escape(&value.place),
            marked(&value.value, &sent_leaked, CELL_CHARS)
        );
    }
    let mut verdict = String::from(if ok {
        "same"
    } else {
        "<strong>differs</strong>"
    });
    if source {
        verdict.push_str("<div class=\"tag source\">leak source</div>");
    }
    if sink {
        verdict.push_str("<div class=\"tag sink\">leak sink</div>");
    }
    let _ = write!(
        out,
        "<td>{sent}</td><td>{}</td><td>{verdict}</td></tr>",
        answer_cell(&observed.answer, &observed.headers, &received)
    );
    if !ok && let Some(expected) = baseline.answer(run.varied, observed.entry) {
        let _ = write!(
            out,
            "<tr class=\"diffrow\"><td colspan=\"{columns}\">{}</td></tr>",
            answer_diff(expected, &observed.answer)
        );
    }
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;color:#222}
h1{font-size:1.4em;margin-bottom:.2em}h2{font-size:1.15em;margin:0 0 .2em}h3{font-size:1em;margin:.4em 0}
dl.head{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em}dl.head dt{font-weight:600}dl.head dd{margin:0}
code,pre{font:12px/1.35 ui-monospace,monospace}pre{white-space:pre-wrap;word-break:break-all;margin:0}
code{white-space:pre-wrap;word-break:break-all}
.verdict{font-weight:700;padding:0 .4em;border-radius:3px}.verdict.good{background:#d6f5d6}.verdict.bad{background:#fbd3d3}
section.run{border:1px solid #ddd;border-radius:6px;padding:.8em 1em;margin:1em 0}section.run.bad{border-color:#e08080}
.meta{color:#555;margin:0 0 .4em}.finding{color:#a00;font-weight:600}.note{color:#775;font-style:italic}
table{border-collapse:collapse}table.calls{width:100%;margin-top:.5em}
table.calls th,table.calls td{border-bottom:1px solid #eee;padding:2px 6px;vertical-align:top;text-align:left}
table.calls tr.bad td{background:#fff0f0}table.calls tr.first td{background:#ffdcdc}
table.calls tr.source td:first-child{box-shadow:inset 4px 0 #e69500}table.calls tr.sink td:first-child{box-shadow:inset 4px 0 #8a2be2}
tr.elided td{color:#666;font-style:italic;background:#f6f6f6;text-align:center}
tr.diffrow td{background:#fffafa}
table.diff th{vertical-align:top;padding-right:.6em;text-align:left}table.diff td{vertical-align:top;padding:0 .6em .3em 0;width:50%}
.side{font-size:11px;color:#666}del{background:#ffc0c0;text-decoration:line-through}ins{background:#b5f0b5;text-decoration:none}
mark.leak{background:#ffd24d;outline:1px solid #e69500}
.tag{font-size:11px;font-weight:600}.tag.source{color:#b86e00}.tag.sink{color:#8a2be2}
.divergence,.leak-finding{margin:.4em 0;padding:.4em .6em;background:#fff6f6;border-left:4px solid #d33}
.leak-finding{background:#fff8e6;border-color:#e69500}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em;border-radius:2px;vertical-align:middle}
.status.bad{color:#b00;font-weight:700}.ct{color:#777;font-size:11px}.sent,.hdr{font-size:11px;color:#555}.cut{color:#999;font-style:italic}
svg text{font:11px system-ui,sans-serif;fill:#444}svg{display:block;max-width:100%;height:auto;margin:.4em 0}
.m-diverge{stroke:#d00;stroke-width:2;fill:#d00}.m-source{stroke:#e69500;stroke-width:2;fill:#e69500}.m-sink{stroke:#8a2be2;stroke-width:2;fill:#8a2be2}
.bar.bad{stroke:#d00;stroke-width:2}.bar.overlap{stroke:#333;stroke-dasharray:3 2}.bar.sink{stroke:#8a2be2;stroke-width:2}.bar.source{stroke:#e69500;stroke-width:2}
.band{fill:#ffdcdc;opacity:.6}.curve{fill:none;stroke:#2a6fdb;stroke-width:1.5}.axis{stroke:#999}
table.runs td,table.runs th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left}table.runs tr.bad td{color:#a00}
";

/// The check as one self-contained HTML page.
pub fn html(outcome: &Outcome, page: &PageContext) -> String {
    let report = &outcome.report;
    let baseline = Baseline::from_runs(&outcome.runs);
    let mut out = String::with_capacity(64 << 10);
    let title = format!(
        "reprise check {}: {}",
        page.component,
        report.verdict.as_str()
    );
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    let good = report.verdict == Verdict::ReuseSafe;
    let _ = write!(
        out,
        "<header><h1>reprise check <code>{}</code></h1><dl class=\"head\">\
         <dt>verdict</dt><dd id=\"verdict\"><span class=\"verdict {}\">{}</span></dd>\
         <dt>declared hint</dt><dd>{}</dd>\
         <dt>recommended hint</dt><dd id=\"recommended-hint\"><code>{}</code></dd>\
         <dt>seed</dt><dd id=\"seed\">{}</dd>\
         <dt>replay</dt><dd id=\"replay\"><code>{}</code></dd>",
        escape(page.component),
        if good { "good" } else { "bad" },
        report.verdict.as_str(),
        page.declared_hint.map_or("none".to_string(), |h| format!(
            "<code>{}</code>",
            escape(h)
        )),
        escape(&report.recommended_hint),
        page.seed,
        escape(page.replay),
    );
    if let Some(command) = page.replay_finding {
        let _ = write!(
            out,
            "<dt>replay the finding</dt><dd id=\"replay-finding\"><code>{}</code></dd>",
            escape(command)
        );
    }
    if let Some(flavor) = outcome.flavor {
        let _ = write!(out, "<dt>handler</dt><dd>{flavor}</dd>");
    }
    match report.memory {
        Some(m) => {
            let _ = write!(
                out,
                "<dt>memory while reused</dt><dd>{:+.1} KiB per call over {} calls{}</dd>",
                m.bytes_per_call / 1024.0,
                m.calls,
                if m.still_growing && m.bytes_per_call > 0.0 {
                    " and still growing: likely a leak"
                } else {
                    ""
                }
            );
        }
        None => out.push_str("<dt>memory while reused</dt><dd>not measured</dd>"),
    }
    if let Some(calls) = report.breaking_point {
        let _ = write!(
            out,
            "<dt>breaking point</dt><dd>one instance broke after {calls} calls</dd>"
        );
    }
    out.push_str("</dl></header>\n");

    // The findings, each linked to its run and calls.
    let run_index = |label: &str| outcome.runs.iter().position(|r| r.label == label);
    out.push_str("<section id=\"findings\"><h2>findings</h2>");
    if report.divergence.is_none() && report.leaks.is_empty() {
        out.push_str("<p>every run answered like the fresh baseline</p>");
    }
    if let Some(d) = &report.divergence {
        let at = run_index(&d.run).unwrap_or(0);
        let _ = write!(
            out,
            "<div class=\"divergence\" id=\"first-divergence\"><h3>first divergence: \
             <a href=\"#{}\">call {} under {}</a></h3>{}</div>",
            call_anchor(at, d.call),
            d.call,
            escape(&d.run),
            answer_diff(&d.expected, &d.actual)
        );
    }
    let groups = leak_groups(report.leaks.iter());
    for (leak, sinks) in groups.iter().take(LEAKS_SHOWN) {
        let at = run_index(&leak.run).unwrap_or(0);
        out.push_str(&leak_line(at, leak, sinks, true));
    }
    if groups.len() > LEAKS_SHOWN {
        let _ = write!(out, "<p>… {} more leaks</p>", groups.len() - LEAKS_SHOWN);
    }
    for line in &report.masked {
        let _ = write!(out, "<p class=\"note\">masked: {}</p>", escape(line));
    }
    for line in &report.notes {
        let _ = write!(out, "<p class=\"note\">note: {}</p>", escape(line));
    }
    if let Some(repro) = &outcome.repro {
        let calls = repro.script.calls_per_run();
        let _ = write!(
            out,
            "<h3>reproduction: {calls} call{} ({}, from {} calls of {})</h3><ol>",
            if calls == 1 { "" } else { "s" },
            if repro.minimal {
                "shrunk"
            } else {
                "not fully shrunk"
            },
            repro.from_calls,
            escape(&repro.run)
        );
        for i in 0..calls.min(12) {
            let _ = write!(
                out,
                "<li><code>{}</code></li>",
                escape(&repro.script.summary(i))
            );
        }
        out.push_str("</ol>");
        if calls > 12 {
            let _ = write!(out, "<p>… {} more</p>", calls - 12);
        }
    }
    out.push_str("</section>\n");

    // The memory curve of the long run (else the reuse run).
    let memory_run = outcome
        .runs
        .iter()
        .find(|r| r.kind == RunKind::Long)
        .or_else(|| outcome.runs.iter().find(|r| r.kind == RunKind::Reuse));
    out.push_str("<section id=\"memory\"><h2>memory</h2>");
    match memory_run.and_then(|run| memory_curve(run).map(|svg| (run, svg))) {
        Some((run, svg)) => {
            let _ = write!(
                out,
                "<p>linear memory after each call of {}</p>{svg}",
                escape(&run.label)
            );
        }
        None => out.push_str("<p>not measured (fewer than 2 calls with a known memory size)</p>"),
    }
    out.push_str("</section>\n");

    // The runs at a glance, then each.
    out.push_str(
        "<section id=\"runs\"><h2>runs</h2><table class=\"runs\"><thead><tr><th>run</th>\
         <th>calls</th><th>instances</th><th>result</th></tr></thead><tbody>",
    );
    for (index, run) in outcome.runs.iter().enumerate() {
        let finding = report.finding_in(&run.label);
        let instances: BTreeSet<Option<u64>> = run.calls.iter().map(|c| c.instance).collect();
        let _ = write!(
            out,
            "<tr class=\"{}\"><td><a href=\"#run-{index}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if finding.is_some() { "bad" } else { "ok" },
            escape(&run.label),
            run.calls.len(),
            instances.len(),
            escape(finding.as_deref().unwrap_or(match run.kind {
                RunKind::Fresh if index == 0 => "the baseline",
                _ => "like fresh",
            }))
        );
    }
    out.push_str("</tbody></table></section>\n");
    for (index, run) in outcome.runs.iter().enumerate() {
        run_section(&mut out, index, run, outcome, &baseline);
    }
    out.push_str("<footer><p class=\"meta\">written by <code>reprise check --html</code></p></footer></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Sent, judge};
    use bytes::Bytes;

    fn http(body: &str) -> Answer {
        Answer::Http {
            status: 200,
            content_type: Some("text/plain".into()),
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    /// A serial run whose call `i` answers `bodies[i]` on `instances[i]`.
    fn run(label: &str, kind: RunKind, bodies: &[&str], instances: &[u64]) -> Run {
        let calls = bodies
            .iter()
            .zip(instances)
            .enumerate()
            .map(|(i, (body, &instance))| Observed {
                instance: Some(instance),
                memory: Some(65536 * (1 + i as u64)),
                request: format!("GET /{i}"),
                ..Observed::serial(i, i, http(body))
            })
            .collect();
        Run::new(label, kind, false, calls)
    }

    fn outcome(runs: Vec<Run>) -> Outcome {
        let report = judge(&runs);
        Outcome {
            runs,
            report,
            repro: None,
            flavor: None,
        }
    }

    fn page(outcome: &Outcome) -> String {
        html(
            outcome,
            &PageContext {
                component: "x<y>.wasm",
                seed: 7,
                declared_hint: None,
                replay: "reprise check 'x<y>.wasm' --seed 7",
                replay_finding: None,
            },
        )
    }

    #[test]
    fn guest_text_is_escaped() {
        let evil = "<script>alert(1)</script>\u{202e}\u{1b}&\"'";
        let outcome = outcome(vec![
            run("fresh", RunKind::Fresh, &["a", "b"], &[1, 2]),
            run("fresh again", RunKind::Fresh, &["a", "b"], &[3, 4]),
            run("reuse", RunKind::Reuse, &["a", evil], &[5, 5]),
        ]);
        let html = page(&outcome);
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("\\u{202e}\\u{1b}&amp;&quot;&#39;"), "{html}");
        assert!(html.contains("<code>x&lt;y&gt;.wasm</code>"), "{html}");
        assert!(html.contains("reprise check &#39;x&lt;y&gt;.wasm&#39; --seed 7"));
        assert!(!html.contains("\u{202e}") && !html.contains('\u{1b}'));
        // No external resources, and nothing scripted.
        assert!(
            !html.contains("src=") && !html.contains("href=\"http"),
            "{html}"
        );
        // The diverging call shows fresh's answer against this one, the
        // differing part highlighted.
        assert!(html.contains("<del>b</del>"), "{html}");
        assert!(html.contains("<ins>&lt;script&gt;alert(1)"), "{html}");
    }

    #[test]
    fn escape_covers_every_special_character() {
        assert_eq!(
            escape("a<b>&\"'\n\tc\r\u{7f}"),
            "a&lt;b&gt;&amp;&quot;&#39;\n\tc\\r\\u{7f}"
        );
        assert_eq!(escape("\u{2066}x"), "\\u{2066}x");
    }

    #[test]
    fn a_leak_is_highlighted_at_source_and_sink() {
        let sent = |value: &str| {
            vec![Sent {
                place: "header x-user".into(),
                value: value.into(),
            }]
        };
        let varied = |label: &str, kind, bodies: &[&str], instances: &[u64]| {
            let mut run = run(label, kind, bodies, instances);
            run.varied = true;
            for (call, token) in run.calls.iter_mut().zip(["rpralice0001", "rprbob000002"]) {
                call.sent = sent(token);
            }
            run
        };
        let outcome = outcome(vec![
            varied(
                "fresh, varied",
                RunKind::Fresh,
                &["hello, rpralice0001", "hello, rprbob000002"],
                &[1, 2],
            ),
            varied(
                "reuse, varied",
                RunKind::Reuse,
                &["hello, rpralice0001", "hello, rpralice0001"],
                &[3, 3],
            ),
        ]);
        assert_eq!(outcome.report.verdict, Verdict::LeaksBetweenCalls);
        let html = page(&outcome);
        assert!(
            html.contains(
                "leak in <a href=\"#run-1\">reuse, varied</a>: the value of header x-user sent in \
                 <a class=\"source\" href=\"#run-1-call-1\">call 1</a> appeared in the body of \
                 call <a class=\"sink\" href=\"#run-1-call-2\">2</a>"
            ),
            "{html}"
        );
        assert!(
            html.contains("<tr id=\"run-1-call-1\" class=\"ok source\">"),
            "{html}"
        );
        assert!(
            html.contains("<tr id=\"run-1-call-2\" class=\"bad sink first\">"),
            "{html}"
        );
        // In the sink's answer, the leaked value is marked.
        assert!(
            html.contains("hello, <mark class=\"leak\">rpralice0001</mark>"),
            "{html}"
        );
        assert!(html.contains("m-source") && html.contains("m-sink"));
        assert!(html.contains("<div class=\"tag sink\">leak sink</div>"));
    }

    #[test]
    fn long_runs_are_elided_around_the_divergence() {
        let n = 1000;
        let fresh_bodies = vec!["ok"; 1];
        let mut long_bodies = vec!["ok"; n];
        long_bodies[700] = "broken";
        let calls: Vec<Observed> = long_bodies
            .iter()
            .enumerate()
            .map(|(i, b)| Observed {
                instance: Some(9),
                memory: Some(65536 + 1024 * i as u64),
                ..Observed::serial(i, 0, http(b))
            })
            .collect();
        let outcome = outcome(vec![
            run("fresh", RunKind::Fresh, &fresh_bodies, &[1]),
            Run::new("long reuse", RunKind::Long, false, calls),
        ]);
        let html = page(&outcome);
        // 50 first calls, 3 either side of call 701, and the last call.
        assert_eq!(
            html.matches("<tr id=\"run-1-call-").count(),
            50 + 7 + 1,
            "{html}"
        );
        assert!(html.contains("<tr id=\"run-1-call-701\" class=\"bad first\">"));
        assert!(
            html.contains("… 647 calls elided (calls 51-697): all answered like fresh"),
            "{html}"
        );
        assert!(
            html.contains("… 295 calls elided (calls 705-999): all answered like fresh"),
            "{html}"
        );
        assert!(html.len() < 200_000, "{} bytes", html.len());
        // The memory curve, down-sampled.
        let points = html
            .split("<polyline class=\"curve\" points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .split(' ')
            .count();
        assert!((300..=MEMORY_POINTS + 1).contains(&points), "{points}");
        assert_eq!(shown_calls(12, &[]).len(), 12);
    }

    #[test]
    fn concurrent_timeline_draws_overlapping_bars() {
        let fresh = run("fresh", RunKind::Fresh, &["a", "b", "c"], &[1, 2, 3]);
        // Calls 1 and 2 overlap; call 3 runs alone, later.
        let order = [(0, 3), (1, 2), (4, 5)];
        let bodies = ["a", "a", "c"];
        let calls = order
            .iter()
            .zip(bodies)
            .enumerate()
            .map(|(i, (&(started, ended), body))| Observed {
                instance: Some(4),
                started,
                ended,
                ..Observed::serial(i, i, http(body))
            })
            .collect();
        let mut concurrent = Run::new("concurrent seed 1", RunKind::Concurrent, false, calls);
        concurrent.concurrency = 2;
        concurrent.seed = Some(1);
        let outcome = outcome(vec![fresh, concurrent]);
        let d = outcome.report.divergence.clone().unwrap();
        assert_eq!((d.call, d.in_flight_with.clone()), (2, vec![1]));
        let html = page(&outcome);
        let section = html.split("id=\"run-1\"").nth(1).unwrap();
        assert_eq!(section.matches("<rect class=\"bar").count(), 3, "{section}");
        // Call 1 is marked as in flight with the diverging call 2.
        assert!(section.contains("<rect class=\"bar overlap\""), "{section}");
        assert!(section.contains("<rect class=\"bar bad\""), "{section}");
        assert!(section.contains("call 2 (entry 2) on instance 4: started 1, ended 2"));
        assert!(section.contains("<rect class=\"band\""));
        assert!(section.contains("<td>0–3</td><td>2</td>"), "{section}");
        assert!(section.contains("in flight together with calls 1"));
        assert!(section.contains("2 at a time; seed 1"));
    }
}
