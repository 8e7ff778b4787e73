//! The p2 driver: one call at a time per instance, run on the request's own
//! task.
//!
//! A p2 `incoming-handler.handle` call occupies its whole instance, so there
//! is nothing to schedule inside an instance: the request's task takes an
//! idle instance (or a warm or new one), calls the export, and gives hyper
//! the response as soon as the guest sets it. A guest writes its body after
//! that: a small one fits the channel to hyper and the call has returned by
//! the time the response goes out, while a call still writing (each flush
//! waiting for hyper to take the bytes) finishes on a task of its own, which
//! parks the instance for the next request. This
//! skips `ProxyHandler`'s hop to a worker task and back and its
//! `run_concurrent` event loop, which is what lets p2 components run on an
//! engine without concurrency support (see `component::load`). The policy,
//! warm set, deadlines and accounting are the same as for p3 instances:
//! [`Worker`] and [`Expiration`] serve both drivers.

use super::dispatch::{
    CallTicket, Dispatch, DispatchInner, Expiration, ProxyInstance, Worker, discard,
};
use crate::runtime::failure::CallError;
use crate::runtime::instance::InstanceState;
use crate::policy::Retirement;
use crate::policy::EXPIRY_GRACE;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Instant;
use tokio::sync::oneshot;
use wasmtime::{AsContextMut, Store};
use wasmtime_wasi_http::WasiHttpCtxView;
use wasmtime_wasi_http::handler::{
    Instance, Proxy, Request, Response, ShouldAccept, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p2::bindings::Proxy as P2Proxy;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};

/// Instances between calls, most recently used last, and whether a task is
/// watching them for their idle timeout and maximum age.
#[derive(Default)]
pub(super) struct IdleSet {
    parked: Vec<Parked>,
    reaping: bool,
}

impl IdleSet {
    /// The least recently used instance, to end for room elsewhere.
    pub(super) fn take_oldest(&mut self) -> Option<ProxyInstance> {
        (!self.parked.is_empty()).then(|| self.parked.remove(0).instance)
    }
}

/// Instances still parked when their set goes (the server stops) end with
/// it.
impl Drop for IdleSet {
    fn drop(&mut self) {
        for parked in self.parked.drain(..) {
            parked.instance.state.retire(Retirement::Shutdown);
            discard(parked.instance);
        }
    }
}

pub(super) struct Parked {
    instance: ProxyInstance,
    since: Instant,
}

impl Parked {
    /// When this instance stops being worth keeping, and why.
    fn expiry(&self) -> Option<(Instant, Retirement)> {
        self.instance
            .expiration
            .deadline(WorkerStatus::Idle, self.since)
    }
}

/// What a call hands back when it ends: the instance's store and bindings,
/// and how the call went.
type Finished = (Store<InstanceState>, P2Proxy, wasmtime::Result<()>);

