//! The thread that refills an instance set's pre-warmed instances.
//!
//! Initialization can be long CPU work with no await point (a start
//! function or `init` that spins for milliseconds). Run on a runtime worker
//! thread, it would stall the requests queued behind it there; run at the
//! same CPU priority as serving, it would split a small machine's cores
//! with them, and the request that took the last warm instance would wait
//! out scheduler time slices while its own replacement initializes. So each
//! set that keeps warm instances has one thread, at a lower priority, that
//! creates them one after another.

use std::sync::mpsc;
use tokio::runtime::Handle;

/// Wakes a set's warming thread; dropping it ends the thread.
pub(crate) struct Warmer {
    wake: mpsc::Sender<Handle>,
}

impl Warmer {
    /// Starts the thread. Each wake-up (several pending ones count as one)
    /// runs `refill` with the waking runtime's handle; the thread ends when
    /// `refill` returns false (its set is gone) or the `Warmer` is dropped.
    pub fn start(refill: impl Fn(&Handle) -> bool + Send + 'static) -> std::io::Result<Self> {
        let (wake, woken) = mpsc::channel::<Handle>();
        std::thread::Builder::new()
            .name("reprise-warm".into())
            .spawn(move || {
                lower_priority();
                while let Ok(mut runtime) = woken.recv() {
                    while let Ok(latest) = woken.try_recv() {
                        runtime = latest;
                    }
                    if !refill(&runtime) {
                        break;
                    }
                }
            })?;
        Ok(Self { wake })
    }

    /// Asks for a refill. Called from inside the runtime.
    pub fn wake(&self) {
        let _ = self.wake.send(Handle::current());
    }
}

/// Gives this thread a lower CPU priority (nice 10), so serving threads win
/// the CPU while it initializes instances.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority with `who` 0 changes only the calling thread's
    // nice value on Linux; it touches no memory.
    let status = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if status != 0 {
        tracing::debug!("cannot lower the warming thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}
