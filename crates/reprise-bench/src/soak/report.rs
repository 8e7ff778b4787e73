//! What a soak run saw, its verdict, and the markdown it is written as.
//!
//! The verdict has two parts: every answer is the one its path should get
//! (200 `ok` for the well-behaved client, the host's trap, timeout and
//! memory answers for the others), and memory is flat: after a warm-up, the
//! median RSS of the last third of the samples is at most 10% or 16 MiB,
//! whichever is more, above the median of the first third.

use super::answer::Kind;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// RSS may grow by this much from the first third to the last ...
const ALLOWED_GROWTH_BYTES: u64 = 16 << 20;
/// ... or by this fraction of the first third's median, whichever is more.
const ALLOWED_GROWTH_FRACTION: f64 = 0.10;
/// The samples memory is judged on: at least two per third.
const MIN_SAMPLES: usize = 6;

/// One client's answers.
#[derive(Clone, Debug)]
pub struct Tally {
    /// `ok (wrk)`, `trap`, …
    pub client: String,
    pub path: &'static str,
    /// The one kind of answer this client should get.
    pub expected: Kind,
    pub answers: BTreeMap<Kind, u64>,
    /// The first unexpected answers, with when they came.
    pub examples: Vec<String>,
}

impl Tally {
    pub fn new(client: &str, path: &'static str, expected: Kind) -> Self {
        Self {
            client: client.to_string(),
            path,
            expected,
            answers: BTreeMap::new(),
            examples: Vec::new(),
        }
    }

    /// Counts `count` answers of `kind`, received `at` into the run.
    pub fn add(&mut self, kind: Kind, count: u64, at: Duration) {
        if count == 0 {
            return;
        }
        if kind != self.expected && self.examples.len() < 5 {
            self.examples
                .push(format!("{}: {count} × {kind}", clock(at)));
        }
        *self.answers.entry(kind).or_default() += count;
    }

    pub fn total(&self) -> u64 {
        self.answers.values().sum()
    }

    pub fn unexpected(&self) -> u64 {
        self.total() - self.answers.get(&self.expected).copied().unwrap_or(0)
    }
}

/// The server's resident memory at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Since the soak began.
    pub at: Duration,
    /// VmRSS, in bytes.
    pub rss: u64,
    /// `reprise_live_instances` at the time, when the admin endpoint told.
    pub live: Option<u64>,
}

/// How memory developed over the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Memory {
    /// Too few samples after the warm-up to judge.
    TooFewSamples(usize),
    Judged {
        /// Median RSS of the first and of the last third, in bytes.
        first: u64,
        last: u64,
        /// How far `last` may be above `first`.
        allowed: u64,
    },
}

impl Memory {
    /// Judges `samples` taken after `warm_up`.
    pub fn judge(samples: &[Sample], warm_up: Duration) -> Memory {
        let rss: Vec<u64> = samples
            .iter()
            .filter(|s| s.at >= warm_up)
            .map(|s| s.rss)
            .collect();
        if rss.len() < MIN_SAMPLES {
            return Memory::TooFewSamples(rss.len());
        }
        let third = rss.len() / 3;
        let first = median(&rss[..third]);
        let last = median(&rss[rss.len() - third..]);
        let allowed = ALLOWED_GROWTH_BYTES.max((first as f64 * ALLOWED_GROWTH_FRACTION) as u64);
        Memory::Judged {
            first,
            last,
            allowed,
        }
    }

    pub fn flat(&self) -> bool {
        match *self {
            Memory::TooFewSamples(_) => false,
            Memory::Judged {
                first,
                last,
                allowed,
            } => last <= first + allowed,
        }
    }
}

fn median(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted[(sorted.len() - 1) / 2]
}

/// A whole soak run.
pub struct SoakReport {
    pub date: String,
    pub machine: String,
    /// The server's command line.
    pub command: String,
    /// How the clients were driven, in words.
    pub load: String,
    pub duration: Duration,
    /// Samples before this are the warm-up, not judged.
    pub warm_up: Duration,
    pub tallies: Vec<Tally>,
    pub samples: Vec<Sample>,
    /// The well-behaved client's throughput in each wrk segment.
    pub ok_per_sec: Vec<f64>,
    /// Counters from the server's `/metrics` at the end: (name, value).
    pub metrics: Vec<(String, u64)>,
}

