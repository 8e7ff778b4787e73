//! Dispatching HTTP requests to pooled instances: one [`Pool`] of the
//! component's wasi:http handler, and the drivers that run requests on it.
//!
//! p3 sets are driven by `wasmtime_wasi_http::handler::ProxyHandler`, which
//! runs each instance as a worker task that pulls requests from a shared
//! queue, drives p3 concurrency with guest backpressure, and enforces
//! expirations even when a guest spins inside the store; it takes its
//! instances from the pool ([`HandlerState::instantiate`]), asks the pool's
//! policy before each request ([`WorkerState::should_accept_request`]) and
//! reports each instance's end to it ([`WorkerState::drop`]). p2 sets, whose
//! calls each take a whole instance, lease an instance per request on the
//! request's own task ([`Dispatch::serve_direct`], over `direct.rs`'s driver,
//! which knows the pool but not this module).
//!
//! Neither driver chooses *which* instance serves a call (any available one
//! takes the next request); features that need that choice keep several
//! sets and pick one (see `route.rs`).

use super::direct;
use crate::policy::{Admit, Phase, Policy, Retirement};
use crate::pool::{DeadlineGuard, InstanceManager, Lifecycle, Pool, Pooled};
use crate::runtime::failure::CallError;
use crate::runtime::instance::{InstanceId, InstanceState};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ProxyPre, Request, Response, ShouldAccept, WorkerExpiration,
    WorkerState, WorkerStatus,
};

/// The [`HandlerState`] of Reprise's HTTP front end: a pool of the
/// component's handler. Cheap to clone.
#[derive(Clone)]
pub struct Dispatch {
    pool: Pool<Proxy>,
}

pub(super) type ProxyInstance = Instance<InstanceState, Expiration, Worker>;

impl Dispatch {
    pub fn new(
        manager: Arc<InstanceManager>,
        pre: ProxyPre<InstanceState>,
        prewarm: usize,
        policy: Policy,
    ) -> Self {
        let concurrent = matches!(pre, ProxyPre::P3(_));
        let indices = HandlerIndices::new(&pre);
        let bind = Arc::new(move |store: &mut Store<InstanceState>, instance: &_| {
            indices.load(store, instance)
        });
        Self {
            pool: Pool::new(manager, bind, policy, prewarm, concurrent),
        }
    }

    pub fn pool(&self) -> &Pool<Proxy> {
        &self.pool
    }

    /// Serves `request` on an instance of this (p2) set, leased for the
    /// call on the request's own task.
    pub(super) async fn serve_direct(
        &self,
        ticket: Arc<CallTicket>,
        request: Request,
    ) -> Result<Response, CallError> {
        // However the call ends, its ticket learns when the instance is
        // free again.
        let settle = Settle(ticket);
        direct::serve(&self.pool, request, move |lifecycle| {
            settle.0.taken_directly_by(lifecycle);
            settle
        })
        .await
    }
}

/// Settles a call's ticket when dropped.
struct Settle(Arc<CallTicket>);

impl Drop for Settle {
    fn drop(&mut self) {
        self.0.settle();
    }
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
    /// Whether anyone waits in [`Self::settled`]: most calls are never
    /// waited for, and they skip the notifier's lock.
    watched: AtomicBool,
    /// Set by the p2 driver, which sees how its calls end itself: nothing
    /// to wait for from a worker.
    direct: AtomicBool,
    /// Where a call on a p3 worker stands: [`WAITING`], [`TAKEN`],
    /// [`LEFT`] or [`ANSWERED`]. The worker takes a call and its client
    /// may leave on different threads; whichever comes second accounts for
    /// the abandoned call on the instance.
    worker_call: AtomicU8,
}

/// A call not yet taken by a worker.
const WAITING: u8 = 0;
/// Taken by a worker, awaiting its answer.
const TAKEN: u8 = 1;
/// Its client left before the answer.
const LEFT: u8 = 2;
/// Answered.
const ANSWERED: u8 = 3;

