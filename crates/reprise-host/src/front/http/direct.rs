//! The p2 driver: one call at a time per instance, run on the request's own
//! task.
//!
//! A p2 `incoming-handler.handle` call occupies its whole instance, so there
//! is nothing to schedule inside an instance: the request's task leases an
//! instance from the pool, calls the export, and gives hyper the response as
//! soon as the guest sets it. A guest writes its body after that: a small
//! one fits the channel to hyper and the call has returned by the time the
//! response goes out, while a call still writing (each flush waiting for
//! hyper to take the bytes) finishes on a task of its own, which gives the
//! instance back for the next request. This skips `ProxyHandler`'s hop to a
//! worker task and back and its `run_concurrent` event loop, which is what
//! lets p2 components run on an engine without concurrency support (see
//! `component::load`). Policy, warm and idle instances, deadlines and
//! accounting are the pool's, as for every front end.

use crate::policy::EXPIRY_GRACE;
use crate::pool::{Lifecycle, Pool, Pooled};
use crate::runtime::failure::CallError;
use crate::runtime::instance::InstanceState;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{Proxy, Request, Response};
use wasmtime_wasi_http::p2::bindings::Proxy as P2Proxy;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};

/// What a call hands back when it ends: the instance's store and bindings,
/// and how the call went.
type Finished = (Store<InstanceState>, P2Proxy, wasmtime::Result<()>);

