//! How a call failed, as a type made where the failure happens.
//!
//! Every front end needs the same three answers about a failed call: why its
//! instance must go (the retirement reason metrics count), what the caller
//! is told (an HTTP status, an exit code) and one line for the log. They all
//! derive from [`CallError`], so no caller matches message text.
//!
//! Wasmtime 48 makes a few errors from text alone, with no type to find:
//! `ProxyHandler`'s "never set a response", and the compiler's refusals of
//! a component that does not fit the pooling allocator's slots. Every match
//! on their words is in [`wasmtime48_texts`], each pinned by a test that
//! makes the error with the real engine.

use crate::policy::Retirement;
use http::StatusCode;
use wasmtime::WasmBacktrace;
use wasmtime_wasi::I32Exit;
use wasmtime48_texts::NO_RESPONSE;

/// Why a call produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Guest code trapped (or a host call it made failed fatally).
    #[error("trapped: {}", summary(.0))]
    Trap(anyhow::Error),
    /// The call ran past its deadline (`--timeout`).
    #[error("ran past the --timeout limit")]
    Timeout,
    /// The guest grew its linear memory past the cap (`--max-memory`); how
    /// far, when the error that says so reached this caller.
    #[error("grew past the --max-memory limit{}", .0.map(|cap| format!(" ({cap})")).unwrap_or_default())]
    Memory(Option<MemoryCapExceeded>),
    /// A wasi:http call ended without setting a response: it returned, or
    /// it trapped first (the trap, if any, comes with it).
    #[error("{NO_RESPONSE}{}", .0.as_ref().map(|e| format!(" (trapped: {})", summary(e))).unwrap_or_default())]
    NoResponse(Option<anyhow::Error>),
    /// No instance could be created for the call.
    #[error("could not be instantiated: {}", crate::runtime::component::one_line(.0))]
    Instantiation(anyhow::Error),
    /// The guest answered with a wasi:http error code instead of a
    /// response: a deliberate answer, after which its instance may stay.
    #[error("answered with the error code {0}")]
    GuestErrorCode(String),
    /// The guest called `wasi:cli/exit`, which ends its instance: a
    /// command's normal way to finish with an exit code.
    #[error("exited with code {0}")]
    Exit(i32),
    /// The caller went away before an answer, and the call was stopped.
    #[error("was stopped: its client went away")]
    Cancelled,
    /// The host is shutting down and ended the call's instance.
    #[error("was ended by the host's shutdown")]
    Shutdown,
}

/// A memory growth refused by the instance's cap: the error the store's
/// limiter raises, so it is recognized by type wherever it surfaces.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("growing to {desired} bytes, above {cap} bytes")]
pub struct MemoryCapExceeded {
    pub desired: u64,
    pub cap: u64,
}

