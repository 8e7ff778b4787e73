//! Dispatching HTTP requests to component instances: one set of instances
//! with one policy.
//!
//! p3 sets are driven by `wasmtime_wasi_http::handler::ProxyHandler`, which
//! runs each instance as a worker task that pulls requests from a shared
//! queue, drives p3 concurrency with guest backpressure, and enforces
//! expirations even when a guest spins inside the store. p2 sets, whose
//! calls each take a whole instance, are driven by `direct.rs` on the
//! request's own task (unless the component needed an engine with
//! concurrency support). Both go through the same three policy hooks:
//! - [`HandlerState::instantiate`]: instances come from the shared
//!   [`InstanceManager`] (numbered, counted, memory-capped, deadline-armed);
//! - [`WorkerState::should_accept_request`]: the pure [`Policy::admit`]
//!   decides whether an instance takes another call;
//! - [`Expiration::deadline`]: idle timeout, maximum age and the call
//!   deadline retire instances (`ProxyHandler` polls it as the
//!   [`WorkerExpiration`]; `direct.rs` checks it for parked instances).
//!
//! Neither driver chooses *which* instance serves a call (any available one
//! takes the next request); features that need that choice keep several
//! sets and pick one (see `route.rs`).

use super::direct::IdleSet;
use super::warm::Warmer;
use crate::runtime::failure::CallError;
use crate::runtime::instance::{InstanceId, InstanceState};
use crate::pool::{InstanceManager, Reclaim};
use crate::runtime::instance::InstanceSlot;
use crate::policy::Retirement;
use crate::policy::{Admit, DEFAULT_IDLE_TIMEOUT, InstanceStats, Phase, Policy};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};

/// The [`HandlerState`] of Reprise's HTTP front end. Cheap to clone.
#[derive(Clone)]
pub struct Dispatch(pub(super) Arc<DispatchInner>);

pub(super) struct DispatchInner {
    pub(super) manager: Arc<InstanceManager>,
    exports: HandlerIndices,
    /// Whether the export is p3 (`wasi:http/handler`), which can run calls
    /// concurrently on one instance.
    concurrent: bool,
    /// p2 instances between calls (see `direct.rs`).
    pub(super) idle: Mutex<IdleSet>,
    /// Signalled when an instance is parked in `idle`, for the calls (their
    /// number in `waiting`) waiting for room to create one.
    pub(super) parked: Notify,
    pub(super) waiting: AtomicUsize,
    /// Instantiated, initialized, never-used instances. `instantiate` takes
    /// from here first, so start functions run before traffic arrives.
    warm: Mutex<VecDeque<ProxyInstance>>,
    /// How many warm instances to keep ready.
    prewarm: usize,
    /// The policy this set of instances follows. Usually the manager's; an
    /// isolation front end runs unkeyed requests fresh, chaos reuses.
    policy: Policy,
    /// Every instance created here that may still be alive, so the testing
    /// mode can retire them on purpose.
    live: Mutex<Vec<Weak<Lifecycle>>>,
    /// The thread that refills `warm` when an instance is taken from it;
    /// present when `prewarm` is not zero.
    warmer: Option<Warmer>,
}

pub(super) type ProxyInstance = Instance<InstanceState, Expiration, Worker>;

/// A set gives up an idle instance first (the least recently used), then a
/// warm one. Instances inside `ProxyHandler`'s workers are out of reach;
/// they end at their idle timeout.
impl Reclaim for DispatchInner {
    fn reclaim_one(&self) -> bool {
        let taken = self.idle.lock().unwrap().take_oldest();
        let instance = taken.or_else(|| {
            let instance = self.warm.lock().unwrap().pop_back()?;
            self.manager.metrics().warm_instances.fetch_sub(1, Relaxed);
            Some(instance)
        });
        let Some(instance) = instance else {
            return false;
        };
        instance.state.retire(Retirement::Idle);
        discard(instance);
        true
    }
}

