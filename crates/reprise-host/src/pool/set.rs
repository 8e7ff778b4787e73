//! A set of instances of one component under one policy: the one pool
//! every front end draws from.
//!
//! A set keeps three kinds of instances besides the ones serving:
//! - warm ones: initialized, never used, created ahead of traffic by a
//!   background thread ([`Warmer`]) so start functions and `init` never
//!   run on a request's time;
//! - idle ones: used, parked between calls, most recently used first; a
//!   reaper task ends them at their idle timeout or maximum age
//!   ([`Policy::expiry`]);
//! - live ones: every instance created here that may still be alive, so the
//!   testing mode can retire one on purpose.
//!
//! A front end either leases instances call by call ([`Pool::lease`], then
//! [`Pool::give_back`]: the p2 HTTP driver, `run`, `call`, `check`), or
//! takes them for good and reports their end ([`Pool::take`], then
//! [`Pool::ended`]: `ProxyHandler`'s p3 workers, which run many calls per
//! instance themselves). Either way admission is [`Policy::admit`], the
//! deadline is armed by the manager, metrics are counted here (a call's
//! start by the pool itself, its end when the front end reports it with
//! [`Pool::call_ended`]), and an instance ends with a typed [`Retirement`].

use super::warm::Warmer;
use super::{InstanceManager, Reclaim};
use crate::policy::{Admit, DEFAULT_IDLE_TIMEOUT, InstanceStats, Phase, Policy, Retirement};
use crate::runtime::failure::CallError;
use crate::runtime::instance::{InstanceId, InstanceSlot, InstanceState};
use futures::task::AtomicWaker;
use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::Context;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use wasmtime::Store;
use wasmtime::component::Instance;

/// Finds, on a new instance, what the front end calls: a `Func`, a
/// `wasi:cli` command, a wasi:http handler. Runs once per instance, so each
/// call skips the lookup.
pub type Bind<E> =
    Arc<dyn Fn(&mut Store<InstanceState>, &Instance) -> wasmtime::Result<E> + Send + Sync>;

/// One instance out of its pool: its store, what was bound on it, and what
/// the pool and the front end share about it.
pub struct Pooled<E> {
    pub store: Store<InstanceState>,
    pub export: E,
    pub lifecycle: Arc<Lifecycle>,
}

/// What the pool and the front ends share about one instance.
pub struct Lifecycle {
    id: InstanceId,
    created: Instant,
    /// Set once, with the first reason the instance stops taking calls.
    reason: OnceLock<Retirement>,
    accepted: AtomicU64,
    /// How the instance failed, set when its store ends in an error;
    /// `failed` wakes callers waiting for it.
    failure: OnceLock<Retirement>,
    failed: Notify,
    /// The instance's linear memory in bytes, kept current by its store.
    memory: Arc<AtomicU64>,
    /// Calls of a p3 worker that await their answer, and how many more
    /// were left by their clients before it came; see
    /// [`Self::only_abandoned_calls_remain`].
    awaiting: AtomicU32,
    abandoned: AtomicU32,
    /// The p3 worker, woken when a client leaves.
    worker: AtomicWaker,
}

impl Lifecycle {
    pub fn id(&self) -> InstanceId {
        self.id
    }

    pub fn created(&self) -> Instant {
        self.created
    }

