//! Responses cut short by a failed call.
//!
//! A p2 guest writes its response body after the head left. When the call
//! then traps or runs out of time, its store goes away, and with it the
//! sending end of the body channel: wasmtime-wasi-http's body ends as if
//! complete, so hyper would write the terminating chunk and keep the
//! connection, and the client would take a short body for the whole one.
//! [`EndsInError`] turns that end into an error when the call behind it
//! failed, so hyper aborts: HTTP/1 closes the connection without the
//! terminating chunk, HTTP/2 resets the stream.
//!
//! A p3 guest writes its body from a task of its instance, which may serve
//! other calls too. When the instance traps, its store goes away, and
//! wasmtime-wasi-http's body takes the trailers it will never get for a
//! clean end, in the same way; [`on_instance`] watches the instance
//! instead of the call.
//!
//! (A call that fails before its response left is answered with its
//! failure instead, `500` or `504`: nothing of the response reached the
//! client yet.)
//!
//! Cost: on p2, nothing on a call that returned before its response left
//! (the usual case); a call still running when its response leaves adds a
//! oneshot channel and a box. On p3, a box per response.

use crate::pool::Lifecycle;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::oneshot;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::Response;

/// Whether the call behind a body failed.
enum Failed {
    /// Told through the channel by the task finishing the call; a dropped
    /// sender means it returned normally. Checked when the body ends: the
    /// call's end is signalled before its store (and so the body's sender)
    /// is dropped.
    Later(oneshot::Receiver<()>),
    /// Whether the instance writing the body broke, which its pool records
    /// before the store is dropped.
    Instance(Arc<Lifecycle>),
    /// Already reported.
    Reported,
}

/// A response body that ends in an error instead of a clean end when the
/// call that writes it failed.
pub(super) struct EndsInError {
    body: WasiBody,
    failed: Failed,
}

/// `response`, whose call goes on: its body ends in an error if, by the
/// time it ends, the returned sender was used.
pub(super) fn watched(response: Response) -> (Response, oneshot::Sender<()>) {
    let (failure, failed) = oneshot::channel();
    let response = response.map(|body| {
        EndsInError {
            body,
            failed: Failed::Later(failed),
        }
        .boxed_unsync()
    });
    (response, failure)
}

/// `response`, whose body is written by `instance`: it ends in an error
/// if, by the time it ends, the instance broke.
pub(super) fn on_instance(response: Response, instance: Arc<Lifecycle>) -> Response {
    response.map(|body| {
        EndsInError {
            body,
            failed: Failed::Instance(instance),
        }
        .boxed_unsync()
    })
}

impl Body for EndsInError {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(None) => {
                let failed = match &mut self.failed {
                    Failed::Later(failure) => failure.try_recv().is_ok(),
                    Failed::Instance(instance) => instance.broke(),
                    Failed::Reported => false,
                };
                self.failed = Failed::Reported;
                if failed {
                    tracing::debug!("the call failed while writing its response body; aborting it");
                    Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpResponseIncomplete)))
                } else {
                    Poll::Ready(None)
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        // Only once the end was looked at: it may be an error.
        matches!(self.failed, Failed::Reported) && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // No exact size: a body that errs must not look complete early.
        let mut hint = SizeHint::new();
        hint.set_lower(self.body.size_hint().lower());
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn response() -> Response {
        Response::new(
            Full::new(Bytes::from_static(b"partial"))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
    }

    #[tokio::test]
    async fn a_call_that_fails_later_ends_its_body_in_an_error_and_one_that_returns_does_not() {
        let (response_, failure) = watched(response());
        failure.send(()).unwrap();
        assert!(response_.into_body().collect().await.is_err());
        let (response_, failure) = watched(response());
        drop(failure);
        let bytes = response_.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"partial");
    }
}
