//! The reuse policy as plain values: which instance may take which call.
//!
//! Everything here is a pure function of the operator's settings, the
//! component's hint and an instance's statistics, so it is tested without
//! wasm or I/O, and every front end (HTTP, `run`, `call`) consults the same
//! rules.

pub mod adopt;
pub mod chaos;

use reprise_hint::{Mode, ReuseHint};
use std::num::{NonZeroU32, NonZeroU64};
use std::time::{Duration, Instant};

/// How long an idle reused instance is kept by default, as in `wasmtime serve`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Concurrent calls one p3 instance takes by default, as in `wasmtime serve`.
pub const DEFAULT_MAX_CONCURRENCY: NonZeroU32 = NonZeroU32::new(16).unwrap();

/// The resolved policy an instance manager applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Every call gets a new instance.
    Fresh,
    /// Instances serve many calls within these bounds.
    Reuse(ReuseBounds),
}

/// Limits on one reused instance. `None` means unbounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReuseBounds {
    /// Calls one instance serves before it is retired.
    pub max_calls: Option<NonZeroU64>,
    /// Calls one instance serves at the same time (p3 only; p2 is always 1).
    pub max_concurrency: NonZeroU32,
    /// How long an instance may sit idle before it is retired.
    pub idle_timeout: Duration,
    /// How long an instance may live, counted from its creation.
    pub max_age: Option<Duration>,
    /// Linear memory, in bytes, past which an instance is retired after its
    /// current call (a soft ceiling, below the hard `--max-memory` cap).
    pub memory_ceiling: Option<u64>,
}

impl Default for ReuseBounds {
    fn default() -> Self {
        Self {
            max_calls: None,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_age: None,
            memory_ceiling: None,
        }
    }
}

impl std::fmt::Display for ReuseBounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.max_calls {
            Some(max) => write!(f, "max {max} calls")?,
            None => f.write_str("unlimited calls")?,
        }
        write!(
            f,
            " per instance, {} at once on a p3 instance, idle timeout {:?}",
            self.max_concurrency, self.idle_timeout
        )?;
        if let Some(age) = self.max_age {
            write!(f, ", max age {age:?}")?;
        }
        Ok(())
    }
}

/// Why an instance stopped serving calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retirement {
    /// It served every call its policy allowed (1 under `fresh`).
    MaxCalls,
    /// It sat idle past the idle timeout.
    Idle,
    /// It outlived its maximum age.
    Age,
    /// Its memory grew past the ceiling.
    Memory,
    /// The guest trapped.
    Trap,
    /// A call ran past its deadline.
    Timeout,
    /// The guest called `wasi:cli/exit`, which ends its instance: a command's
    /// normal way to finish with an exit code.
    Exit,
    /// The testing mode retired it on purpose.
    Chaos,
    /// The client of its call went away (connection closed, stream reset)
    /// before an answer: the call was stopped instead of running on for
    /// nobody.
    Cancelled,
    /// The server is shutting down.
    Shutdown,
}

impl Retirement {
    pub const ALL: [Retirement; 10] = [
        Retirement::MaxCalls,
        Retirement::Idle,
        Retirement::Age,
        Retirement::Memory,
        Retirement::Trap,
        Retirement::Timeout,
        Retirement::Exit,
        Retirement::Chaos,
        Retirement::Cancelled,
        Retirement::Shutdown,
    ];

    /// The label value used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Retirement::MaxCalls => "max-calls",
            Retirement::Idle => "idle",
            Retirement::Age => "age",
            Retirement::Memory => "memory",
            Retirement::Trap => "trap",
            Retirement::Timeout => "timeout",
            Retirement::Exit => "exit",
            Retirement::Chaos => "chaos",
            Retirement::Cancelled => "cancelled",
            Retirement::Shutdown => "shutdown",
        }
    }

    /// Why an instance that failed ended, given the reason it was already
    /// retired for, if any. A planned retirement (chaos's, the call limit,
    /// idle or age) only waits for the calls in flight to finish; when one
    /// of them fails instead, the failure is what ended the instance and is
    /// what the metrics count. A reason that is itself an end (a failure the
    /// front end saw first, a cancelled call) stands.
    pub fn on_failure(retired: Option<Retirement>, failure: Retirement) -> Retirement {
        match retired {
            Some(Retirement::Chaos | Retirement::MaxCalls | Retirement::Idle | Retirement::Age)
            | None => failure,
            Some(ended) => ended,
        }
    }
}