    /// Calls this instance accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Relaxed)
    }

    /// The instance's linear memory, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory.load(Relaxed)
    }

    /// Records the first reason the instance stops taking calls; it ends
    /// once its calls finish.
    pub fn retire(&self, reason: Retirement) {
        let _ = self.reason.set(reason);
    }

    pub fn is_retired(&self) -> bool {
        self.reason.get().is_some()
    }

    fn reason(&self) -> Option<Retirement> {
        self.reason.get().copied()
    }

    /// What the policy needs to know to admit one more call, the instance
    /// `age` included.
    fn stats(&self, in_flight: u32, concurrent: bool, age: Duration) -> InstanceStats {
        InstanceStats {
            served: self.accepted(),
            in_flight,
            age,
            memory: self.memory_bytes(),
            concurrent,
        }
    }

    /// How the instance failed, once its store ended in an error: waits up
    /// to `limit` for that report.
    pub async fn wait_for_failure(&self, limit: Duration) -> Option<Retirement> {
        let notified = self.failed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(reason) = self.failure.get() {
            return Some(*reason);
        }
        let _ = tokio::time::timeout(limit, notified).await;
        self.failure.get().copied()
    }

    fn report_failure(&self, reason: Retirement) {
        let _ = self.failure.set(reason);
        self.failed.notify_waiters();
    }

    /// Whether the instance's store ended in an error, cutting short any
    /// response body it was still writing.
    pub fn broke(&self) -> bool {
        self.failure.get().is_some()
    }

    /// A p3 worker took a call that awaits its answer.
    pub fn call_started(&self) {
        self.awaiting.fetch_add(1, SeqCst);
    }

    /// A call of [`Self::call_started`] got its answer.
    pub fn call_answered(&self) {
        self.awaiting.fetch_sub(1, SeqCst);
    }

    /// The client of a call of [`Self::call_started`] left before its
    /// answer: the instance takes no more calls, and its worker is woken to
    /// see whether anyone still waits for it.
    pub fn call_abandoned(&self) {
        self.retire(Retirement::Cancelled);
        self.abandoned.fetch_add(1, SeqCst);
        self.awaiting.fetch_sub(1, SeqCst);
        self.worker.wake();
    }

    /// Whether every call the instance still runs for an answer was left by
    /// its client: the guest works for nobody, and its worker may stop it.
    /// `cx`'s task is woken when a client leaves.
    pub fn only_abandoned_calls_remain(&self, cx: &Context<'_>) -> bool {
        self.worker.register(cx.waker());
        self.abandoned_only()
    }

    /// [`Self::only_abandoned_calls_remain`], without a task to wake.
    pub fn abandoned_only(&self) -> bool {
        self.abandoned.load(SeqCst) > 0 && self.awaiting.load(SeqCst) == 0
    }
}

/// A set of instances under one policy. Cheap to clone.
pub struct Pool<E>(Arc<Inner<E>>);

impl<E> Clone for Pool<E> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

struct Inner<E> {
    manager: Arc<InstanceManager>,
    bind: Bind<E>,
    /// Usually the manager's; an isolation front end runs unkeyed requests
    /// fresh.
    policy: Policy,
    /// Whether the export runs calls concurrently on one instance (p3).
    concurrent: bool,
    /// Initialized, never-used instances, oldest first.
    warm: Mutex<VecDeque<Pooled<E>>>,
    /// How many warm instances to keep ready.
    prewarm: usize,
    /// Refills `warm` when an instance is taken from it; present when
    /// `prewarm` is not zero.
    warmer: Option<Warmer>,
    /// Used instances between calls.
    idle: Mutex<Idle<E>>,
    /// Signalled when an instance is parked in `idle`, for the calls (their
    /// number in `waiting`) waiting for room to create one.
    parked: Notify,
    waiting: AtomicUsize,
    /// Every instance created here that may still be alive.
    live: Mutex<Vec<Weak<Lifecycle>>>,
    /// Set by [`Pool::close`]: nothing more is created.
    closed: AtomicBool,
}

/// Used instances between calls, most recently used last, and whether a
/// task is watching them for their idle timeout and maximum age.
struct Idle<E> {
    parked: Vec<(Pooled<E>, Instant)>,
    reaping: bool,
}

impl<E> Default for Idle<E> {
    fn default() -> Self {
        Self {
            parked: Vec::new(),
            reaping: false,
        }
    }
}

/// Which end of the warm set: the oldest instance serves next (it has
/// waited longest), the newest is the one to let go.
enum End {
    Oldest,
    Newest,
}

