//! Chaos's I/O perturbation: bodies whose bytes arrive in random chunk
//! sizes after random pauses. A component that assumes a request body
//! comes in one read, or that the host drains its response at once, fails
//! under it; a correct one produces the same bytes.

use crate::policy::chaos::{BodySchedule, Pause};
use bytes::Bytes;
use http_body::{Body, Frame};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::Sleep;

/// Longest sleep before a chunk of a perturbed body.
pub const MAX_SLEEP: Duration = Duration::from_millis(1);

/// Wraps `inner`, re-chunking its data by `schedule`. Trailers and errors
/// pass through unchanged, after all data.
pub struct Perturbed<B> {
    inner: B,
    schedule: BodySchedule,
    /// The inner body's last data frame, not yet all delivered: the next
    /// frame is read only once it is.
    pending: Bytes,
    /// The pause before the next chunk, drawn when the previous one left.
    pause: Option<Waiting>,
    inner_done: bool,
}

/// A [`Pause`] in progress, pollable from `poll_frame`.
enum Waiting {
    Yields(u32),
    Sleep(Pin<Box<Sleep>>),
}

impl Waiting {
    fn new(pause: Pause) -> Self {
        match pause {
            Pause::Yield(n) => Waiting::Yields(n),
            Pause::Sleep(d) => Waiting::Sleep(Box::pin(tokio::time::sleep(d))),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Waiting::Yields(0) => Poll::Ready(()),
            Waiting::Yields(n) => {
                *n -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Waiting::Sleep(sleep) => sleep.as_mut().poll(cx),
        }
    }
}

impl<B> Perturbed<B> {
    pub fn new(inner: B, seed: u64) -> Self {
        Self {
            inner,
            schedule: BodySchedule::new(seed, MAX_SLEEP),
            pending: Bytes::new(),
            pause: None,
            inner_done: false,
        }
    }

    /// Takes the next chunk out of the pending data, without a copy.
    fn take_chunk(&mut self) -> Bytes {
        let len = self.schedule.chunk_len(self.pending.len());
        self.pending.split_to(len)
    }
}

impl<B> Body for Perturbed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                // Pauses fall between chunks only: the end of a body (or a
                // body of one chunk) is never held back.
                if let Some(pause) = &mut this.pause {
                    ready!(pause.poll(cx));
                    this.pause = None;
                }
                let chunk = this.take_chunk();
                this.pause = Some(Waiting::new(this.schedule.pause()));
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if this.inner_done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    // Trailers: all data before them has been delivered.
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => this.inner_done = true,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner_done && self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn perturbed_body_delivers_the_same_bytes_in_pieces() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = data
            .chunks(7_000)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let body = Perturbed::new(StreamBody::new(futures::stream::iter(frames)), 3);
        let mut body = std::pin::pin!(body);
        let mut received = Vec::new();
        let mut pieces = 0;
        while let Some(frame) = body.frame().await {
            received.extend_from_slice(&frame.unwrap().into_data().unwrap());
            pieces += 1;
        }
        assert_eq!(received, data);
        assert!(pieces > 3, "only {pieces} pieces");
    }

    #[tokio::test]
    async fn empty_body_stays_empty() {
        let body = Perturbed::new(Full::new(Bytes::new()), 1);
        assert!(body.collect().await.unwrap().to_bytes().is_empty());
    }
}
