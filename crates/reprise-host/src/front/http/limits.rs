//! Bounds on what a request body may cost the host: the time it may take
//! to arrive (`--body-timeout`) and the bytes it may carry
//! (`--max-body-bytes`).
//!
//! The header timeout (`idle.rs`) stops counting once a request starts, so
//! without these a client could trickle a body a byte a second to a
//! component that reads it and hold a connection (and an instance) for as
//! long as it likes, or upload without end. A body past either bound ends
//! with an error for the component, and the request is answered `408` or
//! `413` with `connection: close` (or, if the component had already sent
//! its response head, the response is cut short as for any failed call).
//!
//! Cost: a request without a body (`GET`) is not wrapped at all; one whose
//! body is already complete when first read never arms a timer. Otherwise
//! one shared flag per request, and a timer only once a read has to wait.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The default of `--body-timeout`: as long as the header timeout.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The default of `--max-body-bytes`: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 << 20;

/// The bounds on one request body.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// The whole body must have arrived this long after the request head.
    pub timeout: Option<Duration>,
    /// The most bytes a body may carry.
    pub max_bytes: Option<u64>,
}

/// Why a body was cut off, shared between the body and the request's task.
#[derive(Default)]
pub(super) struct Verdict(AtomicU8);

const TOO_SLOW: u8 = 1;
const TOO_LARGE: u8 = 2;

impl Verdict {
    /// The answer that replaces the component's, if the body was cut off.
    pub(super) fn answer(&self) -> Option<(StatusCode, &'static str)> {
        match self.0.load(Relaxed) {
            TOO_SLOW => Some((
                StatusCode::REQUEST_TIMEOUT,
                "request body not received within the body timeout (--body-timeout)\n",
            )),
            TOO_LARGE => Some((
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body larger than the body size limit (--max-body-bytes)\n",
            )),
            _ => None,
        }
    }
}

/// Whether a declared `content-length` is already past the limit.
pub(super) fn declared_too_large(length: Option<&HeaderValue>, limits: &BodyLimits) -> bool {
    let (Some(length), Some(max)) = (length, limits.max_bytes) else {
        return false;
    };
    length
        .to_str()
        .ok()
        .and_then(|l| l.trim().parse::<u64>().ok())
        .is_some_and(|length| length > max)
}

/// A request body held to [`BodyLimits`].
pub(super) struct Limited<B> {
    body: B,
    verdict: Arc<Verdict>,
    /// When the body must be complete; the timer is armed on the first read
    /// that has to wait.
    deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    remaining: Option<u64>,
}

impl<B> Limited<B> {
    pub(super) fn new(body: B, limits: &BodyLimits, verdict: Arc<Verdict>) -> Self {
        Self {
            body,
            verdict,
            deadline: limits.timeout.map(|t| Instant::now() + t),
            timer: None,
            remaining: limits.max_bytes,
        }
    }

    fn cut(&mut self, why: u8) -> Poll<Option<Result<Frame<Bytes>, wasmtime_wasi_http::Error>>> {
        self.verdict.0.store(why, Relaxed);
        self.deadline = None;
        self.timer = None;
        Poll::Ready(Some(Err(match why {
            TOO_LARGE => wasmtime_wasi_http::Error::HttpRequestBodySize(None),
            _ => wasmtime_wasi_http::Error::ConnectionReadTimeout,
        })))
    }
}

impl<B> Body for Limited<B>
where
    B: Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Unpin,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.verdict.0.load(Relaxed) != 0 {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(remaining)) = (frame.data_ref(), self.remaining) {
                    let len = data.len() as u64;
                    if len > remaining {
                        return self.cut(TOO_LARGE);
                    }
                    self.remaining = Some(remaining - len);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(end) => {
                self.deadline = None;
                self.timer = None;
                Poll::Ready(end)
            }
            Poll::Pending => {
                let Some(deadline) = self.deadline else {
                    return Poll::Pending;
                };
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => self.cut(TOO_SLOW),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn chunks(
        n: usize,
        size: usize,
        gap: Duration,
    ) -> impl Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Unpin {
        let stream = futures::stream::unfold(0, move |i| async move {
            if i == n {
                return None;
            }
            tokio::time::sleep(gap).await;
            Some((Ok(Frame::data(Bytes::from(vec![b'x'; size]))), i + 1))
        });
        StreamBody::new(Box::pin(stream))
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_body_is_cut_at_the_timeout() {
        let verdict = Arc::new(Verdict::default());
        let limits = BodyLimits {
            timeout: Some(Duration::from_secs(1)),
            max_bytes: None,
        };
        let body = Limited::new(
            chunks(100, 1, Duration::from_millis(100)),
            &limits,
            verdict.clone(),
        );
        assert!(body.collect().await.is_err());
        assert_eq!(verdict.answer().unwrap().0, StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_body_is_cut_at_the_limit_and_a_small_one_passes() {
        let limits = BodyLimits {
            timeout: Some(Duration::from_secs(1)),
            max_bytes: Some(1000),
        };
        let verdict = Arc::new(Verdict::default());
        let body = Limited::new(chunks(11, 100, Duration::ZERO), &limits, verdict.clone());
        assert!(body.collect().await.is_err());
        assert_eq!(verdict.answer().unwrap().0, StatusCode::PAYLOAD_TOO_LARGE);
        let verdict = Arc::new(Verdict::default());
        let body = Limited::new(chunks(10, 100, Duration::ZERO), &limits, verdict.clone());
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 1000);
        assert!(verdict.answer().is_none());
    }

    #[test]
    fn a_declared_length_past_the_limit_is_refused_up_front() {
        let limits = BodyLimits {
            timeout: None,
            max_bytes: Some(10),
        };
        assert!(declared_too_large(
            Some(&HeaderValue::from_static("11")),
            &limits
        ));
        assert!(!declared_too_large(
            Some(&HeaderValue::from_static("10")),
            &limits
        ));
        assert!(!declared_too_large(None, &limits));
    }
}