/// Serves `request` on an instance leased from `pool`, a set of p2
/// instances. `taken` learns which instance took the call and returns a
/// guard, dropped once that instance is parked for the next call or ended
/// (or, when no instance could be leased, right away): the caller's way to
/// know when the call lets go of its instance, without this driver knowing
/// the caller's bookkeeping.
pub(super) async fn serve<G: Send + 'static>(
    pool: &Pool<Proxy>,
    request: Request,
    taken: impl FnOnce(&Arc<Lifecycle>) -> G,
) -> Result<Response, CallError> {
    let Pooled {
        mut store,
        export,
        lifecycle,
    } = pool
        .lease()
        .await
        .map_err(|e| CallError::Instantiation(e.into()))?;
    let released = taken(&lifecycle);
    let Proxy::P2(proxy) = export else {
        unreachable!("p3 sets are driven by ProxyHandler");
    };
    // The deadline the lease armed, read back rather than the clock read
    // again.
    let deadline = store.data().call_deadline.or_else(|| {
        let timeout = pool.manager().limits().timeout;
        timeout.map(|t| Instant::now() + t)
    });
    let (respond, mut response) = oneshot::channel();
    let mut http = store.data_mut().http();
    let resources = http
        .new_incoming_request(Scheme::Http, request)
        .and_then(|incoming| Ok((incoming, http.new_response_outparam(respond)?)));
    let (incoming, outparam) = match resources {
        Ok(resources) => resources,
        Err(e) => {
            let failure = CallError::from_wasmtime(e);
            pool.ended(&lifecycle, Some(&failure));
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
        pool,
        call: Some(call),
        parts: Some(Parts {
            lifecycle,
            _released: released,
        }),
        deadline,
        abandoned: true,
        failure: None,
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
    // From here on the caller has its answer (or its error): whatever runs
    // on, runs for a reason.
    running.abandoned = false;
    match outcome {
        Outcome::Finished(finished) => {
            // A response set before a trap has not left yet: the client
            // gets the failure instead of a body that may be short.
            let answer = response.try_recv();
            match (answer, running.finish(finished)) {
                (Ok(answer), Ok(())) => answer.map_err(guest_error_code),
                // What users search for, with the trap that caused it.
                (Err(_), Err(CallError::Trap(trap))) => Err(CallError::NoResponse(Some(trap))),
                (_, Err(failed)) => Err(failed),
                (Err(_), Ok(())) => Err(CallError::NoResponse(None)),
            }
        }
        // The guest answered and may still be writing the body, or dropped
        // the outparam and goes on: dropping `running` lets the call finish
        // on a task of its own.
        // Should the call then fail, its body ends in an error (`cut.rs`).
        Outcome::Answered(Some(Ok(answer))) => {
            let (answer, failure) = super::cut::watched(answer);
            running.failure = Some(failure);
            Ok(answer)
        }
        Outcome::Answered(Some(Err(code))) => Err(guest_error_code(code)),
        Outcome::Answered(None) => Err(CallError::NoResponse(None)),
        Outcome::Overdue => {
            running.expire();
            Err(CallError::Timeout)
        }
    }
}

/// An instance whose call ended goes back to the pool, which parks it for
/// the next call or ends it. Returns the call's error.
fn after_call<G>(
    pool: &Pool<Proxy>,
    (store, proxy, result): Finished,
    parts: Parts<G>,
) -> Result<(), CallError> {
    let Parts {
        lifecycle,
        _released,
    } = parts;
    let failure = result.err().map(CallError::from_wasmtime);
    let pooled = Pooled {
        store,
        export: Proxy::P2(proxy),
        lifecycle,
    };
    pool.give_back(pooled, failure.as_ref());
    failure.map_or(Ok(()), Err)
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
struct Running<'a, G: Send + 'static> {
    pool: &'a Pool<Proxy>,
    call: Option<Pin<Box<dyn Future<Output = Finished> + Send>>>,
    parts: Option<Parts<G>>,
    deadline: Option<Instant>,
    /// True until the call answered, failed or ran out of time: dropped
    /// while still true, the request was dropped by a client that went
    /// away, and the call is stopped instead of running on for nobody.
    abandoned: bool,
    /// Told when the call fails after its response left, before its store
    /// (and so the response body's sender) is dropped.
    failure: Option<oneshot::Sender<()>>,
}

impl<G: Send + 'static> Running<'_, G> {
    /// The call returned.
    fn finish(mut self, finished: Finished) -> Result<(), CallError> {
        self.call = None;
        let parts = self.parts.take().expect("parts are taken once");
        after_call(self.pool, finished, parts)
    }

    /// The deadline passed: dropping the call drops the store.
    fn expire(mut self) {
        self.call = None;
        if let Some(parts) = self.parts.take() {
            parts.overdue(self.pool);
        }
    }
}

impl<G: Send + 'static> Drop for Running<'_, G> {
    fn drop(&mut self) {
        let (Some(call), Some(parts)) = (self.call.take(), self.parts.take()) else {
            return;
        };
        if self.abandoned {
            // Dropping the call drops the store, stopping the guest where
            // it last yielded (an epoch tick at the latest).
            drop(call);
            tracing::debug!(
                instance = parts.lifecycle.id(),
                "the client went away before the answer; call stopped"
            );
            self.pool
                .ended(&parts.lifecycle, Some(&CallError::Cancelled));
            return;
        }
        let pool = self.pool.clone();
        let deadline = self.deadline;
        let failure = self.failure.take();
        let rest = async move {
            let mut call = call;
            let finished = match deadline {
                Some(at) => tokio::time::timeout_at((at + EXPIRY_GRACE).into(), &mut call)
                    .await
                    .ok(),
                None => Some((&mut call).await),
            };
            if let Some(failure) = failure
                && finished
                    .as_ref()
                    .is_none_or(|(_, _, result)| result.is_err())
            {
                let _ = failure.send(());
            }
            drop(call);
            match finished {
                Some(finished) => {
                    // A failure was the guest's own, and is logged as such.
                    let _ = after_call(&pool, finished, parts);
                }
                None => parts.overdue(&pool),
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(rest)),
            // Only outside a runtime, when the process is going away.
            Err(_) => drop(rest),
        }
    }
}

/// What stays outside a running call: its instance's lifecycle, and the
/// caller's guard to drop once the instance is back in the pool or gone.
struct Parts<G> {
    lifecycle: Arc<Lifecycle>,
    /// Dropped last, once the instance is parked or ended.
    _released: G,
}

impl<G> Parts<G> {
    /// The call outlived its deadline; dropping it dropped the store.
    fn overdue(self, pool: &Pool<Proxy>) {
        pool.ended(&self.lifecycle, Some(&CallError::Timeout));
    }
}

/// The guest's own answer of an HTTP error code instead of a response.
fn guest_error_code(code: ErrorCode) -> CallError {
    CallError::GuestErrorCode(format!("{code:?}"))
}