impl CallError {
    /// The failure a wasmtime error stands for, found by the types in its
    /// chain: an epoch interrupt or a `ProxyHandler` expiration is a
    /// timeout, a refused memory growth the memory cap, `wasi:cli/exit` an
    /// exit, a wasi:http error code the guest's answer; anything else a
    /// trap.
    pub fn from_wasmtime(error: impl Into<anyhow::Error>) -> Self {
        let error = error.into();
        for cause in error.chain() {
            if cause.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt)
                || cause
                    .downcast_ref::<wasmtime_wasi_http::handler::ExpirationError>()
                    .is_some()
            {
                return CallError::Timeout;
            }
            if let Some(cap) = cause.downcast_ref::<MemoryCapExceeded>() {
                return CallError::Memory(Some(*cap));
            }
            if let Some(exit) = cause.downcast_ref::<I32Exit>() {
                return CallError::Exit(exit.0);
            }
            if let Some(code) = guest_error_code(cause) {
                return CallError::GuestErrorCode(code);
            }
        }
        if error.chain().any(wasmtime48_texts::is_no_response) {
            let trapped = error.chain().count() > 1;
            return CallError::NoResponse(trapped.then_some(error));
        }
        CallError::Trap(error)
    }

    /// Why the call's instance is retired; `None` when it may stay (the
    /// guest answered with an error code of its own).
    pub fn retirement(&self) -> Option<Retirement> {
        Some(match self {
            CallError::Trap(_) | CallError::NoResponse(_) => Retirement::Trap,
            CallError::Timeout => Retirement::Timeout,
            CallError::Memory(_) => Retirement::Memory,
            CallError::Exit(_) => Retirement::Exit,
            CallError::Cancelled => Retirement::Cancelled,
            CallError::Shutdown => Retirement::Shutdown,
            CallError::Instantiation(_) | CallError::GuestErrorCode(_) => return None,
        })
    }

    /// Whether the call's failure is the guest's fault (counted in
    /// `reprise_call_errors_total`), rather than a normal end (`exit`) or
    /// the host's doing (shutdown).
    pub fn is_error(&self) -> bool {
        !matches!(
            self,
            CallError::Exit(_) | CallError::Shutdown | CallError::Cancelled
        )
    }

    /// What the trap said, in one line, if the call trapped.
    pub fn trap(&self) -> Option<String> {
        match self {
            CallError::Trap(error) => Some(summary(error)),
            _ => None,
        }
    }

    /// The exit code the guest asked for with `wasi:cli/exit`, if that is
    /// how the call ended.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            CallError::Exit(code) => Some(*code),
            _ => None,
        }
    }

    /// The HTTP status and body a wasi:http caller gets instead of the
    /// guest's response.
    pub fn http_answer(&self) -> (StatusCode, String) {
        let message = match self {
            CallError::Timeout => {
                return (
                    StatusCode::GATEWAY_TIMEOUT,
                    "the component did not respond before the request timeout\n".into(),
                );
            }
            CallError::Memory(_) => "the component exceeded its memory limit\n".to_string(),
            CallError::Instantiation(_) => "the component could not be instantiated\n".into(),
            CallError::GuestErrorCode(code) => {
                format!("the component answered with an error: {code}\n")
            }
            CallError::Shutdown => "the server is shutting down\n".into(),
            CallError::Cancelled => "the request was cancelled\n".into(),
            CallError::Trap(_) | CallError::NoResponse(_) | CallError::Exit(_) => {
                "the component failed while handling the request\n".into()
            }
        };
        (StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// Every match on the words of a wasmtime error, for the errors wasmtime 48
/// makes from text with no type to recognize them by. Each is wasmtime 48's
/// wording, pinned by a test that gets the error from the real engine, so
/// an upgrade that rewords one fails that test instead of quietly
/// misclassifying the failure.
pub mod wasmtime48_texts {
    /// `wasmtime_wasi_http::handler`'s error for a p2 call under
    /// `ProxyHandler` that ended without calling `response-outparam.set`.
    /// Users search for these words, so Reprise's own p2 driver says the
    /// same.
    pub const NO_RESPONSE: &str = "guest never invoked `response-outparam::set` method";

    /// In the compiler's refusal of a component that does not fit the
    /// pooling allocator's slots (memory, table or instance size).
    const POOLING_ALLOCATOR: &str = "pooling allocator";

    /// In that refusal when it is a linear memory whose initial size is
    /// above the slot's (derived from `--max-memory`).
    const MEMORY_MINIMUM: &str = "memory has a minimum byte size";

    /// Whether `cause` is `ProxyHandler`'s "never set a response" error.
    pub fn is_no_response(cause: &(dyn std::error::Error + 'static)) -> bool {
        cause.to_string() == NO_RESPONSE
    }

    /// Whether a compile error (as one line) is a refusal by the pooling
    /// allocator's slot limits.
    pub fn exceeds_pool(message: &str) -> bool {
        message.contains(POOLING_ALLOCATOR)
    }

    /// Whether a pool refusal (as one line) is for a memory that starts
    /// above the slot's size.
    pub fn memory_starts_above_slot(message: &str) -> bool {
        message.contains(MEMORY_MINIMUM)
    }
}

/// The wasi:http error code (p2 or p3) `cause` is, if it is one.
fn guest_error_code(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    use wasmtime_wasi_http::{p2, p3};
    if let Some(code) = cause.downcast_ref::<p2::bindings::http::types::ErrorCode>() {
        return Some(format!("{code:?}"));
    }
    cause
        .downcast_ref::<p3::bindings::http::types::ErrorCode>()
        .map(|code| format!("{code:?}"))
}

/// What went wrong in one line, e.g. "wasm trap: wasm `unreachable`
/// instruction executed in `_start`": the cause and the guest function it
/// happened in, without the full backtrace (logged at debug level).
fn summary(error: &anyhow::Error) -> String {
    tracing::debug!("call failed: {error:?}");
    let cause = error.root_cause().to_string();
    let function = error
        .downcast_ref::<WasmBacktrace>()
        .and_then(|backtrace| backtrace.frames().first()?.func_name());
    match function {
        Some(function) => format!("{cause} in `{function}`"),
        None => cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use crate::pool::{InstanceLimits, InstanceManager};
    use crate::runtime::component::{Source, load};
    use crate::runtime::engine::EngineOptions;
    use crate::runtime::instance::InstanceState;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Instant;
    use wasmtime::component::GuestTaskId;
    use wasmtime::{Store, StoreContextMut};
    use wasmtime_wasi_http::handler::{
        HandlerState, Instance, ProxyHandler, ProxyPre, ShouldAccept, WorkerExpiration,
        WorkerState, WorkerStatus,
    };
    use wasmtime_wasi_http::{WasiBody, WasiHttpView};

    #[test]
    fn failures_are_classified_by_type_under_context() {
        let classify = |e: wasmtime::Error| CallError::from_wasmtime(e.context("while calling"));
        let interrupt = classify(wasmtime::Error::new(wasmtime::Trap::Interrupt));
        assert!(matches!(interrupt, CallError::Timeout));
        assert_eq!(interrupt.retirement(), Some(Retirement::Timeout));
        assert_eq!(interrupt.http_answer().0, StatusCode::GATEWAY_TIMEOUT);

        let expired = classify(wasmtime::Error::new(
            wasmtime_wasi_http::handler::ExpirationError,
        ));
        assert!(matches!(expired, CallError::Timeout));

        let cap = MemoryCapExceeded {
            desired: 2 << 20,
            cap: 1 << 20,
        };
        let memory = classify(wasmtime::Error::new(cap));
        assert_eq!(memory.retirement(), Some(Retirement::Memory));

        let exit = classify(wasmtime::Error::new(I32Exit(3)));
        assert_eq!(exit.exit_code(), Some(3));
        assert!(!exit.is_error());

        let unreachable = classify(wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached));
        assert!(matches!(unreachable, CallError::Trap(_)));
        assert_eq!(unreachable.retirement(), Some(Retirement::Trap));
        assert_eq!(
            unreachable.http_answer().0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn a_guest_error_code_keeps_its_instance() {
        use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
        let answered = CallError::from_wasmtime(wasmtime::Error::new(ErrorCode::HttpRequestDenied));
        assert!(
            matches!(&answered, CallError::GuestErrorCode(code) if code.contains("HttpRequestDenied"))
        );
        assert_eq!(answered.retirement(), None);
    }

    /// A p2 handler that returns without setting its response. It declares
    /// a stream type, an async feature, so [`load`] gives it an engine with
    /// concurrency support: the engine on which Reprise serves a p2
    /// component through `ProxyHandler`.
    const SETS_NO_RESPONSE: &str = r#"(component
        (type (stream u8))
        (import "wasi:http/types@0.2.12" (instance $types
            (export "incoming-request" (type (sub resource)))
            (export "response-outparam" (type (sub resource)))))
        (alias export $types "incoming-request" (type $request))
        (alias export $types "response-outparam" (type $out))
        (core module $m (func (export "handle") (param i32 i32)))
        (core instance $i (instantiate $m))
        (func $handle (param "request" (own $request)) (param "response-out" (own $out))
            (canon lift (core func $i "handle")))
        (instance $handler (export "handle" (func $handle)))
        (export "wasi:http/incoming-handler@0.2.12" (instance $handler)))"#;

    /// The smallest `ProxyHandler` state: a fresh instance of `pre` per
    /// worker, never expired, taking every request.
    struct FreshInstances {
        manager: Arc<InstanceManager>,
        pre: ProxyPre<InstanceState>,
    }

    struct NeverExpires;

    struct TakesAll;

    impl HandlerState for FreshInstances {
        type StoreData = InstanceState;
        type WorkerExpiration = NeverExpires;
        type WorkerState = TakesAll;

        async fn instantiate(
            &self,
        ) -> wasmtime::Result<Instance<InstanceState, NeverExpires, TakesAll>> {
            let mut store = self.manager.new_store(self.manager.slot().await)?;
            Ok(Instance {
                proxy: self.pre.instantiate_async(&mut store).await?,
                store,
                view: <InstanceState as WasiHttpView>::http,
                expiration: NeverExpires,
                state: TakesAll,
            })
        }
    }

    impl WorkerExpiration for NeverExpires {
        fn poll(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: WorkerStatus,
            _: Instant,
        ) -> Poll<()> {
            Poll::Pending
        }
    }

    impl WorkerState for TakesAll {
        type StoreData = InstanceState;
        type RequestData = ();

        fn should_accept_request(&self, _: usize, _: usize) -> ShouldAccept {
            ShouldAccept::Yes
        }

        fn on_request_start(
            &self,
            _: StoreContextMut<'_, InstanceState>,
            _: (),
            _: GuestTaskId,
        ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
            Box::pin(std::future::pending())
        }

        fn drop(&self, _: Store<InstanceState>, _: wasmtime::Result<()>) {}
    }

    /// The no-response error as `wasmtime_wasi_http` 48's `ProxyHandler`
    /// really makes it, for a p2 guest that returns without setting a
    /// response: pins the words [`wasmtime48_texts::is_no_response`]
    /// matches. The error is taken from `ProxyHandler` itself because past
    /// it, in the HTTP front end, a missed match would not show: a trap
    /// gets the same status and retirement as no response.
    #[tokio::test]
    async fn proxy_handlers_real_no_response_error_is_recognized() {
        let bytes = wat::parse_str(SETS_NO_RESPONSE).unwrap();
        let source = Source::File("sets-no-response.wasm".into());
        let (engine, component) = load(&EngineOptions::default(), &bytes, &source).unwrap();
        assert!(engine.engine.get_concurrency_support());
        let manager =
            InstanceManager::new(engine, component, InstanceLimits::default(), Policy::Fresh)
                .unwrap();
        let manager = Arc::new(manager);
        let (pre, _) = crate::front::http::proxy_pre(&manager).unwrap();
        let handler = ProxyHandler::new(FreshInstances { manager, pre });
        let request = http::Request::get("http://localhost/")
            .body(WasiBody::default())
            .unwrap();
        let error = handler.handle((), request).await.unwrap_err();
        let unset = CallError::from_wasmtime(error);
        assert!(matches!(unset, CallError::NoResponse(None)), "{unset}");
        assert_eq!(unset.retirement(), Some(Retirement::Trap));
        assert_eq!(unset.http_answer().0, StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// `wasmtime_wasi_http` 48's p2 handler reports a call that set no
    /// response only as text, wrapping whatever the guest did (a trap)
    /// under it; the text alone is recognized, a trap under it still
    /// retires its instance as a trap.
    #[test]
    fn proxy_handlers_no_response_text_is_recognized() {
        let unset = CallError::from_wasmtime(wasmtime::Error::msg(NO_RESPONSE));
        assert!(matches!(unset, CallError::NoResponse(None)));
        let trapped =
            wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached).context(NO_RESPONSE);
        let trapped = CallError::from_wasmtime(trapped);
        assert_eq!(trapped.retirement(), Some(Retirement::Trap));
        assert!(trapped.to_string().starts_with(NO_RESPONSE), "{trapped}");
        assert!(trapped.to_string().contains("unreachable"), "{trapped}");
    }
}
