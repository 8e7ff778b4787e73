//! Closing connections whose clients send no request in time.
//!
//! A client that connects and stays silent, trickles a request head, or
//! keeps an idle connection open would otherwise hold one of the server's
//! `max_connections` forever. hyper's own `header_read_timeout` guards
//! HTTP/1 only, and arms a fresh timer for every request: a boxed sleep
//! registered with the runtime's timer wheel and removed again once the head
//! arrives, about 5% of a reused hello-world request's CPU. Here a
//! connection instead counts what happens on it (a request starts, a
//! response ends) with two atomics, and one timer per connection looks at
//! the count a few times per timeout: HTTP/1 and HTTP/2 alike, and no timer
//! work per request.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;

/// What has happened on one connection, shared by its requests.
#[derive(Default)]
pub(super) struct Activity {
    /// Requests started and responses ended, ever.
    events: AtomicU64,
    /// Requests whose response has not ended yet.
    in_flight: AtomicUsize,
    /// Set when the server's drain timeout passed: requests still waiting
    /// for their answer are answered `503` (see [`Activity::cut_short`]).
    cutting: AtomicBool,
    cut: Notify,
}

impl Activity {
    /// A request starts; it stays in flight until the returned guard drops
    /// (with its response body, once hyper has sent it or given up).
    pub(super) fn start(self: &Arc<Self>) -> InFlight {
        self.events.fetch_add(1, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }

    /// Resolves once the connection's first request started, or after
    /// `limit` without one. Only the shutdown path waits for this, so it
    /// looks every few milliseconds instead of keeping a notifier per
    /// connection.
    pub(super) async fn first_request_within(&self, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        while self.events.load(Relaxed) == 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Requests in flight now.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Relaxed)
    }

    /// The drain timeout passed: wakes every request of the connection
    /// still waiting in [`Activity::cut_short`]. Returns how many requests
    /// were in flight.
    pub(super) fn cut(&self) -> usize {
        self.cutting.store(true, SeqCst);
        self.cut.notify_waiters();
        self.in_flight()
    }

    /// Resolves once [`Activity::cut`] was called. Registers with the
    /// connection's own `Notify` only when first polled, so a request
    /// answered at once never touches it.
    pub(super) async fn cut_short(&self) {
        let notified = self.cut.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.cutting.load(SeqCst) {
            notified.await;
        }
    }

    /// Resolves once nothing happened on the connection for `timeout` while
    /// no request was in flight: between `timeout` and 1.25 × `timeout`
    /// after its last event.
    pub(super) async fn quiet_for(&self, timeout: Duration) {
        const LOOKS: u32 = 4;
        let mut seen = self.events.load(Relaxed);
        let mut quiet_looks = 0;
        // `interval` refuses a zero period (a timeout of a few nanoseconds).
        let mut ticks = tokio::time::interval((timeout / LOOKS).max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let events = self.events.load(Relaxed);
            if events != seen || self.in_flight.load(Relaxed) > 0 {
                seen = events;
                quiet_looks = 0;
                continue;
            }
            quiet_looks += 1;
            if quiet_looks == LOOKS {
                return;
            }
        }
    }
}

/// A request in flight; its drop is the response's end.
pub(super) struct InFlight(Arc<Activity>);

impl InFlight {
    /// The connection's activity.
    pub(super) fn activity(&self) -> &Activity {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
        self.0.events.fetch_add(1, Relaxed);
    }
}

/// A response body that keeps its request in flight until it is dropped.
pub(super) struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub(super) fn new(body: B, in_flight: InFlight) -> Self {
        Self {
            body,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
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

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_quiet_after_the_timeout() {
        let activity = Activity::default();
        let start = tokio::time::Instant::now();
        activity.quiet_for(Duration::from_secs(30)).await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(30), "{waited:?}");
        assert!(waited <= Duration::from_millis(37_500), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_the_connection_open() {
        let activity = Arc::new(Activity::default());
        let request = activity.start();
        let quiet = activity.quiet_for(Duration::from_secs(1));
        tokio::pin!(quiet);
        // Much longer than the timeout: the request is still being served.
        let outcome = tokio::time::timeout(Duration::from_secs(60), &mut quiet).await;
        assert!(outcome.is_err(), "closed while a request was in flight");
        let ended = tokio::time::Instant::now();
        drop(request);
        quiet.await;
        let waited = ended.elapsed();
        assert!(waited >= Duration::from_secs(1), "{waited:?}");
        assert!(waited <= Duration::from_millis(1_500), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_of_nanoseconds_still_works() {
        Activity::default().quiet_for(Duration::from_nanos(3)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn each_request_restarts_the_timeout() {
        let activity = Arc::new(Activity::default());
        let quiet = activity.quiet_for(Duration::from_secs(1));
        tokio::pin!(quiet);
        for _ in 0..20 {
            let slept = tokio::time::timeout(Duration::from_millis(800), &mut quiet).await;
            assert!(slept.is_err(), "closed although requests kept coming");
            drop(activity.start());
        }
    }
}