impl Dispatch {
    /// Serves `request` on an instance of this (p2) set.
    pub(super) async fn serve_direct(
        &self,
        ticket: Arc<CallTicket>,
        request: Request,
    ) -> Result<Response, CallError> {
        // However the call ends, its ticket learns when the instance is
        // free again.
        let settle = Settle(ticket.clone());
        let instance = match self.take_idle() {
            Some(instance) => instance,
            None => self
                .warm_or_new()
                .await
                .map_err(|e| CallError::Instantiation(e.into()))?,
        };
        let Instance {
            mut store,
            proxy,
            view,
            expiration,
            state: worker,
        } = instance;
        let Proxy::P2(proxy) = proxy else {
            unreachable!("p3 sets are driven by ProxyHandler");
        };
        let timeout = worker.start_call(store.as_context_mut(), &ticket);
        let deadline = timeout.map(|t| Instant::now() + t);
        let (respond, mut response) = oneshot::channel();
        let mut http = view(store.data_mut());
        let resources = http
            .new_incoming_request(Scheme::Http, request)
            .and_then(|incoming| Ok((incoming, http.new_response_outparam(respond)?)));
        let (incoming, outparam) = match resources {
            Ok(resources) => resources,
            Err(e) => {
                let failure = CallError::from_wasmtime(e);
                worker.ended(Some(&failure));
                return Err(failure);
            }
        };
        let call = Box::pin(async move {
            let result = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await;
            (store, proxy, result)
        });
        let mut running = Running {
            set: self,
            call: Some(call),
            parts: Some(Parts {
                view,
                expiration,
                worker,
                _settle: settle,
            }),
            deadline,
        };
        let mut timer = pin!(async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        });
        let outcome = std::future::poll_fn(|cx| {
            if let Some(call) = &mut running.call
                && let Poll::Ready(finished) = call.as_mut().poll(cx)
            {
                return Poll::Ready(Outcome::Finished(finished));
            }
            if let Poll::Ready(answer) = Pin::new(&mut response).poll(cx) {
                return Poll::Ready(Outcome::Answered(answer.ok()));
            }
            timer.as_mut().poll(cx).map(|()| Outcome::Overdue)
        })
        .await;
        match outcome {
            Outcome::Finished(finished) => {
                // A response set before a trap still goes out, as it would
                // have had the call gone on after it.
                let answer = response.try_recv();
                match (answer, running.finish(finished)) {
                    (Ok(answer), _) => answer.map_err(guest_error_code),
                    // What users search for, with the trap that caused it.
                    (Err(_), Err(CallError::Trap(trap))) => Err(CallError::NoResponse(Some(trap))),
                    (Err(_), Err(failed)) => Err(failed),
                    (Err(_), Ok(())) => Err(CallError::NoResponse(None)),
                }
            }
            // The guest answered and may still be writing the body, or
            // dropped the outparam and goes on: dropping `running` lets the
            // call finish on a task of its own.
            Outcome::Answered(Some(answer)) => answer.map_err(guest_error_code),
            Outcome::Answered(None) => Err(CallError::NoResponse(None)),
            Outcome::Overdue => {
                running.expire();
                Err(CallError::Timeout)
            }
        }
    }

    /// A warm instance, or a new one. When the most instances allowed are
    /// alive, whichever comes first: room for a new one, or an instance
    /// parked by a call that ended (under steady load, instances are parked
    /// and taken again long before any ends).
    async fn warm_or_new(&self) -> wasmtime::Result<ProxyInstance> {
        if let Some(instance) = self.take_warm() {
            return Ok(instance);
        }
        let manager = &self.0.manager;
        loop {
            if let Some(slot) = manager.try_slot() {
                return self.create(slot).await;
            }
            // This set's own idle instance is better than room for a new one
            // made by ending another set's.
            if let Some(instance) = self.take_idle() {
                return Ok(instance);
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
            if let Some(instance) = self.take_idle() {
                return Ok(instance);
            }
            tokio::select! {
                slot = &mut room => break slot,
                () = parked => {}
            }
        };
        self.create(slot).await
    }

    /// An instance whose call ended: parked for the next call if the policy
    /// lets it take one, otherwise ended. Returns the call's error.
    fn after_call(&self, (store, proxy, result): Finished, parts: Parts) -> Result<(), CallError> {
        let Parts {
            view,
            expiration,
            worker,
            _settle,
        } = parts;
        if let Err(failed) = result {
            // After a trap the instance must not be entered again. The
            // worker records why it failed, where the front end looks.
            let failure = CallError::from_wasmtime(failed);
            worker.ended(Some(&failure));
            return Err(failure);
        }
        let instance = Instance {
            store,
            proxy: Proxy::P2(proxy),
            view,
            expiration,
            state: worker,
        };
        let served = instance.state.accepted();
        match instance.state.should_accept_request(0, served) {
            ShouldAccept::Yes | ShouldAccept::No => self.park_idle(instance),
            ShouldAccept::Never => discard(instance),
        }
        Ok(())
    }

    /// The most recently used idle instance that may take a call; expired
    /// ones met on the way are ended.
    fn take_idle(&self) -> Option<ProxyInstance> {
        loop {
            let parked = self.0.idle.lock().unwrap().parked.pop()?;
            if let Some((at, reason)) = parked.expiry()
                && Instant::now() >= at
            {
                parked.instance.state.retire(reason);
                discard(parked.instance);
                continue;
            }
            let instance = parked.instance;
            let served = instance.state.accepted();
            match instance.state.should_accept_request(0, served) {
                ShouldAccept::Yes => return Some(instance),
                ShouldAccept::No | ShouldAccept::Never => discard(instance),
            }
        }
    }

    fn park_idle(&self, instance: ProxyInstance) {
        let start_reaper = {
            let mut idle = self.0.idle.lock().unwrap();
            idle.parked.push(Parked {
                instance,
                since: Instant::now(),
            });
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

/// Ends idle instances of a set as they expire, so an idle set gives its
/// memory back without waiting for traffic; stops when none are left (the
/// next one parked starts it again) or the set is gone.
async fn reap(set: Weak<DispatchInner>) {
    loop {
        let next = {
            let Some(set) = set.upgrade() else { return };
            let now = Instant::now();
            let (expired, next) = {
                let mut idle = set.idle.lock().unwrap();
                let (expired, kept): (Vec<Parked>, Vec<Parked>) = std::mem::take(&mut idle.parked)
                    .into_iter()
                    .partition(|p| p.expiry().is_some_and(|(at, _)| now >= at));
                idle.parked = kept;
                let next = idle
                    .parked
                    .iter()
                    .filter_map(|p| p.expiry())
                    .map(|(at, _)| at)
                    .min();
                if next.is_none() {
                    idle.reaping = false;
                }
                (expired, next)
            };
            for parked in expired {
                if let Some((_, reason)) = parked.expiry() {
                    parked.instance.state.retire(reason);
                }
                discard(parked.instance);
            }
            match next {
                Some(at) => at,
                None => return,
            }
        };
        tokio::time::sleep_until(next.into()).await;
    }
}

/// How the wait for a call's answer ended.
enum Outcome {
    /// The call returned (the response, if set, is in the channel).
    Finished(Finished),
    /// The guest set the response (`None`: dropped the outparam unset)
    /// while its call goes on.
    Answered(Option<Result<Response, ErrorCode>>),
    /// The call deadline passed first.
    Overdue,
}

/// A call in progress and the rest of its instance.
///
/// Dropped before the call returns (the guest answered and is still writing
/// its body, or the client went away), it lets the call finish on a task of
/// its own within the same deadline, so the instance is parked or ended as
/// usual instead of vanishing with the request.
struct Running<'a> {
    set: &'a Dispatch,
    call: Option<Pin<Box<dyn Future<Output = Finished> + Send>>>,
    parts: Option<Parts>,
    deadline: Option<Instant>,
}

impl Running<'_> {
    /// The call returned.
    fn finish(mut self, finished: Finished) -> Result<(), CallError> {
        self.call = None;
        let parts = self.parts.take().expect("parts are taken once");
        self.set.after_call(finished, parts)
    }

    /// The deadline passed: dropping the call drops the store.
    fn expire(mut self) {
        self.call = None;
        if let Some(parts) = self.parts.take() {
            parts.overdue();
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let (Some(call), Some(parts)) = (self.call.take(), self.parts.take()) else {
            return;
        };
        let set = self.set.clone();
        let deadline = self.deadline;
        let rest = async move {
            let finished = match deadline {
                Some(at) => tokio::time::timeout_at((at + EXPIRY_GRACE).into(), call)
                    .await
                    .ok(),
                None => Some(call.await),
            };
            match finished {
                Some(finished) => {
                    // A failure was the guest's own, and is logged as such.
                    let _ = set.after_call(finished, parts);
                }
                None => parts.overdue(),
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(rest)),
            // Only outside a runtime, when the process is going away.
            Err(_) => drop(rest),
        }
    }
}

/// The parts of an instance that stay outside its running call.
struct Parts {
    view: fn(&mut InstanceState) -> WasiHttpCtxView<'_>,
    expiration: Expiration,
    worker: Worker,
    /// Dropped last, once the instance is parked or ended.
    _settle: Settle,
}

/// Settles a call's ticket when dropped.
struct Settle(Arc<CallTicket>);

impl Drop for Settle {
    fn drop(&mut self) {
        self.0.settle();
    }
}

impl Parts {
    /// The call outlived its deadline; dropping it dropped the store.
    fn overdue(self) {
        self.worker.ended(Some(&CallError::Timeout));
    }
}

/// The guest's own answer of an HTTP error code instead of a response.
fn guest_error_code(code: ErrorCode) -> CallError {
    CallError::GuestErrorCode(format!("{code:?}"))
}
