//! Counters the operator reads from `/metrics` (Prometheus text format).
//!
//! Plain atomics: every instance and every call touches them, so they must
//! cost no locking on the hot path.

use crate::policy::Retirement;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 1.0, 10.0,
];

/// A cumulative latency histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Every metric Reprise exports.
#[derive(Default)]
pub struct Metrics {
    pub instances_created: AtomicU64,
    /// Instances created from a pre-initialization snapshot (`--preinit`).
    pub instances_from_snapshot: AtomicU64,
    pub instantiation_failures: AtomicU64,
    /// Calls that waited for an instance slot (`--max-instances`).
    pub instance_waits: AtomicU64,
    retired: [AtomicU64; Retirement::ALL.len()],
    pub calls: AtomicU64,
    /// Calls served by an instance that had served a call before.
    pub reused_calls: AtomicU64,
    pub call_errors: AtomicU64,
    pub live_instances: AtomicU64,
    pub warm_instances: AtomicU64,
    pub instantiation_latency: Histogram,
    pub call_latency: Histogram,
}

impl Metrics {
    pub fn retired(&self, reason: Retirement) {
        self.retired[reason as usize].fetch_add(1, Relaxed);
        self.live_instances.fetch_sub(1, Relaxed);
    }

    pub fn retired_count(&self, reason: Retirement) -> u64 {
        self.retired[reason as usize].load(Relaxed)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Relaxed)
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                value.load(Relaxed)
            );
        };
        counter(
            &mut out,
            "reprise_instances_created_total",
            "Component instances created.",
            &self.instances_created,
        );
        counter(
            &mut out,
            "reprise_instances_from_snapshot_total",
            "Instances created from the pre-initialization snapshot (init ran once, at load).",
            &self.instances_from_snapshot,
        );
        counter(
            &mut out,
            "reprise_instantiation_failures_total",
            "Instantiations (including init) that failed.",
            &self.instantiation_failures,
        );
        counter(
            &mut out,
            "reprise_instance_waits_total",
            "Calls that found every instance slot taken (--max-instances) and waited.",
            &self.instance_waits,
        );
        let _ = writeln!(
            out,
            "# HELP reprise_instances_retired_total Instances retired, by reason.\n\
             # TYPE reprise_instances_retired_total counter"
        );
        for reason in Retirement::ALL {
            let _ = writeln!(
                out,
                "reprise_instances_retired_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                self.retired_count(reason)
            );
        }
        counter(
            &mut out,
            "reprise_calls_total",
            "Export calls served.",
            &self.calls,
        );
        counter(
            &mut out,
            "reprise_reused_calls_total",
            "Calls served by an instance that had already served a call.",
            &self.reused_calls,
        );
        counter(
            &mut out,
            "reprise_call_errors_total",
            "Calls that ended in a trap, timeout or error.",
            &self.call_errors,
        );
        gauge(
            &mut out,
            "reprise_live_instances",
            "Instances currently alive.",
            &self.live_instances,
        );
        gauge(
            &mut out,
            "reprise_warm_instances",
            "Initialized, never-used instances waiting for a call.",
            &self.warm_instances,
        );
        self.instantiation_latency.render(
            &mut out,
            "reprise_instantiation_seconds",
            "Time to create and initialize an instance.",
        );
        self.call_latency.render(
            &mut out,
            "reprise_call_seconds",
            "Time from accepting a call to its response head.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retirements_are_counted_by_reason() {
        let m = Metrics::default();
        m.live_instances.store(2, Relaxed);
        m.retired(Retirement::Trap);
        m.retired(Retirement::MaxCalls);
        let text = m.render();
        assert!(text.contains("reprise_instances_retired_total{reason=\"trap\"} 1"));
        assert!(text.contains("reprise_instances_retired_total{reason=\"max-calls\"} 1"));
        assert!(text.contains("reprise_instances_retired_total{reason=\"idle\"} 0"));
        assert!(text.contains("reprise_live_instances 0"));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(70));
        h.observe(Duration::from_millis(3));
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.0001\"} 1"));
        assert!(out.contains("x_bucket{le=\"0.005\"} 2"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 2"));
        assert!(out.contains("x_count 2"));
    }
}