impl SoakReport {
    pub fn unexpected(&self) -> u64 {
        self.tallies.iter().map(Tally::unexpected).sum()
    }

    /// Clients that got no answer of the kind they exist for: a run that
    /// never trapped (say) tested nothing about traps.
    pub fn untested(&self) -> Vec<&str> {
        self.tallies
            .iter()
            .filter(|t| !t.answers.contains_key(&t.expected))
            .map(|t| t.client.as_str())
            .collect()
    }

    pub fn memory(&self) -> Memory {
        Memory::judge(&self.samples, self.warm_up)
    }

    pub fn passed(&self) -> bool {
        self.unexpected() == 0 && self.untested().is_empty() && self.memory().flat()
    }

    /// The verdict in one line.
    pub fn verdict(&self) -> String {
        let mut reasons = Vec::new();
        match self.unexpected() {
            0 => reasons.push("no unexpected answer".to_string()),
            n => reasons.push(format!("**{n} unexpected answer(s)**")),
        }
        let untested = self.untested();
        if !untested.is_empty() {
            reasons.push(format!(
                "**no expected answer for: {}**",
                untested.join(", ")
            ));
        }
        reasons.push(match self.memory() {
            Memory::TooFewSamples(n) => {
                format!(
                    "**memory not judged: {n} sample(s) after the warm-up, {MIN_SAMPLES} needed**"
                )
            }
            memory @ Memory::Judged {
                first,
                last,
                allowed,
            } => format!(
                "{} (median of the last third {}, of the first third {}, at most {} more allowed)",
                if memory.flat() {
                    "RSS flat"
                } else {
                    "**RSS grew**"
                },
                mib(last),
                mib(first),
                mib(allowed)
            ),
        });
        let outcome = if self.passed() { "pass" } else { "**FAIL**" };
        format!("{outcome}: {}", reasons.join("; "))
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Reprise soak, {}\n", self.date);
        let _ = writeln!(out, "- machine: {}", self.machine);
        let _ = writeln!(out, "- server: `{}`", self.command);
        let _ = writeln!(
            out,
            "- load, for {}: {}",
            humantime::format_duration(self.duration),
            self.load
        );
        if !self.ok_per_sec.is_empty() {
            let mut rates = self.ok_per_sec.clone();
            rates.sort_by(f64::total_cmp);
            let _ = writeln!(
                out,
                "- `/ok` throughput per segment: median {:.0} req/s (min {:.0}, max {:.0})",
                rates[(rates.len() - 1) / 2],
                rates[0],
                rates[rates.len() - 1]
            );
        }
        let _ = writeln!(out, "- verdict: {}\n", self.verdict());

        out.push_str("## Answers by kind\n\n");
        out.push_str("| client | path | answer | count | |\n|---|---|---|---:|---|\n");
        for tally in &self.tallies {
            if tally.answers.is_empty() {
                let _ = writeln!(
                    out,
                    "| {} | `{}` | (none) | 0 | **expected {}** |",
                    tally.client, tally.path, tally.expected
                );
            }
            for (kind, count) in &tally.answers {
                let judged = if *kind == tally.expected {
                    "expected"
                } else {
                    "**unexpected**"
                };
                let _ = writeln!(
                    out,
                    "| {} | `{}` | {} | {count} | {judged} |",
                    tally.client, tally.path, kind
                );
            }
        }
        let examples: Vec<String> = self
            .tallies
            .iter()
            .flat_map(|t| {
                t.examples
                    .iter()
                    .map(move |e| format!("- {}: {e}", t.client))
            })
            .collect();
        if !examples.is_empty() {
            out.push_str("\nFirst unexpected answers:\n\n");
            for example in examples {
                let _ = writeln!(out, "{example}");
            }
        }

        if !self.metrics.is_empty() {
            out.push_str("\n## The server's counters at the end (`/metrics`)\n\n");
            out.push_str("| counter | value |\n|---|---:|\n");
            for (name, value) in &self.metrics {
                let _ = writeln!(out, "| `{name}` | {value} |");
            }
        }

        out.push_str("\n## RSS over time\n\n");
        let _ = writeln!(
            out,
            "Samples before {} are the warm-up, not judged.\n",
            clock(self.warm_up)
        );
        out.push_str("| time | RSS | live instances |\n|---:|---:|---:|\n");
        for sample in &self.samples {
            let live = sample.live.map_or("".to_string(), |n| n.to_string());
            let _ = writeln!(
                out,
                "| {} | {} | {live} |",
                clock(sample.at),
                mib(sample.rss)
            );
        }
        out
    }
}