impl<E: Send + 'static> Pool<E> {
    /// A set of `manager`'s instances under `policy`, binding `bind` on each
    /// and keeping `prewarm` warm; `concurrent` when the export takes
    /// concurrent calls (p3).
    pub fn new(
        manager: Arc<InstanceManager>,
        bind: Bind<E>,
        policy: Policy,
        prewarm: usize,
        concurrent: bool,
    ) -> Self {
        let pool = Self(Arc::new_cyclic(|this: &Weak<Inner<E>>| {
            let this = this.clone();
            let warmer = (prewarm > 0).then(|| {
                Warmer::start(move |runtime| match this.upgrade() {
                    // Once the set or the component is closing, no more
                    // instances are worth creating.
                    Some(inner) if !inner.is_closed() => {
                        runtime.block_on(Pool(inner).refill());
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
            Inner {
                manager,
                bind,
                policy,
                concurrent,
                warm: Mutex::default(),
                prewarm,
                warmer,
                idle: Mutex::default(),
                parked: Notify::new(),
                waiting: AtomicUsize::new(0),
                live: Mutex::default(),
                closed: AtomicBool::new(false),
            }
        }));
        let reclaimer: Weak<dyn Reclaim> = Arc::downgrade(&pool.0) as Weak<Inner<E>>;
        pool.0.manager.add_reclaimer(reclaimer);
        pool
    }

    pub fn manager(&self) -> &Arc<InstanceManager> {
        &self.0.manager
    }

    pub fn policy(&self) -> &Policy {
        &self.0.policy
    }

    /// Whether `lifecycle`'s instance may take one more call with
    /// `in_flight` calls running; records why not, when never again.
    pub fn admits(&self, lifecycle: &Lifecycle, in_flight: u32) -> Admit {
        // A p3 worker asks before each turn of its event loop, about ten
        // times a request: the clock is read only when the policy bounds an
        // instance's age.
        self.admits_at(lifecycle, in_flight, Instant::now)
    }

    /// [`Self::admits`], asking `now` for the time only when the policy
    /// bounds an instance's age: the time since its creation (a subtraction
    /// of two timespecs) costs about half of the rest of the decision. A
    /// reused call's path, which asks twice and reads the clock for other
    /// reasons too, passes the time it already read.
    fn admits_at(
        &self,
        lifecycle: &Lifecycle,
        in_flight: u32,
        now: impl FnOnce() -> Instant,
    ) -> Admit {
        if lifecycle.is_retired() {
            return Admit::Retire(lifecycle.reason().unwrap_or(Retirement::MaxCalls));
        }
        let age = match self.0.policy.max_age() {
            Some(_) => now().saturating_duration_since(lifecycle.created),
            None => Duration::ZERO,
        };
        let admit = self
            .0
            .policy
            .admit(&lifecycle.stats(in_flight, self.0.concurrent, age));
        if let Admit::Retire(reason) = admit {
            lifecycle.retire(reason);
        }
        admit
    }

    /// An instance for one call: the most recently used idle one, else a
    /// warm one, else a new one. When the most instances allowed are
    /// alive, whichever comes first: room for a new one (another set's
    /// idle instance ended to make it), or an instance of this set parked
    /// by a call that ended. The call is counted and its deadline armed;
    /// hand the instance back with [`Self::give_back`].
    pub async fn lease(&self) -> wasmtime::Result<Pooled<E>> {
        let mut pooled = match self.take_idle().or_else(|| self.take_warm()) {
            Some(pooled) => pooled,
            // Making an instance awaits wasmtime's instantiation and the
            // component's init, futures of about 2 KB. Boxed, they do not
            // grow the future of every call, which hyper moves several
            // times per request.
            None => Box::pin(self.create_or_wait()).await?,
        };
        self.start_call(&mut pooled);
        Ok(pooled)
    }

    /// Counts a call `pooled`'s instance accepted (also when a driver
    /// other than [`Self::lease`] runs it) and arms its deadline.
    pub fn start_call(&self, pooled: &mut Pooled<E>) {
        self.count_call(&pooled.lifecycle);
        self.0.manager.arm_deadline(&mut pooled.store);
    }

    /// Counts a call `lifecycle`'s instance accepted.
    pub fn count_call(&self, lifecycle: &Lifecycle) {
        let previous = lifecycle.accepted.fetch_add(1, Relaxed);
        let metrics = self.0.manager.metrics();
        metrics.calls.fetch_add(1, Relaxed);
        if previous > 0 {
            metrics.reused_calls.fetch_add(1, Relaxed);
        }
    }

    /// Counts the end of a call, the one place front ends report it:
    /// `latency` from accepting the call to its answer (an HTTP response
    /// head, an export's return) when the front end times it, and whether
    /// the call's caller saw it fail.
    pub fn call_ended(&self, latency: Option<Duration>, failed: bool) {
        let metrics = self.0.manager.metrics();
        if let Some(latency) = latency {
            metrics.call_latency.observe(latency);
        }
        if failed {
            metrics.call_errors.fetch_add(1, Relaxed);
        }
    }

    /// A new instance for [`Self::lease`], which found none idle or warm
    /// (or, once the most instances allowed are alive, one parked
    /// meanwhile).
    async fn create_or_wait(&self) -> wasmtime::Result<Pooled<E>> {
        let manager = &self.0.manager;
        loop {
            if let Some(slot) = manager.try_slot() {
                return self.create(slot).await;
            }
            // This set's own idle instance is better than room for a new one
            // made by ending another set's.
            if let Some(pooled) = self.take_idle() {
                return Ok(pooled);
            }
            if !manager.reclaim_one(Some(&*self.0)) {
                break;
            }
        }
        let mut room = pin!(manager.wait_for_slot());
        let _waiting = Waiting::count(&self.0.waiting);
        let slot = loop {
            let mut parked = pin!(self.0.parked.notified());
            // Registered before looking, so a park in between still wakes.
            parked.as_mut().enable();
            if let Some(pooled) = self.take_idle() {
                return Ok(pooled);
            }
            tokio::select! {
                slot = &mut room => break slot,
                () = parked => {}
            }
        };
        self.create(slot).await
    }

    /// Hands back an instance whose call ended: parked for the next call if
    /// the policy lets it take one, otherwise ended, for the policy's
    /// reason, or for `failure`'s (after a trap an instance must not be
    /// entered again).
    pub fn give_back(&self, pooled: Pooled<E>, failure: Option<&CallError>) {
        if let Some(failure) = failure {
            self.ended(&pooled.lifecycle, Some(failure));
            return;
        }
        let now = Instant::now();
        match self.admits_at(&pooled.lifecycle, 0, || now) {
            Admit::Yes | Admit::NotNow => self.park_idle(pooled, now),
            Admit::Retire(_) => self.discard(pooled),
        }
    }

    /// An instance to keep for good (a `ProxyHandler` worker runs its calls
    /// and says when it ends, with [`Self::ended`]): a warm one, or a new
    /// one once there is room.
    pub async fn take(&self) -> wasmtime::Result<Pooled<E>> {
        match self.take_warm() {
            Some(pooled) => Ok(pooled),
            None => self.create(self.0.manager.slot().await).await,
        }
    }

    /// Accounts for the end of an instance (its store is being dropped):
    /// why it ended, and how, when it failed. An instance that ends cleanly
    /// was retired for a reason recorded before (the policy's, chaos's, an
    /// idle timeout); with none recorded, its front end is going away.
    pub fn ended(&self, lifecycle: &Lifecycle, failure: Option<&CallError>) {
        self.0.ended(lifecycle, failure);
    }

    /// Ends an instance that will not serve again, for the reason its
    /// lifecycle holds.
    fn discard(&self, pooled: Pooled<E>) {
        self.ended(&pooled.lifecycle, None);
    }

    /// Retires one instance of this set that has served a call and still
    /// takes calls (once its calls finish), so that the next call may land on
    /// a never-used one. Which one is `pick` modulo their number: under serial
    /// traffic there is just one, the instance that would serve the next
    /// call. Warm instances are never used, so they stay.
    pub fn retire_one_used(&self, pick: u64, reason: Retirement) {
        let mut live = self.0.live.lock().unwrap();
        live.retain(|lifecycle| lifecycle.strong_count() > 0);
        let used: Vec<Arc<Lifecycle>> = live
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|l| l.accepted() > 0 && !l.is_retired())
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

    /// Creates one instance ahead of traffic and keeps it warm, so that
    /// readiness reflects a real, successful initialization, then fills the
    /// warm set up to its target. Returns the instantiation error, if any;
    /// it is also recorded on the manager.
    pub async fn warm_up(&self) -> wasmtime::Result<()> {
        let pooled = self.create(self.0.manager.slot().await).await?;
        self.park_warm(pooled);
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

    /// Fills the warm set to its target now, waiting for room when needed:
    /// what a serial front end does before its first call, so start
    /// functions run before anything is timed or printed.
    pub async fn fill(&self) -> wasmtime::Result<()> {
        while self.0.warm.lock().unwrap().len() < self.0.prewarm {
            let pooled = self.create(self.0.manager.slot().await).await?;
            self.park_warm(pooled);
        }
        Ok(())
    }

    /// Ends every instance the set keeps (warm and idle) and creates no
    /// more: the front end is done with it.
    pub fn close(&self) {
        self.0.closed.store(true, Relaxed);
        let warm: Vec<Pooled<E>> = self.0.warm.lock().unwrap().drain(..).collect();
        for pooled in warm {
            self.0
                .manager
                .metrics()
                .warm_instances
                .fetch_sub(1, Relaxed);
            pooled.lifecycle.retire(Retirement::Shutdown);
            self.discard(pooled);
        }
        let idle: Vec<(Pooled<E>, Instant)> =
            self.0.idle.lock().unwrap().parked.drain(..).collect();
        for (pooled, _) in idle {
            pooled.lifecycle.retire(Retirement::Shutdown);
            self.discard(pooled);
        }
    }

    /// Retires warm instances beyond the target, as idle.
    fn trim_warm(&self) {
        while self.0.warm.lock().unwrap().len() > self.0.prewarm {
            let Some(pooled) = self.unpark_warm(End::Newest) else {
                return;
            };
            pooled.lifecycle.retire(Retirement::Idle);
            self.discard(pooled);
        }
    }

    fn unpark_warm(&self, end: End) -> Option<Pooled<E>> {
        let pooled = {
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
        Some(pooled)
    }

    /// Tops the warm set up to its target, one instance at a time. Failures
    /// are recorded by `create` and end the attempt: retrying a failing
    /// initialization in a loop would only hide it behind log noise.
    async fn refill(self) {
        while !self.0.is_closed() && self.0.warm.lock().unwrap().len() < self.0.prewarm {
            let Some(slot) = self.0.manager.try_spare_slot() else {
                // Calls need the room; the next one to take a warm
                // instance asks again.
                return;
            };
            match self.create(slot).await {
                Ok(pooled) => self.park_warm(pooled),
                Err(_) => break,
            }
        }
    }

    fn park_warm(&self, pooled: Pooled<E>) {
        self.0.warm.lock().unwrap().push_back(pooled);
        self.0
            .manager
            .metrics()
            .warm_instances
            .fetch_add(1, Relaxed);
    }

    /// A warm instance that may still take calls. One the policy would
    /// refuse (it outlived `--max-age` while warm) is ended here.
    fn take_warm(&self) -> Option<Pooled<E>> {
        loop {
            let pooled = self.unpark_warm(End::Oldest);
            // Also when none was left: a refill that found no room gave up.
            if let Some(warmer) = &self.0.warmer {
                warmer.wake();
            }
            let pooled = pooled?;
            match self.admits(&pooled.lifecycle, 0) {
                Admit::Yes | Admit::NotNow => return Some(pooled),
                Admit::Retire(_) => self.discard(pooled),
            }
        }
    }

    /// The most recently used idle instance that may take a call; expired
    /// ones met on the way are ended.
    fn take_idle(&self) -> Option<Pooled<E>> {
        loop {
            let (pooled, since) = self.0.idle.lock().unwrap().parked.pop()?;
            let now = Instant::now();
            if let Some((at, reason)) = self.expiry(&pooled, since)
                && now >= at
            {
                pooled.lifecycle.retire(reason);
                self.discard(pooled);
                continue;
            }
            match self.admits_at(&pooled.lifecycle, 0, || now) {
                Admit::Yes => return Some(pooled),
                Admit::NotNow | Admit::Retire(_) => self.discard(pooled),
            }
        }
    }

    /// Parks `pooled` for the next call, idle from `now`.
    fn park_idle(&self, pooled: Pooled<E>, now: Instant) {
        let start_reaper = {
            let mut idle = self.0.idle.lock().unwrap();
            idle.parked.push((pooled, now));
            !std::mem::replace(&mut idle.reaping, true)
        };
        // Only calls waiting for room listen; the common case pays a load.
        if self.0.waiting.load(SeqCst) > 0 {
            self.0.parked.notify_one();
        }
        if start_reaper {
            tokio::spawn(reap(Arc::downgrade(&self.0)));
        }
    }

    /// When an idle instance parked at `since` stops being worth keeping.
    fn expiry(&self, pooled: &Pooled<E>, since: Instant) -> Option<(Instant, Retirement)> {
        self.0
            .policy
            .expiry(pooled.lifecycle.created, Phase::Idle, since, None)
    }

    /// Creates and initializes a new instance through the manager (start
    /// functions, then the component's `reprise:init` export if any), and
    /// binds the export on it, in `slot`.
    async fn create(&self, slot: InstanceSlot) -> wasmtime::Result<Pooled<E>> {
        let manager = &self.0.manager;
        let mut store = manager.new_store(slot)?;
        let bind = &self.0.bind;
        let export = manager
            .instantiate(&mut store, |store, instance| bind(store, instance))
            .await?;
        let lifecycle = Arc::new(Lifecycle {
            id: store.data().id,
            created: Instant::now(),
            reason: OnceLock::new(),
            accepted: AtomicU64::new(0),
            failure: OnceLock::new(),
            failed: Notify::new(),
            memory: store.data().memory_bytes(),
            awaiting: AtomicU32::new(0),
            abandoned: AtomicU32::new(0),
            worker: AtomicWaker::new(),
        });
        track(&mut self.0.live.lock().unwrap(), Arc::downgrade(&lifecycle));
        Ok(Pooled {
            store,
            export,
            lifecycle,
        })
    }
}

impl<E> Inner<E> {
    fn is_closed(&self) -> bool {
        self.closed.load(Relaxed) || self.manager.is_closing()
    }

    /// See [`Pool::ended`].
    fn ended(&self, lifecycle: &Lifecycle, failure: Option<&CallError>) {
        let manager = &self.manager;
        let reason = match failure {
            None => lifecycle.reason().unwrap_or(Retirement::Shutdown),
            Some(_) if manager.is_closing() => {
                lifecycle.report_failure(Retirement::Shutdown);
                Retirement::Shutdown
            }
            Some(failure) => {
                let reason = failure.retirement().unwrap_or(Retirement::Trap);
                lifecycle.report_failure(reason);
                Retirement::on_failure(lifecycle.reason(), reason)
            }
        };
        manager.instance_retired(lifecycle.id, reason);
    }
}

/// A set gives up an idle instance first (the least recently used), then a
/// warm one. Instances inside `ProxyHandler`'s workers are out of reach;
/// they end at their idle timeout.
impl<E: Send + 'static> Reclaim for Inner<E> {
    fn reclaim_one(&self) -> bool {
        let taken = {
            let mut idle = self.idle.lock().unwrap();
            (!idle.parked.is_empty()).then(|| idle.parked.remove(0).0)
        };
        let pooled = taken.or_else(|| {
            let pooled = self.warm.lock().unwrap().pop_back()?;
            self.manager.metrics().warm_instances.fetch_sub(1, Relaxed);
            Some(pooled)
        });
        let Some(pooled) = pooled else {
            return false;
        };
        pooled.lifecycle.retire(Retirement::Idle);
        self.ended(&pooled.lifecycle, None);
        true
    }
}

/// Instances still kept when their set goes (the server stops) end with it.
impl<E> Drop for Inner<E> {
    fn drop(&mut self) {
        let mut kept: Vec<Pooled<E>> = (self.idle.get_mut().unwrap().parked.drain(..))
            .map(|(pooled, _)| pooled)
            .collect();
        kept.extend(self.warm.get_mut().unwrap().drain(..));
        for pooled in kept {
            pooled.lifecycle.retire(Retirement::Shutdown);
            self.ended(&pooled.lifecycle, None);
        }
    }
}

/// Ends idle instances of a set as they expire, so an idle set gives its
/// memory back without waiting for traffic; stops when none are left (the
/// next one parked starts it again) or the set is gone.
async fn reap<E: Send + 'static>(set: Weak<Inner<E>>) {
    loop {
        let next = {
            let Some(inner) = set.upgrade() else { return };
            let pool = Pool(inner);
            let now = Instant::now();
            let (expired, next) = {
                let mut idle = pool.0.idle.lock().unwrap();
                let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut idle.parked)
                    .into_iter()
                    .partition(|(p, since)| {
                        pool.expiry(p, *since).is_some_and(|(at, _)| now >= at)
                    });
                idle.parked = kept;
                let next = idle
                    .parked
                    .iter()
                    .filter_map(|(p, since)| pool.expiry(p, *since))
                    .map(|(at, _)| at)
                    .min();
                if next.is_none() {
                    idle.reaping = false;
                }
                (expired, next)
            };
            for (pooled, since) in expired {
                if let Some((_, reason)) = pool.expiry(&pooled, since) {
                    pooled.lifecycle.retire(reason);
                }
                pool.discard(pooled);
            }
            match next {
                Some(at) => at,
                None => return,
            }
        };
        tokio::time::sleep_until(next.into()).await;
    }
}

/// Counts a call among those waiting for room while it lives. The count is
/// raised before the call looks for an idle instance and read after one is
/// parked (both sequentially consistent, the lookup and the park under the
/// set's lock), so a park either is seen by the lookup or sees the waiter.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn count(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, SeqCst);
        Self(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
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