/// What an instance manager knows about one live instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstanceStats {
    /// Calls accepted so far, including the ones in flight.
    pub served: u64,
    /// Calls in flight right now.
    pub in_flight: u32,
    /// Time since the instance was created. Only a bound on age reads it,
    /// so the pool leaves it zero under a policy without one.
    pub age: Duration,
    /// Current linear memory size in bytes.
    pub memory: u64,
    /// Whether the instance can run calls concurrently (a p3 export).
    pub concurrent: bool,
}

/// The answer to "may this instance take another call?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Yes.
    Yes,
    /// Not now (it is at its concurrency limit); ask again later.
    NotNow,
    /// Never again: retire it once its calls finish, for this reason.
    Retire(Retirement),
}

impl Policy {
    /// Decides whether an instance with `stats` may take one more call.
    pub fn admit(&self, stats: &InstanceStats) -> Admit {
        let bounds = match self {
            Policy::Fresh if stats.served == 0 => return Admit::Yes,
            Policy::Fresh => return Admit::Retire(Retirement::MaxCalls),
            Policy::Reuse(bounds) => bounds,
        };
        if bounds
            .max_calls
            .is_some_and(|max| stats.served >= max.get())
        {
            return Admit::Retire(Retirement::MaxCalls);
        }
        if bounds.max_age.is_some_and(|max| stats.age >= max) {
            return Admit::Retire(Retirement::Age);
        }
        if bounds.memory_ceiling.is_some_and(|max| stats.memory > max) {
            return Admit::Retire(Retirement::Memory);
        }
        let limit = if stats.concurrent {
            bounds.max_concurrency.get()
        } else {
            1
        };
        if stats.in_flight >= limit {
            return Admit::NotNow;
        }
        Admit::Yes
    }

    /// How long an idle instance is kept, if it is kept at all.
    pub fn idle_timeout(&self) -> Option<Duration> {
        match self {
            Policy::Fresh => None,
            Policy::Reuse(bounds) => Some(bounds.idle_timeout),
        }
    }

    /// How long an instance may live, if it is bounded.
    pub fn max_age(&self) -> Option<Duration> {
        match self {
            Policy::Fresh => None,
            Policy::Reuse(bounds) => bounds.max_age,
        }
    }
}

/// What an instance is doing, for [`Policy::expiry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Parked between calls.
    Idle,
    /// Running calls; `since` is when the latest of them started.
    Serving,
    /// Its calls answered; the guest is still finishing (p3 post-return
    /// work, a body being written).
    Finishing,
}

/// Extra time past the call deadline before an instance is torn down from
/// outside, so the epoch trap (which produces a clean per-call error)
/// normally wins.
pub const EXPIRY_GRACE: Duration = Duration::from_millis(250);

impl Policy {
    /// When an instance created at `created`, in `phase` since `since`,
    /// stops being worth keeping, and why; `None` if it never does in that
    /// phase.
    ///
    /// Idle instances go at their idle timeout or their maximum age,
    /// whichever comes first; age only ends an instance between calls, so a
    /// call is never cut for it. A serving instance goes only when its
    /// latest call outlived `call_timeout` (plus [`EXPIRY_GRACE`]): the
    /// second line of defence behind the epoch deadline, for a guest blocked
    /// in a host call, which epochs do not interrupt. A finishing one (every
    /// call answered, a body still being written) gets as long again from
    /// its latest answer, as a p2 call's time limit covers its body: a p3
    /// body that stalls must not hold its instance for good.
    pub fn expiry(
        &self,
        created: Instant,
        phase: Phase,
        since: Instant,
        call_timeout: Option<Duration>,
    ) -> Option<(Instant, Retirement)> {
        match phase {
            Phase::Idle => {
                let idle = self.idle_timeout().map(|t| (since + t, Retirement::Idle));
                let age = self.max_age().map(|max| (created + max, Retirement::Age));
                match (idle, age) {
                    (Some(idle), Some(age)) => Some(if age.0 <= idle.0 { age } else { idle }),
                    (idle, age) => idle.or(age),
                }
            }
            Phase::Serving | Phase::Finishing => {
                call_timeout.map(|t| (since + t + EXPIRY_GRACE, Retirement::Timeout))
            }
        }
    }
}

/// The deadlines of the calls in flight on one instance.
///
/// A p3 instance runs several calls at once, each with its own deadline;
/// the instance's epoch check stops guest code once the earliest passes. A
/// call that starts later never moves an earlier call's deadline, and one
/// that ends takes its deadline with it.
#[derive(Debug, Default)]
pub struct CallDeadlines {
    next: u64,
    pending: Vec<(CallToken, Instant)>,
}

