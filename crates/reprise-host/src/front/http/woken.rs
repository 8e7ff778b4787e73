//! Futures polled only when they were woken.
//!
//! `tokio::select!` polls every branch whenever its task wakes, whichever
//! branch the wake-up was for. A connection's task wakes several times per
//! request, and beside the connection it waits for the server to stop, for
//! the drain timeout's cut and for the header timeout: a `watch` receiver
//! polled costs a lock and a coop check, an interval a timer-entry check,
//! together some 600 instructions per reused request (1.5% of all it
//! costs). [`WokenOnly`] polls its future on the first poll and
//! afterwards only once that future's own waker fired; any other wake-up
//! costs an atomic swap and re-registering the task's waker.

use futures::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::AcqRel, Ordering::Acquire, Ordering::Release};
use std::task::{Context, Poll, Wake, Waker};

pin_project_lite::pin_project! {
    /// `future`, polled only when it asked to be (see the module docs).
    pub(super) struct WokenOnly<F> {
        #[pin]
        future: F,
        flag: Arc<Flag>,
        // Made once from `flag`: what `future` is polled with.
        waker: Waker,
        // The task's waker last given to `flag`: a task's waker rarely
        // changes, and registering it costs a compare-and-swap, so it is
        // registered again only when it changed or a wake-up took it.
        registered: Option<Waker>,
    }
}

/// Set by the inner future's waker; wakes the task that polls the wrapper.
struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Release);
        self.task.wake();
    }
}

impl<F> WokenOnly<F> {
    pub(super) fn new(future: F) -> Self {
        let flag = Arc::new(Flag {
            // The first poll always reaches the future.
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Self {
            future,
            waker: Waker::from(flag.clone()),
            flag,
            registered: None,
        }
    }
}

impl<F: Future> Future for WokenOnly<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // A wake-up of `future` (nothing else sets the flag) takes the
        // task's waker out of `flag` after setting the flag, so a set flag
        // means the waker must be given again. Registered before the flag is
        // taken: a wake-up in between still reaches the current task.
        let taken = this.flag.woken.load(Acquire);
        if taken
            || !this
                .registered
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            this.flag.task.register(cx.waker());
            *this.registered = Some(cx.waker().clone());
        }
        if !this.flag.woken.swap(false, AcqRel) {
            return Poll::Pending;
        }
        this.future.poll(&mut Context::from_waker(this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    /// Counts its polls; ready once [`Gate::knock`]ed twice, each knock
    /// waking whoever polled it.
    #[derive(Default)]
    struct Gate {
        polls: AtomicUsize,
        knocks: AtomicUsize,
        waiter: AtomicWaker,
    }

    impl Gate {
        fn knock(&self) {
            self.knocks.fetch_add(1, SeqCst);
            self.waiter.wake();
        }

        async fn opened(&self) {
            std::future::poll_fn(|cx| {
                self.polls.fetch_add(1, SeqCst);
                self.waiter.register(cx.waker());
                if self.knocks.load(SeqCst) >= 2 {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await
        }
    }

    #[tokio::test]
    async fn other_wake_ups_do_not_poll_the_future_and_its_own_do() {
        let gate = Arc::new(Gate::default());
        let inside = gate.clone();
        let (busy_done, busy_over) = tokio::sync::oneshot::channel();
        // On a task of its own, so that only that task's wake-ups poll it (a
        // timeout around it would poll it too).
        let waiter = tokio::spawn(async move {
            let mut waiting = std::pin::pin!(WokenOnly::new(inside.opened()));
            let busy = tokio::time::sleep(Duration::from_millis(1));
            tokio::pin!(busy);
            // Twenty wake-ups of the task for another branch.
            for _ in 0..20 {
                tokio::select! {
                    biased;
                    () = &mut waiting => panic!("the gate is closed"),
                    () = &mut busy => busy.as_mut().reset(tokio::time::Instant::now()),
                }
            }
            let _ = busy_done.send(inside.polls.load(SeqCst));
            waiting.await;
        });
        let polled_while_busy = busy_over.await.unwrap();
        assert_eq!(polled_while_busy, 1, "polled on the first poll only");
        // Two wake-ups of its own, each polling it again: the first must
        // not use up the wrapper's hold on the task.
        gate.knock();
        let start = std::time::Instant::now();
        while gate.polls.load(SeqCst) < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "not polled again"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        gate.knock();
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("each of its own wake-ups polls it again")
            .unwrap();
        assert_eq!(gate.polls.load(SeqCst), 3);
    }
}
