//! The instance manager: the one place that creates, counts and retires
//! component instances, whichever front end (HTTP, `run`, `call`) asks.
//!
//! It owns what lives once per loaded component (the engine, the
//! `InstancePre` with imports resolved once, the policy, the metrics) and
//! hands out stores for what lives once per instance ([`InstanceState`]).

pub mod metrics;
mod set;
mod warm;

pub use crate::runtime::limits::InstanceLimits;
pub use set::{Bind, Lifecycle, Pool, Pooled};

use crate::policy::{CallDeadlines, CallToken, Policy, Retirement, ReuseBounds};
use crate::pool::metrics::Metrics;
use crate::runtime::component::one_line;
use crate::runtime::engine::{EngineHandle, YIELD_TICKS};
use crate::runtime::init::InitExport;
use crate::runtime::instance::{GuestEnvironment, InstanceId, InstanceSlot, InstanceState};
use crate::runtime::linker::linker;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Instance, InstancePre};
use wasmtime::{AsContextMut, Store, UpdateDeadline};

/// A holder of instances that are alive but not serving (parked between
/// calls, or pre-warmed). When a call needs room for a new instance and
/// none is left, such an instance is ended to make room: serving a call now
/// is worth more than keeping one ready.
pub trait Reclaim: Send + Sync {
    /// Ends one instance that is not serving, if there is one; true if it did.
    fn reclaim_one(&self) -> bool;
}

/// One concurrent call's entry in its instance's deadlines, removed when
/// the call ends in time.
pub struct DeadlineGuard {
    deadlines: Arc<Mutex<CallDeadlines>>,
    /// `None` once the deadline passed: the entry stays.
    token: Option<CallToken>,
}

impl DeadlineGuard {
    /// The call's deadline passed. Its client is answered with the timeout,
    /// but the guest task may run on (wasmtime 48 cannot cancel one task):
    /// the overdue entry stays, so the instance's next epoch check stops
    /// it, and the instance with it.
    pub fn passed(mut self) {
        self.token = None;
    }
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        if let Some(token) = self.token {
            self.deadlines.lock().unwrap().end(token);
        }
    }
}

/// Creates and accounts for the instances of one component.
pub struct InstanceManager {
    engine: EngineHandle,
    component: Component,
    pre: InstancePre<InstanceState>,
    /// The component's `reprise:init` export, found once.
    init: Option<InitExport>,
    /// The component is a pre-initialization snapshot: its init ran once at
    /// load, so instances skip it ([`Self::preinitialized`]).
    preinitialized: bool,
    limits: InstanceLimits,
    policy: Policy,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    /// The command line, variables and directories every instance sees.
    guest: GuestEnvironment,
    /// Set by [`Self::close`]: instances still alive are being torn down
    /// with the process, not failing.
    closing: AtomicBool,
    /// One permit per instance that may be alive at once.
    slots: Arc<Semaphore>,
    /// Whatever holds instances that are not serving, to reclaim from.
    reclaimers: Mutex<Vec<Weak<dyn Reclaim>>>,
    /// Whether running out of slots was logged: once is news, every time
    /// after that would be a flood.
    slots_ran_out: AtomicBool,
}