/// Which end of the warm set: the oldest instance serves next (it has
/// waited longest), the newest is the one to let go.
enum End {
    Oldest,
    Newest,
}

/// Ends a parked instance that will never serve, accounting for it with the
/// reason its lifecycle holds.
pub(super) fn discard(instance: ProxyInstance) {
    let Instance { store, state, .. } = instance;
    WorkerState::drop(&state, store, Ok(()));
}

impl Dispatch {
    pub fn new(
        manager: Arc<InstanceManager>,
        pre: ProxyPre<InstanceState>,
        prewarm: usize,
        policy: Policy,
    ) -> Self {
        let concurrent = matches!(pre, ProxyPre::P3(_));
        let set = Self(Arc::new_cyclic(|this: &Weak<DispatchInner>| {
            let this = this.clone();
            let warmer = (prewarm > 0).then(|| {
                Warmer::start(move |runtime| match this.upgrade() {
                    // Once the component is closing, the runtime is about to
                    // go; no more instances are worth creating.
                    Some(inner) if !inner.manager.is_closing() => {
                        runtime.block_on(Dispatch(inner).refill());
                        true
                    }
                    _ => false,
                })
            });
            let warmer = match warmer.transpose() {
                Ok(warmer) => warmer,
                Err(e) => {
                    tracing::warn!(
                        "cannot start the warming thread ({e}); warm instances will not be refilled"
                    );
                    None
                }
            };
            DispatchInner {
                manager,
                exports: HandlerIndices::new(&pre),
                concurrent,
                idle: Mutex::default(),
                parked: Notify::new(),
                waiting: AtomicUsize::new(0),
                warm: Mutex::default(),
                prewarm,
                policy,
                live: Mutex::default(),
                warmer,
            }
        }));
        let reclaimer: Weak<dyn Reclaim> = Arc::downgrade(&set.0) as Weak<DispatchInner>;
        set.0.manager.add_reclaimer(reclaimer);
        set
    }

