//! The thread that refills a pool's pre-warmed instances.
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
pub struct Warmer {
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

/// Puts this thread in the idle scheduling class: it runs only when no
/// serving thread wants the CPU, and a waking serving thread preempts it at
/// once. (A nice value alone still let it hold a core for a scheduler slice,
/// milliseconds, while the request that took the last warm instance waited.)
/// Under sustained full load it then refills nothing, and requests create
/// their instances themselves, as without pre-warming.
#[cfg(target_os = "linux")]
fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: with pid 0 this changes only the calling thread's scheduling
    // policy on Linux; `param` outlives the call.
    let status = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if status != 0 {
        tracing::debug!("cannot lower the warming thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}