/// Names one call's entry in [`CallDeadlines`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallToken(u64);

impl CallDeadlines {
    /// Records a call that must finish by `at`.
    pub fn start(&mut self, at: Instant) -> CallToken {
        let token = CallToken(self.next);
        self.next += 1;
        self.pending.push((token, at));
        token
    }

    /// Forgets the deadline of a call that ended.
    pub fn end(&mut self, token: CallToken) {
        self.pending.retain(|(t, _)| *t != token);
    }

    /// The deadline that passes first.
    pub fn earliest(&self) -> Option<Instant> {
        self.pending.iter().map(|(_, at)| *at).min()
    }

    /// Whether some call in flight is past its deadline at `now`.
    pub fn overdue(&self, now: Instant) -> bool {
        self.earliest().is_some_and(|at| now >= at)
    }
}

/// What the operator chose with `--policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PolicyChoice {
    /// A new instance for every call, whatever the component declares.
    Fresh,
    /// Reuse instances, within the operator's and the component's bounds.
    Reuse,
    /// Follow the component's reuse hint; no hint means fresh.
    #[default]
    Auto,
}

/// Reuse bounds the operator set with flags; `None` takes the host default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReuseFlags {
    pub max_calls: Option<NonZeroU64>,
    pub max_concurrency: Option<NonZeroU32>,
    pub idle_timeout: Option<Duration>,
    pub max_age: Option<Duration>,
    pub memory_ceiling: Option<u64>,
}

/// The policy to apply, and what the operator should be told about how the
/// component's hint was (or was not) honored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub policy: Policy,
    pub notes: Vec<String>,
}

/// Combines the operator's choice with the component's effective hint.
///
/// The hint is advisory, so the operator's explicit `fresh` or `reuse` wins,
/// with a note when it contradicts the component. Whenever instances are
/// reused, the hint's bounds clamp the operator's: the host never lets an
/// instance serve more calls, or more at once, than its producer declared.
pub fn resolve(choice: PolicyChoice, hint: Option<&ReuseHint>, flags: &ReuseFlags) -> Resolution {
    let declared_reuse = hint.filter(|h| h.mode() == Mode::Reuse);
    let declared_fresh = hint.is_some_and(|h| h.mode() == Mode::Fresh);
    let mut notes = Vec::new();
    let reuse = match choice {
        PolicyChoice::Fresh => {
            if let Some(hint) = declared_reuse {
                notes.push(format!(
                    "the component asks to be reused (hint `{hint}`), but --policy fresh gives \
                     every call a new instance; run with --policy auto (or --policy reuse) to honor it"
                ));
            }
            false
        }
        PolicyChoice::Auto => declared_reuse.is_some(),
        PolicyChoice::Reuse => {
            if declared_fresh {
                notes.push(
                    "the component declares it is not designed to be reused (hint `v1 fresh`), \
                     but --policy reuse reuses it anyway; expect state to carry over between calls"
                        .to_string(),
                );
            }
            true
        }
    };
    if !reuse {
        return Resolution {
            policy: Policy::Fresh,
            notes,
        };
    }
    Resolution {
        policy: Policy::Reuse(reuse_bounds(declared_reuse, flags)),
        notes,
    }
}

/// The bounds of a reused instance: the operator's flags (or the host
/// defaults), clamped by whatever the component's `reuse` hint declares.
fn reuse_bounds(declared: Option<&ReuseHint>, flags: &ReuseFlags) -> ReuseBounds {
    let max_calls = min_some(flags.max_calls, declared.and_then(|h| h.max_calls()));
    let max_concurrency = flags
        .max_concurrency
        .unwrap_or(DEFAULT_MAX_CONCURRENCY)
        .min(
            declared
                .and_then(|h| h.max_concurrency())
                .unwrap_or(NonZeroU32::MAX),
        );
    ReuseBounds {
        max_calls,
        max_concurrency,
        idle_timeout: flags.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
        max_age: flags.max_age,
        memory_ceiling: flags.memory_ceiling,
    }
}