    /// Retires one instance of this set that has served a call and still
    /// takes calls (once its calls finish), so that the next call may land on
    /// a never-used one. Which one is `pick` modulo their number: under serial
    /// traffic there is just one, the instance that would serve the next
    /// call. Parked warm instances are never used, so they stay.
    pub fn retire_one_used(&self, pick: u64, reason: Retirement) {
        let mut live = self.0.live.lock().unwrap();
        live.retain(|lifecycle| lifecycle.strong_count() > 0);
        let used: Vec<Arc<Lifecycle>> = live
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|l| l.accepted.load(Relaxed) > 0 && !l.is_retired())
            .collect();
        if !used.is_empty() {
            let index = usize::try_from(pick % used.len() as u64).unwrap_or(0);
            used[index].retire(reason);
        }
    }

    /// Whether no instance of this set is alive (serving, idle or warm), so
    /// dropping the set loses nothing but its bookkeeping.
    pub fn is_unused(&self) -> bool {
        let live = self.0.live.lock().unwrap();
        live.iter().all(|lifecycle| lifecycle.strong_count() == 0)
    }

    /// Creates one instance ahead of traffic and parks it in the warm set,
    /// so that readiness reflects a real, successful initialization, then
    /// fills the warm set up to its target. Returns
    /// the instantiation error, if any; it is also recorded on the manager.
    pub async fn warm_up(&self) -> wasmtime::Result<()> {
        let instance = self.create(self.0.manager.slot().await).await?;
        self.park(instance);
        self.clone().refill().await;
        if self.0.warm.lock().unwrap().len() > self.0.prewarm {
            // The instance that proved readiness is beyond the target (0):
            // like any idle instance, it goes after the idle timeout, so a
            // set with no traffic scales down to zero.
            let idle = self.0.policy.idle_timeout().unwrap_or(DEFAULT_IDLE_TIMEOUT);
            let this = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(idle).await;
                this.trim_warm();
            });
        }
        Ok(())
    }

    /// Retires parked instances beyond the warm target, as idle.
    fn trim_warm(&self) {
        while self.0.warm.lock().unwrap().len() > self.0.prewarm {
            let Some(instance) = self.unpark(End::Newest) else {
                return;
            };
            instance.state.lifecycle.retire(Retirement::Idle);
            discard(instance);
        }
    }

    /// Takes one instance out of the warm set.
    fn unpark(&self, end: End) -> Option<ProxyInstance> {
        let instance = {
            let mut warm = self.0.warm.lock().unwrap();
            match end {
                End::Oldest => warm.pop_front(),
                End::Newest => warm.pop_back(),
            }
        }?;
        self.0
            .manager
            .metrics()
            .warm_instances
            .fetch_sub(1, Relaxed);
        Some(instance)
    }

    /// Tops the warm set up to its target, one instance at a time. Failures
    /// are recorded by `create` and end the attempt: retrying a failing
    /// initialization in a loop would only hide it behind log noise.
    async fn refill(self) {
        while self.0.warm.lock().unwrap().len() < self.0.prewarm {
            let Some(slot) = self.0.manager.try_spare_slot() else {
                // Calls need the room; the next one to take a warm
                // instance asks again.
                return;
            };
            match self.create(slot).await {
                Ok(instance) => self.park(instance),
                Err(_) => break,
            }
        }
    }

    fn park(&self, instance: ProxyInstance) {
        self.0.warm.lock().unwrap().push_back(instance);
        self.0
            .manager
            .metrics()
            .warm_instances
            .fetch_add(1, Relaxed);
    }

    /// A parked instance that may still take calls. One the policy would
    /// refuse (it outlived `--max-age` while parked) is discarded here: a
    /// worker that refuses its very first request would strand it.
    pub(super) fn take_warm(&self) -> Option<ProxyInstance> {
        loop {
            let instance = self.unpark(End::Oldest);
            // Also when none was left: a refill that found no room gave up.
            if let Some(warmer) = &self.0.warmer {
                warmer.wake();
            }
            let instance = instance?;
            if let ShouldAccept::Never = instance.state.should_accept_request(0, 0) {
                discard(instance);
                continue;
            }
            return Some(instance);
        }
    }

    /// Creates and initializes a new instance through the manager (start
    /// functions, then the component's `reprise:init` export if any), and
    /// loads its HTTP handler, in `slot`.
    pub(super) async fn create(&self, slot: InstanceSlot) -> wasmtime::Result<ProxyInstance> {
        let inner = &*self.0;
        let mut store = inner.manager.new_store(slot)?;
        let id = store.data().id;
        let proxy = inner
            .manager
            .instantiate(&mut store, |store, instance| {
                inner.exports.load(store, instance)
            })
            .await?;
        let lifecycle = Arc::new(Lifecycle {
            id,
            created: Instant::now(),
            reason: OnceLock::new(),
            accepted: AtomicU64::new(0),
            failure: OnceLock::new(),
            failed: Notify::new(),
            memory: store.data().memory_bytes(),
        });
        track(&mut inner.live.lock().unwrap(), Arc::downgrade(&lifecycle));
        let policy = &inner.policy;
        Ok(Instance {
            store,
            proxy,
            view: <InstanceState as WasiHttpView>::http,
            expiration: Expiration {
                lifecycle: lifecycle.clone(),
                policy: policy.clone(),
                timeout: inner.manager.limits().timeout,
                timer: None,
            },
            state: Worker {
                manager: inner.manager.clone(),
                lifecycle,
                concurrent: inner.concurrent,
                policy: inner.policy.clone(),
            },
        })
    }
}

/// Adds `entry` to a list of weak references, first dropping the dead ones
/// when the list is about to grow: a server creating an instance per
/// request would otherwise keep a dead entry (and its allocation) for each.
/// Amortized constant time, as pruning only happens at a full capacity.
fn track<T>(list: &mut Vec<Weak<T>>, entry: Weak<T>) {
    if list.len() == list.capacity() {
        list.retain(|weak| weak.strong_count() > 0);
    }
    list.push(entry);
}

