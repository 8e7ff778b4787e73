//! Accepting connections without giving up on a passing error.
//!
//! `accept` fails for reasons that pass: the process is out of file
//! descriptors (EMFILE) until a connection closes, a client reset its
//! connection before it was accepted. A server loop that returns on the
//! first such error ends for good, leaving an endpoint that no longer
//! answers while the process still runs; one that retries at once spins
//! on the CPU. Both of Reprise's listeners (the application port and the
//! admin endpoint) log the error and back off instead.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// How long to wait after a failed accept before trying again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Something connections arrive on; a trait so tests can make accepting
/// fail.
pub trait Listener {
    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send;
}

impl Listener for TcpListener {
    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
}

/// The next connection on `listener`. A failed accept is logged (the first
/// of a run of failures at warning level) and retried after
/// [`ACCEPT_BACKOFF`]; this only returns with a connection, so callers
/// race it against their shutdown signal.
pub async fn accept(listener: &impl Listener, what: &str) -> (TcpStream, SocketAddr) {
    let mut failures = 0u64;
    loop {
        match listener.accept().await {
            Ok(pair) => return pair,
            Err(e) => {
                if failures == 0 {
                    tracing::warn!("{what}: accept failed: {e}; retrying every {ACCEPT_BACKOFF:?}");
                } else {
                    tracing::debug!("{what}: accept failed again: {e}");
                }
                failures += 1;
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    /// A listener whose first `failures` accepts fail as if the process
    /// were out of file descriptors.
    pub(crate) struct Flaky {
        pub inner: TcpListener,
        pub failures: AtomicUsize,
    }

    impl Listener for Flaky {
        async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
            if self
                .failures
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(io::Error::from_raw_os_error(libc::EMFILE));
            }
            self.inner.accept().await
        }
    }

    #[tokio::test]
    async fn accepting_goes_on_after_passing_errors() {
        let flaky = Flaky {
            inner: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            failures: AtomicUsize::new(3),
        };
        let addr = flaky.inner.local_addr().unwrap();
        let client = tokio::spawn(TcpStream::connect(addr));
        let (_, peer) = tokio::time::timeout(Duration::from_secs(5), accept(&flaky, "test"))
            .await
            .expect("accepted despite the errors");
        let client = client.await.unwrap().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(flaky.failures.load(Relaxed), 0);
    }
}