impl CallTicket {
    /// Resolves once the call no longer holds its instance: the instance
    /// was parked for the next call or ended. A p2 guest may go on writing
    /// its body after the response left, so a serial client that wants its
    /// next call to find the same instance waits for this first.
    pub async fn settled(&self) {
        let settle = self.settle.notified();
        tokio::pin!(settle);
        settle.as_mut().enable();
        // Sequentially consistent with `settle`'s pair: either this sees
        // the call over, or `settle` sees a waiter and wakes it.
        self.watched.store(true, SeqCst);
        if !self.over.load(SeqCst) {
            settle.await;
        }
    }

    /// Marks the call as over for its instance.
    pub(super) fn settle(&self) {
        self.over.store(true, SeqCst);
        if self.watched.load(SeqCst) {
            self.settle.notify_waiters();
        }
    }

    /// The caller went away before the answer: the instance that took the
    /// call (or takes it later) takes no more, and its worker stops it once
    /// no other call on it awaits an answer.
    pub(super) fn abandon(&self) {
        if self.worker_call.swap(LEFT, SeqCst) == TAKEN
            && let Some(lifecycle) = self.instance.get()
        {
            lifecycle.call_abandoned();
        }
        self.settle();
    }

    /// The answer came (or the call failed before one).
    pub(super) fn answered(&self) {
        if self.worker_call.swap(ANSWERED, SeqCst) == TAKEN
            && let Some(lifecycle) = self.instance.get()
        {
            lifecycle.call_answered();
        }
        self.settle();
    }

    /// Ties the call to the p3 worker's instance that took it.
    fn taken_by_worker(&self, lifecycle: &Arc<Lifecycle>) {
        self.taken_by(lifecycle);
        lifecycle.call_started();
        if self
            .worker_call
            .compare_exchange(WAITING, TAKEN, SeqCst, SeqCst)
            .is_err()
        {
            // Its client left while it queued.
            lifecycle.call_abandoned();
        }
    }

    /// Ties the call to the instance that accepted it, on the p2 driver
    /// (which reports its calls' ends itself).
    fn taken_directly_by(&self, lifecycle: &Arc<Lifecycle>) {
        self.direct.store(true, Relaxed);
        self.taken_by(lifecycle);
    }

    /// Ties the call to the instance that accepted it.
    pub(super) fn taken_by(&self, lifecycle: &Arc<Lifecycle>) {
        let _ = self.instance.set(lifecycle.clone());
    }

    /// The linear memory of the instance that took the call, in bytes.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.instance.get().map(|l| l.memory_bytes())
    }

    /// The instance that took the call, if one did.
    pub(super) fn instance(&self) -> Option<&Arc<Lifecycle>> {
        self.instance.get()
    }

    /// The instance that took the call, if one did.
    pub fn instance_id(&self) -> Option<InstanceId> {
        self.instance.get().map(|l| l.id())
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
            CallError::Trap(_) | CallError::NoResponse(_) if !self.direct.load(Relaxed) => {
                lifecycle
                    .wait_for_failure(FAILURE_REPORT_WAIT)
                    .await
                    .unwrap_or(direct)
            }
            _ => direct,
        };
        lifecycle.retire(reason);
        reason
    }
}

/// How long a failed call waits for its worker to say why the instance died.
const FAILURE_REPORT_WAIT: Duration = Duration::from_millis(250);

/// Per-instance [`WorkerState`] of a `ProxyHandler` worker.
pub struct Worker {
    pool: Pool<Proxy>,
    lifecycle: Arc<Lifecycle>,
}

impl HandlerState for Dispatch {
    type StoreData = InstanceState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<ProxyInstance> {
        let Pooled {
            store,
            export,
            lifecycle,
        } = self.pool.take().await?;
        Ok(Instance {
            store,
            proxy: export,
            view: <InstanceState as WasiHttpView>::http,
            expiration: Expiration {
                lifecycle: lifecycle.clone(),
                policy: self.pool.policy().clone(),
                timeout: self.pool.manager().limits().timeout,
                timer: None,
            },
            state: Worker {
                pool: self.pool.clone(),
                lifecycle,
            },
        })
    }
}

impl WorkerState for Worker {
    type StoreData = InstanceState;
    type RequestData = Arc<CallTicket>;