/// Where the HTTP handler sits in every instance of the component. The
/// generated `ProxyPre`/`ServicePre` keep theirs private and instantiate
/// without a hook for `init`, so Dispatch instantiates itself and keeps its
/// own copy, computed once rather than looked up by name per instance.
enum HandlerIndices {
    P2(wasmtime_wasi_http::p2::bindings::ProxyIndices),
    P3(wasmtime_wasi_http::p3::bindings::ServiceIndices),
}

impl HandlerIndices {
    fn new(pre: &ProxyPre<InstanceState>) -> Self {
        // `pre` was built from the same `InstancePre` by the same lookups,
        // so they cannot fail here.
        const FOUND: &str = "ProxyPre found the handler export";
        match pre {
            ProxyPre::P2(pre) => Self::P2(
                wasmtime_wasi_http::p2::bindings::ProxyIndices::new(pre.instance_pre())
                    .expect(FOUND),
            ),
            ProxyPre::P3(pre) => Self::P3(
                wasmtime_wasi_http::p3::bindings::ServiceIndices::new(pre.instance_pre())
                    .expect(FOUND),
            ),
        }
    }

    fn load(
        &self,
        store: &mut Store<InstanceState>,
        instance: &wasmtime::component::Instance,
    ) -> wasmtime::Result<Proxy> {
        Ok(match self {
            Self::P2(indices) => Proxy::P2(indices.load(store, instance)?),
            Self::P3(indices) => Proxy::P3(indices.load(store, instance)?),
        })
    }
}

/// Filled in by the instance that accepts a request, so the front end can
/// report which instance served it and retire that instance when the call
/// failed.
#[derive(Default)]
pub struct CallTicket {
    instance: OnceLock<Arc<Lifecycle>>,
    /// Set once the call is over for its instance too (see
    /// [`Self::settled`]); `settle` wakes whoever waits for it.
    over: AtomicBool,
    settle: Notify,
}

impl CallTicket {
    /// Resolves once the call no longer holds its instance: the instance
    /// was parked for the next call or ended. A p2 guest may go on writing
    /// its body after the response left, so a serial client that wants its
    /// next call to find the same instance waits for this first.
    pub async fn settled(&self) {
        let settle = self.settle.notified();
        tokio::pin!(settle);
        settle.as_mut().enable();
        if !self.over.load(Relaxed) {
            settle.await;
        }
    }

    /// Marks the call as over for its instance.
    pub(super) fn settle(&self) {
        self.over.store(true, Relaxed);
        self.settle.notify_waiters();
    }

    /// The linear memory of the instance that took the call, in bytes.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.instance.get().map(|l| l.memory.load(Relaxed))
    }

    /// The instance that took the call, if one did.
    pub fn instance_id(&self) -> Option<InstanceId> {
        self.instance.get().map(|l| l.id)
    }

    /// Why the call's instance is retired, and marks the serving instance
    /// unusable: after a trap a component instance must not be entered
    /// again.
    ///
    /// A p2 guest that traps under `ProxyHandler` is reported to the caller
    /// only as "never set a response"; the trap itself (an epoch interrupt,
    /// a refused `memory.grow`) reaches the worker that owns the store. So
    /// when the caller's error says nothing more specific, this waits
    /// briefly for the worker to report how the instance ended.
    pub async fn failure(&self, error: &CallError) -> Retirement {
        let direct = error.retirement().unwrap_or(Retirement::Trap);
        let Some(lifecycle) = self.instance.get() else {
            return direct;
        };
        let reason = match error {
            CallError::Trap(_) | CallError::NoResponse(_) => lifecycle
                .wait_for_failure(FAILURE_REPORT_WAIT)
                .await
                .unwrap_or(direct),
            _ => direct,
        };
        lifecycle.retire(reason);
        reason
    }
}