/// `m:ss`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn samples(rss_mib: &[u64]) -> Vec<Sample> {
        rss_mib
            .iter()
            .enumerate()
            .map(|(i, &rss)| Sample {
                at: Duration::from_secs(10 * i as u64),
                rss: rss * MIB,
                live: Some(3),
            })
            .collect()
    }

    #[test]
    fn memory_is_flat_within_sixteen_mib_or_ten_percent() {
        // Warm-up (0:00, 0:10) not judged: it may climb as it likes.
        let warm = Duration::from_secs(20);
        let flat = Memory::judge(&samples(&[20, 90, 100, 101, 99, 105, 110, 115]), warm);
        assert_eq!(
            flat,
            Memory::Judged {
                first: 100 * MIB,
                last: 110 * MIB,
                allowed: 16 * MIB
            }
        );
        assert!(flat.flat());
        let grew = Memory::judge(&samples(&[20, 90, 100, 101, 99, 120, 130, 140]), warm);
        assert!(!grew.flat());
        // Large processes get 10%.
        let large = Memory::judge(&samples(&[0, 0, 1000, 1000, 1000, 1090, 1090, 1090]), warm);
        assert!(large.flat(), "{large:?}");
        assert_eq!(
            Memory::judge(&samples(&[1, 2, 3]), warm),
            Memory::TooFewSamples(1)
        );
        assert!(!Memory::TooFewSamples(1).flat());
    }

    fn report(tallies: Vec<Tally>, rss: &[u64]) -> SoakReport {
        SoakReport {
            date: "2026-12-01".into(),
            machine: "test".into(),
            command: "reprise serve soak.wasm".into(),
            load: "wrk".into(),
            duration: Duration::from_secs(600),
            warm_up: Duration::from_secs(20),
            tallies,
            samples: samples(rss),
            ok_per_sec: vec![9000.0, 10000.0, 11000.0],
            metrics: vec![("reprise_calls_total".into(), 42)],
        }
    }

    #[test]
    fn a_clean_flat_run_passes() {
        let mut ok = Tally::new("ok (wrk)", "/ok", Kind::Ok);
        ok.add(Kind::Ok, 1000, Duration::ZERO);
        let mut trap = Tally::new("trap", "/trap", Kind::Trap);
        trap.add(Kind::Trap, 10, Duration::ZERO);
        let report = report(vec![ok, trap], &[50, 60, 60, 60, 60, 60, 60, 60]);
        assert!(report.passed(), "{}", report.verdict());
        let markdown = report.to_markdown();
        assert!(
            markdown.contains("| ok (wrk) | `/ok` | 200 ok | 1000 | expected |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| 500 trap | 10 | expected |"),
            "{markdown}"
        );
        assert!(markdown.contains("| 1:10 | 60.0 MiB | 3 |"), "{markdown}");
        assert!(markdown.contains("median 10000 req/s (min 9000, max 11000)"));
        assert!(markdown.contains("- verdict: pass: no unexpected answer; RSS flat"));
    }

    #[test]
    fn an_unexpected_answer_or_a_missing_one_fails() {
        let mut ok = Tally::new("ok (wrk)", "/ok", Kind::Ok);
        ok.add(Kind::Ok, 1000, Duration::ZERO);
        ok.add(
            Kind::NoAnswer("wrk socket timeout".into()),
            2,
            Duration::from_secs(75),
        );
        let bomb = Tally::new("bomb", "/bomb", Kind::Memory);
        let report = report(vec![ok, bomb], &[50, 60, 60, 60, 60, 60, 60, 60]);
        assert_eq!(report.unexpected(), 2);
        assert_eq!(report.untested(), ["bomb"]);
        assert!(!report.passed());
        let markdown = report.to_markdown();
        assert!(
            markdown.contains("| no answer: wrk socket timeout | 2 | **unexpected** |"),
            "{markdown}"
        );
        assert!(markdown.contains("- ok (wrk): 1:15: 2 × no answer: wrk socket timeout"));
        assert!(
            markdown.contains("| bomb | `/bomb` | (none) | 0 | **expected 500 memory limit** |")
        );
        assert!(markdown.contains("**FAIL**"));
    }
}
