//! The reuse policy as plain values: which instance may take which call.
//!
//! Everything here is a pure function of the operator's settings, the
//! component's hint and an instance's statistics, so it is tested without
//! wasm or I/O, and every front end (HTTP, `run`, `call`) consults the same
//! rules.

use crate::metrics::Retirement;
use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

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

/// What an instance manager knows about one live instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstanceStats {
    /// Calls accepted so far, including the ones in flight.
    pub served: u64,
    /// Calls in flight right now.
    pub in_flight: u32,
    /// Time since the instance was created.
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
}