/// How long a failed call waits for its worker to say why the instance died.
const FAILURE_REPORT_WAIT: Duration = Duration::from_millis(250);

/// What the front end and the worker share about one instance.
struct Lifecycle {
    id: InstanceId,
    created: Instant,
    /// Set once, with the first reason the instance stops taking calls.
    reason: OnceLock<Retirement>,
    accepted: AtomicU64,
    /// How the instance failed, set by the worker when the store ends in
    /// an error; `failed` wakes callers waiting for it.
    failure: OnceLock<Retirement>,
    failed: Notify,
    /// The instance's linear memory in bytes, kept current by its store.
    memory: Arc<AtomicU64>,
}

impl Lifecycle {
    /// Records the first reason the instance stops taking calls.
    fn retire(&self, reason: Retirement) {
        let _ = self.reason.set(reason);
    }

    fn is_retired(&self) -> bool {
        self.reason.get().is_some()
    }

    fn reason(&self) -> Option<Retirement> {
        self.reason.get().copied()
    }

    fn report_failure(&self, reason: Retirement) {
        let _ = self.failure.set(reason);
        self.failed.notify_waiters();
    }

    async fn wait_for_failure(&self, limit: Duration) -> Option<Retirement> {
        let notified = self.failed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(reason) = self.failure.get() {
            return Some(*reason);
        }
        let _ = tokio::time::timeout(limit, notified).await;
        self.failure.get().copied()
    }
}

/// Per-instance [`WorkerState`].
pub struct Worker {
    manager: Arc<InstanceManager>,
    lifecycle: Arc<Lifecycle>,
    concurrent: bool,
    policy: Policy,
}

impl HandlerState for Dispatch {
    type StoreData = InstanceState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<ProxyInstance> {
        match self.take_warm() {
            Some(instance) => Ok(instance),
            None => self.create(self.0.manager.slot().await).await,
        }
    }
}

impl WorkerState for Worker {
    type StoreData = InstanceState;
    type RequestData = Arc<CallTicket>;

    fn should_accept_request(&self, concurrent_count: usize, total_count: usize) -> ShouldAccept {
        if self.lifecycle.is_retired() {
            return ShouldAccept::Never;
        }
        let stats = InstanceStats {
            served: total_count as u64,
            in_flight: u32::try_from(concurrent_count).unwrap_or(u32::MAX),
            age: self.lifecycle.created.elapsed(),
            memory: self.lifecycle.memory.load(Relaxed),
            concurrent: self.concurrent,
        };
        match self.policy.admit(&stats) {
            Admit::Yes => ShouldAccept::Yes,
            Admit::NotNow => ShouldAccept::No,
            Admit::Retire(reason) => {
                self.lifecycle.retire(reason);
                ShouldAccept::Never
            }
        }
    }

    fn on_request_start(
        &self,
        store: StoreContextMut<'_, InstanceState>,
        ticket: Arc<CallTicket>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        self.account(&ticket);
        // One deadline per call: a request that arrives later never gives
        // the ones already running more time.
        let deadline = self.manager.arm_concurrent_deadline(store);
        match self.manager.limits().timeout {
            Some(timeout) => Box::pin(async move {
                let _deadline = deadline;
                tokio::time::sleep(timeout).await
            }),
            None => Box::pin(std::future::pending()),
        }
    }

    fn drop(&self, store: Store<InstanceState>, result: wasmtime::Result<()>) {
        let failure = result.err().map(CallError::from_wasmtime);
        self.ended(failure.as_ref());
        drop(store);
    }
}

impl Worker {
    /// Accounts for the one call this (p2) instance accepted and arms its
    /// deadline; returns the wall-clock limit on the call, if any.
    pub(super) fn start_call(
        &self,
        mut store: StoreContextMut<'_, InstanceState>,
        ticket: &CallTicket,
    ) -> Option<Duration> {
        self.account(ticket);
        self.manager.arm_deadline(&mut store);
        self.manager.limits().timeout
    }