impl Resolution {
    /// The policy under the testing mode: instances are reused even when
    /// the component is unhinted or declares `fresh`, because the component
    /// model allows it and production hosts do it; `respect_hint` keeps a
    /// fresh policy fresh instead.
    ///
    /// The reuse chaos forces keeps every bound the operator set and every
    /// bound the component declared (a `reuse` hint overridden by `--policy
    /// fresh` still says how many calls an instance takes at once): chaos
    /// reuses more than asked, never beyond what was declared.
    pub fn under_chaos(
        mut self,
        respect_hint: bool,
        hint: Option<&ReuseHint>,
        flags: &ReuseFlags,
    ) -> Self {
        if self.policy == Policy::Fresh && !respect_hint {
            self.notes.push(
                "chaos: reusing instances although the policy is fresh, as other hosts may; \
                 pass --chaos-respect-hint to keep every call fresh"
                    .to_string(),
            );
            let declared = hint.filter(|h| h.mode() == Mode::Reuse);
            self.policy = Policy::Reuse(reuse_bounds(declared, flags));
        }
        self
    }
}

/// The smaller of two optional limits, where `None` means unlimited.
fn min_some<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(served: u64, in_flight: u32) -> InstanceStats {
        InstanceStats {
            served,
            in_flight,
            ..Default::default()
        }
    }

    #[test]
    fn a_failure_outranks_a_planned_retirement_but_not_an_earlier_end() {
        use Retirement::*;
        // Chaos picked an instance while its call ran past its deadline:
        // the instance ended by the timeout.
        assert_eq!(Retirement::on_failure(Some(Chaos), Timeout), Timeout);
        for planned in [MaxCalls, Idle, Age] {
            assert_eq!(Retirement::on_failure(Some(planned), Memory), Memory);
        }
        assert_eq!(Retirement::on_failure(None, Trap), Trap);
        // The front end saw the cause first (the client left, the memory
        // cap behind a missing response).
        assert_eq!(Retirement::on_failure(Some(Cancelled), Trap), Cancelled);
        assert_eq!(Retirement::on_failure(Some(Memory), Trap), Memory);
    }

    #[test]
    fn fresh_admits_exactly_one_call() {
        assert_eq!(Policy::Fresh.admit(&stats(0, 0)), Admit::Yes);
        assert_eq!(
            Policy::Fresh.admit(&stats(1, 0)),
            Admit::Retire(Retirement::MaxCalls)
        );
        assert_eq!(
            Policy::Fresh.admit(&stats(1, 1)),
            Admit::Retire(Retirement::MaxCalls)
        );
    }

    #[test]
    fn fresh_keeps_no_idle_instance() {
        assert_eq!(Policy::Fresh.idle_timeout(), None);
    }

    fn hint(text: &str) -> ReuseHint {
        text.parse().unwrap()
    }

    fn bounds(resolution: &Resolution) -> &ReuseBounds {
        match &resolution.policy {
            Policy::Reuse(bounds) => bounds,
            Policy::Fresh => panic!("expected reuse, got fresh"),
        }
    }

    #[test]
    fn auto_follows_the_hint() {
        let flags = ReuseFlags::default();
        let cases = [
            (None, false),
            (Some("v1 fresh"), false),
            (Some("v1 reuse"), true),
            (Some("v1 reuse max-calls=5"), true),
        ];
        for (text, reused) in cases {
            let h = text.map(hint);
            let resolution = resolve(PolicyChoice::Auto, h.as_ref(), &flags);
            assert_eq!(
                matches!(resolution.policy, Policy::Reuse(_)),
                reused,
                "{text:?}"
            );
            assert!(
                resolution.notes.is_empty(),
                "{text:?}: {:?}",
                resolution.notes
            );
        }
    }

    #[test]
    fn fresh_policy_explains_an_ignored_reuse_hint() {
        let h = hint("v1 reuse max-calls=100");
        let resolution = resolve(PolicyChoice::Fresh, Some(&h), &ReuseFlags::default());
        assert_eq!(resolution.policy, Policy::Fresh);
        assert_eq!(resolution.notes.len(), 1);
        assert!(resolution.notes[0].contains("v1 reuse max-calls=100"));
        assert!(resolution.notes[0].contains("--policy auto"));
    }

    #[test]
    fn reuse_policy_warns_about_a_fresh_hint() {
        let h = hint("v1 fresh");
        let resolution = resolve(PolicyChoice::Reuse, Some(&h), &ReuseFlags::default());
        assert!(matches!(resolution.policy, Policy::Reuse(_)));
        assert!(resolution.notes[0].contains("not designed to be reused"));
    }

    #[test]
    fn hint_bounds_clamp_larger_flags() {
        let h = hint("v1 reuse max-calls=3 max-concurrency=2");
        let flags = ReuseFlags {
            max_calls: NonZeroU64::new(100),
            max_concurrency: NonZeroU32::new(50),
            ..ReuseFlags::default()
        };
        let resolution = resolve(PolicyChoice::Reuse, Some(&h), &flags);
        assert_eq!(bounds(&resolution).max_calls, NonZeroU64::new(3));
        assert_eq!(bounds(&resolution).max_concurrency.get(), 2);
    }

    #[test]
    fn smaller_flags_win_over_hint_bounds() {
        let h = hint("v1 reuse max-calls=300");
        let flags = ReuseFlags {
            max_calls: NonZeroU64::new(10),
            ..ReuseFlags::default()
        };
        let resolution = resolve(PolicyChoice::Auto, Some(&h), &flags);
        assert_eq!(bounds(&resolution).max_calls, NonZeroU64::new(10));
        assert_eq!(bounds(&resolution).max_concurrency, DEFAULT_MAX_CONCURRENCY);
    }

    #[test]
    fn reuse_respects_max_calls_and_concurrency() {
        let policy = Policy::Reuse(ReuseBounds {
            max_calls: NonZeroU64::new(3),
            max_concurrency: NonZeroU32::new(2).unwrap(),
            ..ReuseBounds::default()
        });
        assert_eq!(policy.admit(&stats(2, 0)), Admit::Yes);
        assert_eq!(
            policy.admit(&stats(3, 0)),
            Admit::Retire(Retirement::MaxCalls)
        );
        // p2 instances take one call at a time whatever the bound says.
        assert_eq!(policy.admit(&stats(1, 1)), Admit::NotNow);
        let concurrent = |in_flight| InstanceStats {
            served: 1,
            in_flight,
            concurrent: true,
            ..Default::default()
        };
        assert_eq!(policy.admit(&concurrent(1)), Admit::Yes);
        assert_eq!(policy.admit(&concurrent(2)), Admit::NotNow);
    }

    #[test]
    fn age_and_memory_retire_between_calls() {
        let policy = Policy::Reuse(ReuseBounds {
            max_age: Some(Duration::from_secs(10)),
            memory_ceiling: Some(1 << 20),
            ..ReuseBounds::default()
        });
        let old = InstanceStats {
            served: 1,
            age: Duration::from_secs(10),
            ..Default::default()
        };
        assert_eq!(policy.admit(&old), Admit::Retire(Retirement::Age));
        let big = InstanceStats {
            served: 1,
            memory: 2 << 20,
            ..Default::default()
        };
        assert_eq!(policy.admit(&big), Admit::Retire(Retirement::Memory));
    }

    #[test]
    fn resolved_bounds_never_exceed_the_hint() {
        // Exhaustive over small values: whatever the operator asks, a reused
        // instance's bounds stay within what the component declared.
        let values = [None, Some(1u32), Some(2), Some(7), Some(1000)];
        for hint_calls in values {
            for hint_conc in values {
                for flag_calls in values {
                    for flag_conc in values {
                        let h = ReuseHint::reuse(
                            hint_calls.and_then(|v| NonZeroU64::new(v.into())),
                            hint_conc.and_then(NonZeroU32::new),
                        );
                        let flags = ReuseFlags {
                            max_calls: flag_calls.and_then(|v| NonZeroU64::new(v.into())),
                            max_concurrency: flag_conc.and_then(NonZeroU32::new),
                            ..ReuseFlags::default()
                        };
                        for choice in [PolicyChoice::Auto, PolicyChoice::Reuse] {
                            let resolution = resolve(choice, Some(&h), &flags);
                            let b = bounds(&resolution);
                            if let Some(max) = h.max_calls() {
                                assert!(b.max_calls.is_some_and(|m| m <= max));
                            }
                            if let Some(max) = flags.max_calls {
                                assert!(b.max_calls.is_some_and(|m| m <= max));
                            }
                            if let Some(max) = h.max_concurrency() {
                                assert!(b.max_concurrency <= max);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn chaos_reuses_fresh_components_unless_told_not_to() {
        let fresh = resolve(PolicyChoice::Auto, None, &ReuseFlags::default());
        let chaos = fresh
            .clone()
            .under_chaos(false, None, &ReuseFlags::default());
        assert!(matches!(chaos.policy, Policy::Reuse(_)));
        assert!(chaos.notes[0].contains("--chaos-respect-hint"));
        assert_eq!(
            fresh
                .clone()
                .under_chaos(true, None, &ReuseFlags::default()),
            fresh
        );
    }

    #[test]
    fn chaos_keeps_the_operators_and_the_components_bounds() {
        // `--policy fresh` over a `reuse max-concurrency=1` hint, with chaos:
        // chaos reuses, but never beyond what was declared or asked.
        let h = hint("v1 reuse max-calls=50 max-concurrency=1");
        let flags = ReuseFlags {
            max_calls: NonZeroU64::new(7),
            idle_timeout: Some(Duration::from_millis(300)),
            memory_ceiling: Some(1 << 20),
            ..ReuseFlags::default()
        };
        let chaos =
            resolve(PolicyChoice::Fresh, Some(&h), &flags).under_chaos(false, Some(&h), &flags);
        let b = bounds(&chaos);
        assert_eq!(b.max_concurrency.get(), 1);
        assert_eq!(b.max_calls, NonZeroU64::new(7));
        assert_eq!(b.idle_timeout, Duration::from_millis(300));
        assert_eq!(b.memory_ceiling, Some(1 << 20));
        // Unhinted: the operator's flags still hold.
        let unhinted = resolve(PolicyChoice::Auto, None, &flags).under_chaos(false, None, &flags);
        assert_eq!(bounds(&unhinted).max_calls, NonZeroU64::new(7));
        assert_eq!(bounds(&unhinted).idle_timeout, Duration::from_millis(300));
        // A `fresh` hint has no bounds to add.
        let f = hint("v1 fresh");
        let fresh = resolve(PolicyChoice::Auto, Some(&f), &ReuseFlags::default()).under_chaos(
            false,
            Some(&f),
            &ReuseFlags::default(),
        );
        assert_eq!(bounds(&fresh), &ReuseBounds::default());
    }

    #[test]
    fn idle_instances_expire_at_the_idle_timeout_or_their_age() {
        let t0 = Instant::now();
        let policy = Policy::Reuse(ReuseBounds {
            idle_timeout: Duration::from_secs(1),
            max_age: Some(Duration::from_secs(10)),
            ..ReuseBounds::default()
        });
        let parked = t0 + Duration::from_secs(2);
        assert_eq!(
            policy.expiry(t0, Phase::Idle, parked, None),
            Some((parked + Duration::from_secs(1), Retirement::Idle))
        );
        // Parked a moment before its age runs out: age comes first.
        let late = t0 + Duration::from_millis(9_500);
        assert_eq!(
            policy.expiry(t0, Phase::Idle, late, None),
            Some((t0 + Duration::from_secs(10), Retirement::Age))
        );
        assert_eq!(Policy::Fresh.expiry(t0, Phase::Idle, parked, None), None);
    }

    #[test]
    fn serving_and_finishing_instances_expire_only_past_the_call_timeout() {
        let t0 = Instant::now();
        let policy = Policy::Reuse(ReuseBounds {
            max_age: Some(Duration::from_millis(1)),
            ..ReuseBounds::default()
        });
        let started = t0 + Duration::from_secs(5);
        // Age never cuts a call.
        assert_eq!(policy.expiry(t0, Phase::Serving, started, None), None);
        assert_eq!(
            policy.expiry(t0, Phase::Serving, started, Some(Duration::from_secs(2))),
            Some((
                started + Duration::from_secs(2) + EXPIRY_GRACE,
                Retirement::Timeout
            ))
        );
        assert_eq!(
            policy.expiry(t0, Phase::Finishing, started, Some(Duration::from_secs(2))),
            Some((
                started + Duration::from_secs(2) + EXPIRY_GRACE,
                Retirement::Timeout
            ))
        );
        assert_eq!(policy.expiry(t0, Phase::Finishing, started, None), None);
    }

    #[test]
    fn a_later_call_never_moves_an_earlier_calls_deadline() {
        let t0 = Instant::now();
        let mut deadlines = CallDeadlines::default();
        let first = deadlines.start(t0 + Duration::from_secs(1));
        let second = deadlines.start(t0 + Duration::from_secs(3));
        assert_eq!(deadlines.earliest(), Some(t0 + Duration::from_secs(1)));
        assert!(deadlines.overdue(t0 + Duration::from_secs(1)));
        assert!(!deadlines.overdue(t0 + Duration::from_millis(999)));
        // The first call ended: only the second's deadline is left.
        deadlines.end(first);
        assert!(!deadlines.overdue(t0 + Duration::from_secs(2)));
        deadlines.end(second);
        assert_eq!(deadlines.earliest(), None);
    }
}
