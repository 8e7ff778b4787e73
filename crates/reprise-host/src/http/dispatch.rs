//! Dispatching HTTP requests to component instances.
//!
//! Built on `wasmtime_wasi_http::handler::ProxyHandler`, which already runs
//! each instance as a worker task that pulls requests from a shared queue,
//! drives p3 concurrency with guest backpressure, and enforces expirations
//! even when a guest spins inside the store. Reprise supplies the three
//! policy hooks it exposes:
//! - [`HandlerState::instantiate`]: instances come from the shared
//!   [`InstanceManager`] (numbered, counted, memory-capped, deadline-armed);
//! - [`WorkerState::should_accept_request`]: the pure [`Policy::admit`]
//!   decides whether an instance takes another call;
//! - [`WorkerExpiration::poll`]: idle timeout, maximum age and the call
//!   deadline retire instances.
//! What `ProxyHandler` does not give is a choice of *which* instance serves a
//! call (any available worker takes the next request); features that need
//! that choice are layered on top by keeping several handlers and picking one.

use crate::instance::{InstanceId, InstanceState};
use crate::manager::InstanceManager;
use crate::metrics::Retirement;
use crate::policy::{Admit, InstanceStats};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};

/// The [`HandlerState`] of Reprise's HTTP front end.
pub struct Dispatch {
    manager: Arc<InstanceManager>,
    pre: ProxyPre<InstanceState>,
    /// Whether the export is p3 (`wasi:http/handler`), which can run calls
    /// concurrently on one instance.
    concurrent: bool,
}

impl Dispatch {
    pub fn new(manager: Arc<InstanceManager>, pre: ProxyPre<InstanceState>) -> Self {
        let concurrent = matches!(pre, ProxyPre::P3(_));
        Self {
            manager,
            pre,
            concurrent,
        }
    }

    pub fn manager(&self) -> &Arc<InstanceManager> {
        &self.manager
    }
}

/// Filled in by the instance that accepts a request, so the front end can
/// report which instance served it and retire that instance when the call
/// failed.
#[derive(Default)]
pub struct CallTicket {
    instance: OnceLock<Arc<Lifecycle>>,
}

impl CallTicket {
    /// The instance that took the call, if one did.
    pub fn instance_id(&self) -> Option<InstanceId> {
        self.instance.get().map(|l| l.id)
    }

    /// Marks the serving instance unusable: after a trap a component
    /// instance must not be entered again.
    pub fn poison(&self, reason: Retirement) {
        if let Some(lifecycle) = self.instance.get() {
            lifecycle.retire(reason);
        }
    }
}

/// What the front end and the worker share about one instance.
struct Lifecycle {
    id: InstanceId,
    created: Instant,
    retired: AtomicBool,
    reason: Mutex<Option<Retirement>>,
    accepted: AtomicU64,
}

impl Lifecycle {
    /// Records the first reason the instance stops taking calls.
    fn retire(&self, reason: Retirement) {
        let mut slot = self.reason.lock().unwrap();
        slot.get_or_insert(reason);
        self.retired.store(true, Relaxed);
    }

    fn reason(&self) -> Option<Retirement> {
        *self.reason.lock().unwrap()
    }
}

/// Per-instance [`WorkerState`].
pub struct Worker {
    manager: Arc<InstanceManager>,
    lifecycle: Arc<Lifecycle>,
    concurrent: bool,
}

impl HandlerState for Dispatch {
    type StoreData = InstanceState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<InstanceState, Expiration, Worker>> {
        let start = Instant::now();
        let mut store = self.manager.new_store();
        let id = store.data().id;
        let proxy = match self.pre.instantiate_async(&mut store).await {
            Ok(proxy) => proxy,
            Err(e) => {
                self.manager
                    .metrics()
                    .instantiation_failures
                    .fetch_add(1, Relaxed);
                tracing::error!(instance = id, "instantiation failed: {e:?}");
                return Err(e);
            }
        };
        self.manager.instance_created(start.elapsed());
        let lifecycle = Arc::new(Lifecycle {
            id,
            created: Instant::now(),
            retired: AtomicBool::new(false),
            reason: Mutex::new(None),
            accepted: AtomicU64::new(0),
        });
        let policy = self.manager.policy();
        Ok(Instance {
            store,
            proxy,
            view: <InstanceState as WasiHttpView>::http,
            expiration: Expiration {
                lifecycle: lifecycle.clone(),
                idle_timeout: policy.idle_timeout(),
                max_age: policy.max_age(),
                timeout: self.manager.limits().timeout,
                timer: None,
            },
            state: Worker {
                manager: self.manager.clone(),
                lifecycle,
                concurrent: self.concurrent,
            },
        })
    }
}

