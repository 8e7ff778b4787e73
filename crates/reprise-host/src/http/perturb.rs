//! Chaos's I/O perturbation: bodies whose bytes arrive in random chunk
//! sizes after random pauses. A component that assumes a request body
//! comes in one read, or that the host drains its response at once, fails
//! under it; a correct one produces the same bytes.

use crate::chaos::BodySchedule;
use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::Sleep;

/// Longest pause before a chunk of a perturbed body.
pub const MAX_PAUSE: Duration = Duration::from_millis(2);

/// Wraps `inner`, re-chunking its data by `schedule`. Trailers and errors
/// pass through unchanged, after all data.
pub struct Perturbed<B> {
    inner: B,
    schedule: BodySchedule,
    pending: VecDeque<Bytes>,
    pause: Option<Pin<Box<Sleep>>>,
    inner_done: bool,
}

impl<B> Perturbed<B> {
    pub fn new(inner: B, seed: u64) -> Self {
        Self {
            inner,
            schedule: BodySchedule::new(seed, MAX_PAUSE),
            pending: VecDeque::new(),
            pause: None,
            inner_done: false,
        }
    }

    fn buffered(&self) -> usize {
        self.pending.iter().map(Bytes::len).sum()
    }

    /// Takes the next chunk out of the buffered data.
    fn take_chunk(&mut self) -> Bytes {
        let len = self.schedule.chunk_len(self.buffered());
        let mut chunk = Vec::with_capacity(len);
        while chunk.len() < len {
            let front = self.pending.front_mut().expect("buffered data");
            let n = (len - chunk.len()).min(front.len());
            chunk.extend_from_slice(&front[..n]);
            front.advance(n);
            if front.is_empty() {
                self.pending.pop_front();
            }
        }
        Bytes::from(chunk)
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
        if let Some(pause) = &mut this.pause {
            ready!(pause.as_mut().poll(cx));
            this.pause = None;
        }
        loop {
            if this.buffered() > 0 {
                let chunk = this.take_chunk();
                let pause = this.schedule.pause();
                // A zero pause still yields, so other tasks interleave.
                this.pause = Some(Box::pin(tokio::time::sleep(pause)));
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if this.inner_done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        if !data.is_empty() {
                            this.pending.push_back(data);
                        }
                    }
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