/// How long past the instantiation deadline initialization may take before
/// the wall clock gives up on it, so the epoch trap (which names where the
/// guest was) normally wins.
const INIT_GRACE: Duration = Duration::from_millis(250);

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
    /// Resolves the component's imports and finds its `reprise:init` export
    /// once, so each instantiation only allocates and runs initialization.
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
        let init = InitExport::find(&component)?;
        Ok(Self::linked(engine, component, pre, init, limits, policy))
    }

    /// A manager of a component already linked, with nothing counted yet.
    fn linked(
        engine: EngineHandle,
        component: Component,
        pre: InstancePre<InstanceState>,
        init: Option<InitExport>,
        limits: InstanceLimits,
        policy: Policy,
    ) -> Self {
        Self {
            engine,
            component,
            pre,
            init,
            preinitialized: false,
            policy,
            next_id: AtomicU64::new(1),
            metrics: Arc::default(),
            readiness: Readiness::default(),
            guest: GuestEnvironment::default(),
            closing: AtomicBool::new(false),
            slots: Arc::new(Semaphore::new(limits.max_instances)),
            reclaimers: Mutex::default(),
            slots_ran_out: AtomicBool::new(false),
            limits,
        }
    }

    /// A manager of the same linked component, guest and policy with room
    /// for one instance and counts of its own, made without linking again:
    /// `reprise check` runs each concurrent run on one instance of its own.
    /// An idle instance ends after `idle`: a second one that `ProxyHandler`
    /// starts when the first was briefly full waits no longer than that.
    /// Waiting for the one slot is the point here, so it is never logged as
    /// `--max-instances` running out.
    pub fn single(&self, idle: Duration) -> Self {
        let limits = InstanceLimits {
            max_instances: 1,
            ..self.limits.clone()
        };
        let policy = match &self.policy {
            Policy::Reuse(bounds) => Policy::Reuse(ReuseBounds {
                idle_timeout: bounds.idle_timeout.min(idle),
                ..bounds.clone()
            }),
            Policy::Fresh => Policy::Fresh,
        };
        let mut single = Self::linked(
            self.engine.clone(),
            self.component.clone(),
            self.pre.clone(),
            self.init.clone(),
            limits,
            policy,
        );
        single.preinitialized = self.preinitialized;
        single.guest = self.guest.clone();
        // Logged as already run out: waiting for the one slot is the point.
        single.slots_ran_out = AtomicBool::new(true);
        single
    }

    /// Gives every instance this command line, variables and directories,
    /// as a process expects from the shell that starts it.
    pub fn with_guest(mut self, guest: GuestEnvironment) -> Self {
        self.guest = guest;
        self
    }

    /// Marks the component as a pre-initialization snapshot
    /// (`runtime::preinit`): its init already ran, once, when it was taken,
    /// so instances start initialized and `init` is not called on them
    /// (the snapshot may still export it, for other hosts); each instance
    /// counts in `reprise_instances_from_snapshot_total`.
    pub fn preinitialized(mut self) -> Self {
        self.init = None;
        self.preinitialized = true;
        self
    }

    /// Whether instances come from a pre-initialization snapshot.
    pub fn is_preinitialized(&self) -> bool {
        self.preinitialized
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

    /// The component's `reprise:init` export, if it has one.
    pub fn init_export(&self) -> Option<&InitExport> {
        self.init.as_ref()
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

    /// Room for one more instance, if fewer than `max_instances` are alive.
    pub fn try_slot(&self) -> Option<InstanceSlot> {
        self.slots
            .clone()
            .try_acquire_owned()
            .ok()
            .map(InstanceSlot::new)
    }

    /// Room for one more instance that leaves room for another: what
    /// pre-warming may take, so that it never competes with calls for the
    /// last slot.
    pub fn try_spare_slot(&self) -> Option<InstanceSlot> {
        (self.slots.available_permits() > 1)
            .then(|| self.try_slot())
            .flatten()
    }

    /// Room for one more instance. When `max_instances` are alive, an
    /// instance that is not serving is ended to make room; with none, this
    /// waits for one to end: back-pressure instead of failed calls.
    pub async fn slot(&self) -> InstanceSlot {
        loop {
            if let Some(slot) = self.try_slot() {
                return slot;
            }
            if !self.reclaim_one(None) {
                return self.wait_for_slot().await;
            }
        }
    }

    /// Room for one more instance, once an instance ends (see
    /// [`Self::slot`], which first makes room if it can).
    pub async fn wait_for_slot(&self) -> InstanceSlot {
        if let Some(slot) = self.try_slot() {
            return slot;
        }
        self.metrics.instance_waits.fetch_add(1, Relaxed);
        if !self.slots_ran_out.swap(true, Relaxed) {
            tracing::warn!(
                "all {} instance slots are taken (--max-instances): calls now wait for an \
                 instance to end or become free",
                self.limits.max_instances
            );
        }
        let permit = self.slots.clone().acquire_owned().await;
        InstanceSlot::new(permit.expect("the slot semaphore is never closed"))
    }

    /// Registers a holder of non-serving instances to reclaim from; it is
    /// forgotten once dropped.
    pub fn add_reclaimer(&self, reclaimer: Weak<dyn Reclaim>) {
        let mut reclaimers = self.reclaimers.lock().unwrap();
        reclaimers.retain(|r| r.strong_count() > 0);
        reclaimers.push(reclaimer);
    }

    /// Ends one non-serving instance of a registered holder other than
    /// `spare` (a holder that would rather reuse its own instances than see
    /// them ended), making room for a new one; false if there was none.
    pub fn reclaim_one(&self, spare: Option<&dyn Reclaim>) -> bool {
        let holders: Vec<Arc<dyn Reclaim>> = self
            .reclaimers
            .lock()
            .unwrap()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|holder| spare.is_none_or(|own| !std::ptr::addr_eq(Arc::as_ptr(holder), own)))
            .collect();
        holders.iter().any(|holder| holder.reclaim_one())
    }

    /// A new store for the next instance, living in `slot`, numbered in
    /// creation order, with its memory cap installed and its instantiation
    /// deadline armed. A failure (a preopened directory gone) counts as a
    /// failed instantiation.
    pub fn new_store(&self, slot: InstanceSlot) -> wasmtime::Result<Store<InstanceState>> {
        let id: InstanceId = self.next_id.fetch_add(1, Relaxed);
        let state = InstanceState::new(id, self.limits.max_memory, &self.guest, slot)
            .inspect_err(|e| self.instantiation_failed(id, e))?;
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|state| &mut state.limits);
        if self.engine.interruptible {
            // Each epoch deadline is a moment to yield, or to stop a call
            // past its time limit.
            store.epoch_deadline_callback(|store| {
                let now = Instant::now();
                let state = store.data();
                let overdue = state.call_deadline.is_some_and(|at| now >= at)
                    || (state.concurrent_deadlines.get())
                        .is_some_and(|deadlines| deadlines.lock().unwrap().overdue(now));
                match overdue {
                    true => Err(wasmtime::Trap::Interrupt.into()),
                    false => Ok(UpdateDeadline::Yield(YIELD_TICKS)),
                }
            });
        }
        self.arm_deadline(&mut store);
        Ok(store)
    }

    /// Restarts the deadline of an instance that runs one call at a time
    /// (instantiation, a p2 request, `run`, `call`): guest code in this
    /// store may run for `timeout` from now, then it traps with an
    /// interrupt.
    pub fn arm_deadline(&self, mut store: impl AsContextMut<Data = InstanceState>) {
        if !self.engine.interruptible {
            return;
        }
        let mut store = store.as_context_mut();
        store.data_mut().call_deadline = self.limits.timeout.map(|t| Instant::now() + t);
        store.set_epoch_deadline(YIELD_TICKS);
    }

    /// Arms the deadline of one of several concurrent calls (p3): it never
    /// moves the deadlines of the calls already running, and goes when the
    /// returned guard is dropped (the call ended).
    pub fn arm_concurrent_deadline(
        &self,
        mut store: impl AsContextMut<Data = InstanceState>,
    ) -> Option<DeadlineGuard> {
        let timeout = self.limits.timeout.filter(|_| self.engine.interruptible)?;
        let store = store.as_context_mut();
        let deadlines = store
            .data()
            .concurrent_deadlines
            .get_or_init(Arc::default)
            .clone();
        let token = deadlines.lock().unwrap().start(Instant::now() + timeout);
        Some(DeadlineGuard {
            deadlines,
            token: Some(token),
        })
    }

    /// Creates an instance in `store` (from [`Self::new_store`]) and
    /// initializes it: instantiation runs the start functions, then the
    /// component's `reprise:init` export runs if it has one, together under
    /// the instantiation deadline. `exports` then loads what the front end
    /// calls (e.g. the wasi:http bindings), so an instance only counts once it
    /// is usable.
    ///
    /// The outcome is recorded: a success makes the component ready and
    /// counts, its latency including init; a failure is logged with the
    /// guest's message and kept for `/ready`.
    pub async fn instantiate<E>(
        &self,
        store: &mut Store<InstanceState>,
        exports: impl FnOnce(&mut Store<InstanceState>, &Instance) -> wasmtime::Result<E>,
    ) -> wasmtime::Result<E> {
        let start = Instant::now();
        let initialized = match self.limits.timeout {
            // A guest blocked in a host call (a connect that never answers)
            // is not interrupted by epochs; the wall clock backs them up.
            Some(timeout) => tokio::time::timeout(timeout + INIT_GRACE, self.initialize(store))
                .await
                .unwrap_or_else(|_| {
                    Err(wasmtime::Error::msg(format!(
                        "initialization did not finish within {timeout:?}"
                    )))
                }),
            None => self.initialize(store).await,
        };
        match initialized.and_then(|instance| exports(store, &instance)) {
            Ok(exports) => {
                // Initialization is over; each call arms its own deadline.
                store.data_mut().call_deadline = None;
                self.instance_created(start.elapsed());
                Ok(exports)
            }
            Err(e) => {
                self.instantiation_failed(store.data().id, &e);
                Err(e)
            }
        }
    }

    /// Start functions, then `init`: one initialization, so they share the
    /// deadline [`Self::new_store`] armed.
    async fn initialize(&self, store: &mut Store<InstanceState>) -> wasmtime::Result<Instance> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        if let Some(init) = &self.init {
            init.run(&mut *store, &instance).await?;
        }
        Ok(instance)
    }

    /// Marks the component as shutting down: the front ends are done with
    /// it, and instances still alive (idle reused ones, parked warm ones)
    /// are about to be dropped with the async runtime. Their workers then
    /// end without finishing, which wasmtime reports as an error; after
    /// `close` that is counted as a shutdown, not logged as a failure.
    pub fn close(&self) {
        self.closing.store(true, Relaxed);
    }

    /// Whether [`Self::close`] was called.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Relaxed)
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
    /// `init` that returned an error, an exhausted pool): logged with the
    /// guest's message and kept for the readiness endpoint.
    pub fn instantiation_failed(&self, id: InstanceId, error: &wasmtime::Error) {
        // The cause chain (the guest's message, a trap's wasm backtrace),
        // without a host backtrace: `RUST_BACKTRACE` would put one in `{:?}`.
        let message = format!("{error:#}");
        // Kept before it is logged: whoever reads the log line (an operator,
        // a test) finds `/ready` already saying it.
        *self.readiness.last_failure.lock().unwrap() = Some(message.clone());
        self.metrics.instantiation_failures.fetch_add(1, Relaxed);
        tracing::error!(instance = id, "instantiation failed: {message}");
    }

    /// Records that the component's init failed when run once at load
    /// (pre-initialization), for the readiness endpoint.
    pub fn init_failed_at_load(&self, message: &str) {
        *self.readiness.last_failure.lock().unwrap() = Some(message.to_string());
    }

    /// Records a successful instantiation.
    pub fn instance_created(&self, elapsed: Duration) {
        self.readiness.initialized.store(true, Relaxed);
        self.metrics.instances_created.fetch_add(1, Relaxed);
        if self.preinitialized {
            self.metrics.instances_from_snapshot.fetch_add(1, Relaxed);
        }
        self.metrics.live_instances.fetch_add(1, Relaxed);
        self.metrics.instantiation_latency.observe(elapsed);
    }

    /// Records that an instance is gone, and why.
    pub fn instance_retired(&self, id: InstanceId, reason: Retirement) {
        tracing::debug!(instance = id, reason = reason.as_str(), "instance retired");
        self.metrics.retired(reason);
    }
}