    /// Counts a call this instance accepted and ties it to the caller's
    /// ticket.
    fn account(&self, ticket: &CallTicket) {
        let _ = ticket.instance.set(self.lifecycle.clone());
        let previous = self.lifecycle.accepted.fetch_add(1, Relaxed);
        let metrics = self.manager.metrics();
        metrics.calls.fetch_add(1, Relaxed);
        if previous > 0 {
            metrics.reused_calls.fetch_add(1, Relaxed);
        }
    }

    /// Accounts for the end of this instance (its store is being dropped):
    /// why it ended, and how, when it failed. An instance that ends cleanly
    /// was retired for a reason recorded before (the policy's, chaos's, an
    /// idle timeout); with none recorded, the host is shutting down.
    pub(super) fn ended(&self, failure: Option<&CallError>) {
        let reason = match failure {
            None => self.lifecycle.reason().unwrap_or(Retirement::Shutdown),
            Some(_) if self.manager.is_closing() => Retirement::Shutdown,
            Some(failure) => {
                tracing::warn!(instance = self.lifecycle.id, "instance failed: {failure}");
                let reason = failure.retirement().unwrap_or(Retirement::Trap);
                self.lifecycle.report_failure(reason);
                self.lifecycle.reason().unwrap_or(reason)
            }
        };
        self.manager.instance_retired(self.lifecycle.id, reason);
    }

    /// Calls this instance accepted so far.
    pub(super) fn accepted(&self) -> usize {
        usize::try_from(self.lifecycle.accepted.load(Relaxed)).unwrap_or(usize::MAX)
    }

    /// Stops the instance from taking further calls, for `reason`.
    pub(super) fn retire(&self, reason: Retirement) {
        self.lifecycle.retire(reason);
    }
}

/// Per-instance [`WorkerExpiration`]: retires idle, old or overdue instances.
pub struct Expiration {
    lifecycle: Arc<Lifecycle>,
    policy: Policy,
    timeout: Option<Duration>,
    timer: Option<(Instant, Pin<Box<tokio::time::Sleep>>)>,
}

impl Expiration {
    /// The instant at which the worker expires in `status` entered at
    /// `start`, with the reason; `None` if it never does.
    pub(super) fn deadline(
        &self,
        status: WorkerStatus,
        start: Instant,
    ) -> Option<(Instant, Retirement)> {
        let phase = match status {
            WorkerStatus::Idle => Phase::Idle,
            WorkerStatus::Requests => Phase::Serving,
            WorkerStatus::PostReturn => Phase::Finishing,
        };
        self.policy
            .expiry(self.lifecycle.created, phase, start, self.timeout)
    }
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let Some((deadline, reason)) = self.deadline(status, start) else {
            self.timer = None;
            return Poll::Pending;
        };
        if Instant::now() >= deadline {
            self.lifecycle.retire(reason);
            return Poll::Ready(());
        }
        let timer = match &mut self.timer {
            Some((at, timer)) if *at == deadline => timer,
            slot => {
                let timer = Box::pin(tokio::time::sleep_until(deadline.into()));
                &mut slot.insert((deadline, timer)).1
            }
        };
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.lifecycle.retire(reason);
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_list_does_not_keep_every_instance_ever_created() {
        let mut list = Vec::new();
        let alive: Vec<Arc<u32>> = (0..3).map(Arc::new).collect();
        for arc in &alive {
            track(&mut list, Arc::downgrade(arc));
        }
        for n in 0..10_000 {
            let gone = Arc::new(n);
            track(&mut list, Arc::downgrade(&gone));
        }
        assert!(list.len() <= 16, "{} entries kept", list.len());
        let kept = list.iter().filter(|w| w.strong_count() > 0).count();
        assert_eq!(kept, 3, "a live entry was dropped");
    }
}