    fn should_accept_request(&self, concurrent_count: usize, _total_count: usize) -> ShouldAccept {
        let in_flight = u32::try_from(concurrent_count).unwrap_or(u32::MAX);
        match self.pool.admits(&self.lifecycle, in_flight) {
            Admit::Yes => ShouldAccept::Yes,
            Admit::NotNow => ShouldAccept::No,
            Admit::Retire(_) => ShouldAccept::Never,
        }
    }

    fn on_request_start(
        &self,
        store: StoreContextMut<'_, InstanceState>,
        ticket: Arc<CallTicket>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        ticket.taken_by_worker(&self.lifecycle);
        self.pool.count_call(&self.lifecycle);
        // One deadline per call: a request that arrives later never gives
        // the ones already running more time.
        let manager = self.pool.manager();
        let deadline = manager.arm_concurrent_deadline(store);
        match manager.limits().timeout {
            Some(timeout) => Box::pin(async move {
                tokio::time::sleep(timeout).await;
                deadline.map(DeadlineGuard::passed);
            }),
            None => Box::pin(std::future::pending()),
        }
    }

    fn drop(&self, store: Store<InstanceState>, result: wasmtime::Result<()>) {
        let failure = result.err().map(|e| match self.lifecycle.abandoned_only() {
            // Stopped by its expiration, below: every client had left.
            true => CallError::Cancelled,
            false => CallError::from_wasmtime(e),
        });
        if let Some(CallError::Cancelled) = &failure {
            tracing::debug!(
                instance = self.lifecycle.id(),
                "every client of the instance's calls went away; instance stopped"
            );
        } else if let Some(failure) = &failure
            && !self.pool.manager().is_closing()
        {
            tracing::warn!(instance = self.lifecycle.id(), "instance failed: {failure}");
        }
        self.pool.ended(&self.lifecycle, failure.as_ref());
        drop(store);
    }
}

/// Per-instance [`WorkerExpiration`]: retires idle, old or overdue instances.
pub struct Expiration {
    lifecycle: Arc<Lifecycle>,
    policy: Policy,
    timeout: Option<Duration>,
    /// The timer, and the deadline it is set to: never later than the
    /// current deadline (see `poll`).
    timer: Option<(Instant, Pin<Box<tokio::time::Sleep>>)>,
}

impl Expiration {
    /// The instant at which the worker expires in `status` entered at
    /// `start`, with the reason; `None` if it never does.
    fn deadline(&self, status: WorkerStatus, start: Instant) -> Option<(Instant, Retirement)> {
        let phase = match status {
            WorkerStatus::Idle => Phase::Idle,
            WorkerStatus::Requests => Phase::Serving,
            WorkerStatus::PostReturn => Phase::Finishing,
        };
        self.policy
            .expiry(self.lifecycle.created(), phase, start, self.timeout)
    }
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        // ProxyHandler cannot cancel one guest task (wasmtime 48 has no API
        // for it); the instance is stopped instead, once no other call on
        // it awaits an answer.
        if matches!(status, WorkerStatus::Requests)
            && self.lifecycle.only_abandoned_calls_remain(cx)
        {
            return Poll::Ready(());
        }
        let Some((deadline, reason)) = self.deadline(status, start) else {
            return Poll::Pending;
        };
        // This runs whenever the worker's event loop waits, several times a
        // request, and each status change moves the deadline a little later.
        // Moving a timer costs more than the rest of this poll, so the timer
        // is moved only when the deadline comes earlier than it; one that
        // fires before the current deadline is moved on to it then. No clock
        // read either: a timer whose deadline has passed is ready at once.
        let this = &mut *self;
        let (armed, timer) = this.timer.get_or_insert_with(|| {
            (
                deadline,
                Box::pin(tokio::time::sleep_until(deadline.into())),
            )
        });
        if deadline < *armed {
            timer.as_mut().reset(deadline.into());
            *armed = deadline;
        }
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if deadline <= *armed {
                this.lifecycle.retire(reason);
                return Poll::Ready(());
            }
            timer.as_mut().reset(deadline.into());
            *armed = deadline;
        }
    }
}
