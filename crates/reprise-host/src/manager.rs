//! The instance manager: the one place that creates, counts and retires
//! component instances, whichever front end (HTTP, `run`, `call`) asks.
//!
//! It owns what lives once per loaded component (the engine, the
//! `InstancePre` with imports resolved once, the policy, the metrics) and
//! hands out stores for what lives once per instance ([`InstanceState`]).

use crate::component::one_line;
use crate::engine::{EPOCH_TICK, EngineHandle};
use crate::instance::{InstanceId, InstanceState};
use crate::linker::linker;
use crate::metrics::{Metrics, Retirement};
use crate::policy::Policy;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{Component, InstancePre};
use wasmtime::{AsContextMut, Store};

/// Per-instance limits the operator sets.
#[derive(Clone, Debug, Default)]
pub struct InstanceLimits {
    /// Hard cap on one instance's linear memory, in bytes; growing past it traps.
    pub max_memory: Option<u64>,
    /// Wall-clock limit on one call (and on instantiation).
    pub timeout: Option<Duration>,
}

/// Creates and accounts for the instances of one component.
pub struct InstanceManager {
    engine: EngineHandle,
    component: Component,
    pre: InstancePre<InstanceState>,
    limits: InstanceLimits,
    policy: Policy,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

/// Whether the component has shown it can start. An orchestrator routes
/// traffic to a replica only once one instance initialized successfully, so
/// a broken start function shows up as "not ready" with its message instead
/// of as a storm of 500s.
#[derive(Default)]
struct Readiness {
    initialized: AtomicBool,
    last_failure: Mutex<Option<String>>,
}

impl InstanceManager {
    /// Resolves the component's imports once, so each instantiation only
    /// allocates and runs start functions.
    pub fn new(
        engine: EngineHandle,
        component: Component,
        limits: InstanceLimits,
        policy: Policy,
    ) -> anyhow::Result<Self> {
        let linker = linker(&engine.engine)?;
        let pre = linker.instantiate_pre(&component).map_err(|e| {
            anyhow::anyhow!(
                "cannot link component: {}",
                one_line(&anyhow::Error::from(e))
            )
        })?;
        Ok(Self {
            engine,
            component,
            pre,
            limits,
            policy,
            next_id: AtomicU64::new(1),
            metrics: Arc::default(),
            readiness: Readiness::default(),
        })
    }

    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    pub fn component(&self) -> &Component {
        &self.component
    }

    pub fn instance_pre(&self) -> &InstancePre<InstanceState> {
        &self.pre
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn limits(&self) -> &InstanceLimits {
        &self.limits
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// A new store for the next instance, numbered in creation order, with
    /// its memory cap installed and its instantiation deadline armed.
    pub fn new_store(&self) -> Store<InstanceState> {
        let id: InstanceId = self.next_id.fetch_add(1, Relaxed);
        let mut store = Store::new(
            &self.engine.engine,
            InstanceState::new(id, self.limits.max_memory),
        );
        store.limiter(|state| &mut state.limits);
        if self.limits.timeout.is_some() {
            store.epoch_deadline_trap();
        }
        self.arm_deadline(&mut store);
        store
    }

    /// Restarts the per-call deadline: the next `timeout` of guest execution
    /// in this store is allowed, then it traps with an interrupt.
    pub fn arm_deadline(&self, mut store: impl AsContextMut<Data = InstanceState>) {
        if let Some(timeout) = self.limits.timeout {
            let ticks = timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()).max(1);
            store
                .as_context_mut()
                .set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        }
    }

    /// True once any instance initialized successfully.
    pub fn is_ready(&self) -> bool {
        self.readiness.initialized.load(Relaxed)
    }

    /// The message of the most recent failed initialization, if any.
    pub fn last_init_failure(&self) -> Option<String> {
        self.readiness.last_failure.lock().unwrap().clone()
    }

    /// Records a failed instantiation (a trapping start function, an
    /// exhausted pool): logged with the guest's message and kept for the
    /// readiness endpoint.
    pub fn instantiation_failed(&self, id: InstanceId, error: &wasmtime::Error) {
        let message = format!("{error:?}");
        tracing::error!(instance = id, "instantiation failed: {message}");
        self.metrics.instantiation_failures.fetch_add(1, Relaxed);
        *self.readiness.last_failure.lock().unwrap() = Some(message);
    }

    /// Records a successful instantiation.
    pub fn instance_created(&self, elapsed: Duration) {
        self.readiness.initialized.store(true, Relaxed);
        self.metrics.instances_created.fetch_add(1, Relaxed);
        self.metrics.live_instances.fetch_add(1, Relaxed);
        self.metrics.instantiation_latency.observe(elapsed);
    }

    /// Records that an instance is gone, and why.
    pub fn instance_retired(&self, id: InstanceId, reason: Retirement) {
        tracing::debug!(instance = id, reason = reason.as_str(), "instance retired");
        self.metrics.retired(reason);
    }
}