impl WorkerState for Worker {
    type StoreData = InstanceState;
    type RequestData = Arc<CallTicket>;

    fn should_accept_request(&self, concurrent_count: usize, total_count: usize) -> ShouldAccept {
        if self.lifecycle.retired.load(Relaxed) {
            return ShouldAccept::Never;
        }
        let stats = InstanceStats {
            served: total_count as u64,
            in_flight: u32::try_from(concurrent_count).unwrap_or(u32::MAX),
            age: self.lifecycle.created.elapsed(),
            memory: 0,
            concurrent: self.concurrent,
        };
        match self.manager.policy().admit(&stats) {
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
        mut store: StoreContextMut<'_, InstanceState>,
        ticket: Arc<CallTicket>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let _ = ticket.instance.set(self.lifecycle.clone());
        let previous = self.lifecycle.accepted.fetch_add(1, Relaxed);
        let metrics = self.manager.metrics();
        metrics.calls.fetch_add(1, Relaxed);
        if previous > 0 {
            metrics.reused_calls.fetch_add(1, Relaxed);
        }
        self.manager.arm_deadline(&mut store);
        match self.manager.limits().timeout {
            Some(timeout) => Box::pin(tokio::time::sleep(timeout)),
            None => Box::pin(std::future::pending()),
        }
    }

    fn drop(&self, store: Store<InstanceState>, result: wasmtime::Result<()>) {
        let reason = match result {
            Ok(()) => self.lifecycle.reason().unwrap_or(Retirement::MaxCalls),
            Err(e) => {
                let e = anyhow::Error::from(e);
                tracing::warn!(instance = self.lifecycle.id, "instance failed: {e:#}");
                self.lifecycle
                    .reason()
                    .unwrap_or_else(|| classify_failure(&e))
            }
        };
        self.manager.instance_retired(self.lifecycle.id, reason);
        drop(store);
    }
}

/// Which retirement reason a failed call or instance stands for.
pub fn classify_failure(error: &anyhow::Error) -> Retirement {
    for cause in error.chain() {
        if let Some(trap) = cause.downcast_ref::<wasmtime::Trap>() {
            if *trap == wasmtime::Trap::Interrupt {
                return Retirement::Timeout;
            }
        }
        if cause
            .downcast_ref::<wasmtime_wasi_http::handler::ExpirationError>()
            .is_some()
        {
            return Retirement::Timeout;
        }
        let text = cause.to_string();
        if text.contains("guest timed out") {
            return Retirement::Timeout;
        }
        if text.contains("forcing trap when growing memory") {
            return Retirement::Memory;
        }
    }
    Retirement::Trap
}

/// Per-instance [`WorkerExpiration`]: retires idle, old or overdue instances.
pub struct Expiration {
    lifecycle: Arc<Lifecycle>,
    idle_timeout: Option<Duration>,
    max_age: Option<Duration>,
    timeout: Option<Duration>,
    timer: Option<(Instant, Pin<Box<tokio::time::Sleep>>)>,
}

impl Expiration {
    /// The instant at which the worker expires in `status` entered at
    /// `start`, with the reason; `None` if it never does.
    fn deadline(&self, status: WorkerStatus, start: Instant) -> Option<(Instant, Retirement)> {
        let age = self
            .max_age
            .map(|max| (self.lifecycle.created + max, Retirement::Age));
        let own = match status {
            WorkerStatus::Idle => self.idle_timeout.map(|t| (start + t, Retirement::Idle)),
            // Second line of defence behind the epoch deadline: a guest
            // blocked in a host call is not interrupted by epochs.
            WorkerStatus::Requests => self
                .timeout
                .map(|t| (start + t + EXPIRY_GRACE, Retirement::Timeout)),
            WorkerStatus::PostReturn => None,
        };
        match (status, age, own) {
            // Age only retires an instance between calls.
            (WorkerStatus::Idle, Some(a), Some(o)) => Some(if a.0 <= o.0 { a } else { o }),
            (WorkerStatus::Idle, Some(a), None) => Some(a),
            (_, _, own) => own,
        }
    }
}

/// Extra time past the call deadline before the worker is torn down, so the
/// epoch trap (which produces a clean per-call error) normally wins.
const EXPIRY_GRACE: Duration = Duration::from_millis(250);

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
