//! How a call failed, as a type made where the failure happens.
//!
//! Every front end needs the same three answers about a failed call: why its
//! instance must go (the retirement reason metrics count), what the caller
//! is told (an HTTP status, an exit code) and one line for the log. They all
//! derive from [`CallError`], so no caller matches message text.
//!
//! The one text match left is [`CallError::from_wasmtime`]'s for
//! `ProxyHandler`'s "never set a response" error, which
//! `wasmtime_wasi_http` 48 creates from a string; a test pins its wording.

use crate::policy::Retirement;
use http::StatusCode;
use wasmtime::WasmBacktrace;
use wasmtime_wasi::I32Exit;

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

/// `wasmtime_wasi_http`'s words for a p2 call that ended without calling
/// `response-outparam.set`, which users search for; Reprise's own p2 driver
/// says the same.
pub const NO_RESPONSE: &str = "guest never invoked `response-outparam::set` method";

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
        // `ProxyHandler` makes this error from text, with no type to find.
        if error.chain().any(|cause| cause.to_string() == NO_RESPONSE) {
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
