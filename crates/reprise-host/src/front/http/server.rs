//! The hyper server loop: accept, serve, drain.
//!
//! Each connection speaks HTTP/1.1, or HTTP/2 when it opens with the HTTP/2
//! preface (h2c with prior knowledge, as gRPC clients and proxies use
//! between services): wasi:http has no version of its own, so a component
//! serves both without knowing.

use super::HttpFrontEnd;
use super::idle::{Activity, Tracked};
use super::record::Recorder;
use crate::ops::listen::accept;
use http::HeaderValue;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

/// Connection-level settings of the server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Open connections accepted at once; further clients wait in the
    /// listen backlog (back-pressure rather than unbounded memory).
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after shutdown starts.
    pub drain_timeout: Duration,
    /// How long a client may take to start a request, counted from the
    /// connection's start or the end of its previous response; a
    /// connection that starts none is closed between 1 and 1.25 times this
    /// later. So a client that sends nothing, or trickles its headers,
    /// cannot hold a connection (of `max_connections`) forever.
    pub header_timeout: Option<Duration>,
    /// Where every request served is recorded (`--record`), if anywhere.
    pub record: Option<Arc<Recorder>>,
}

/// Serves `front` on `listener` until `shutdown` resolves, then stops
/// accepting and lets in-flight requests finish (up to the drain timeout).
pub async fn serve(
    listener: TcpListener,
    front: Arc<HttpFrontEnd>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let connections = TaskTracker::new();
    let (stop, stopping) = watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // `idle` keeps the time instead, for HTTP/1 and HTTP/2 alike.
    builder.http1().header_read_timeout(None);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(options.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener, "server") => accepted,
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let front = front.clone();
        let activity = Arc::new(Activity::default());
        let service = service_fn({
            let activity = activity.clone();
            let record = options.record.clone();
            move |request: http::Request<Incoming>| {
                let in_flight = activity.start();
                let front = front.clone();
                let record = record.clone();
                async move {
                    let request = adapt_request(request, local);
                    let Some(recorder) = record else {
                        let response = front.handle(request).await;
                        return Ok(response.map(|body| Tracked::new(body, in_flight)));
                    };
                    // Recorded when its body ends, or at the latest once the
                    // response is done.
                    let (request, guard) = recorder.wrap(request);
                    let request = request.map(|body| body.boxed_unsync());
                    let response = front.handle(request).await.map(|body| guard.hold(body));
                    Ok::<_, Infallible>(response.map(|body| Tracked::new(body, in_flight)))
                }
            }
        });
        let builder = builder.clone();
        let header_timeout = options.header_timeout;
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
            let quiet = async {
                match header_timeout {
                    Some(timeout) => activity.quiet_for(timeout).await,
                    None => std::future::pending().await,
                }
            };
            let stopped = async move {
                // Dropped at once: the guard it returns is not `Send`.
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            let close = |connection: Pin<&mut _>| auto::Connection::graceful_shutdown(connection);
            match drive(connection, close, quiet, stopped).await {
                Ended::Served(Err(e)) => {
                    tracing::debug!(%peer, "connection ended with error: {e}")
                }
                Ended::Served(Ok(())) => {}
                Ended::Quiet => tracing::debug!(
                    %peer,
                    "closed a connection that sent no request within the header timeout"
                ),
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop.send(true);
    connections.close();
    tokio::select! {
        () = connections.wait() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(options.drain_timeout) => {
            tracing::warn!("drain timeout elapsed; closing remaining connections")
        }
    }
    Ok(())
}

/// How long a connection closed for sending no request may take to say
/// goodbye (an HTTP/2 GOAWAY) before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How a connection's life ended.
#[derive(Debug)]
enum Ended<T> {
    /// The connection finished by itself or after being asked to close.
    Served(T),
    /// It was dropped: quiet for the header timeout, and then deaf to the
    /// request to close (a client still trickling a request head).
    Quiet,
}

/// Drives `connection` to its end. When `quiet` resolves first (the client
/// started no request in time) or `stopped` does (the server shuts down),
/// `close` asks it to finish gracefully: the response in flight is sent,
/// then HTTP/1 closes, and HTTP/2 sends a GOAWAY first so the client knows
/// no further stream will be served. A quiet connection gets [`CLOSE_GRACE`]
/// for that; a stopping one as long as it keeps serving (the server's drain
/// timeout bounds it), unless it goes quiet.
async fn drive<C: Future>(
    mut connection: Pin<&mut C>,
    close: impl Fn(Pin<&mut C>),
    quiet: impl Future<Output = ()>,
    stopped: impl Future<Output = ()>,
) -> Ended<C::Output> {
    let mut quiet = pin!(quiet);
    tokio::select! {
        served = connection.as_mut() => Ended::Served(served),
        () = quiet.as_mut() => {
            close(connection.as_mut());
            match tokio::time::timeout(CLOSE_GRACE, connection).await {
                Ok(served) => Ended::Served(served),
                Err(_) => Ended::Quiet,
            }
        }
        () = stopped => {
            close(connection.as_mut());
            tokio::select! {
                served = connection => Ended::Served(served),
                () = quiet => Ended::Quiet,
            }
        }
    }
}

/// Gives the request the body type wasi:http expects, and an authority:
/// components may read it, and HTTP/1.0 clients may send no `Host`.
fn adapt_request(
    request: http::Request<Incoming>,
    local: SocketAddr,
) -> http::Request<wasmtime_wasi_http::WasiBody> {
    let (mut parts, body) = request.into_parts();
    if parts.uri.authority().is_none()
        && !parts.headers.contains_key(http::header::HOST)
        && let Ok(host) = HeaderValue::from_str(&local.to_string())
    {
        parts.headers.insert(http::header::HOST, host);
    }
    let body = body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync();
    http::Request::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    /// A connection that ends `after` the request to close it, or never.
    async fn connection(asked: &AtomicBool, after: Option<Duration>) -> &'static str {
        while !asked.load(SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
        "closed"
    }

    /// A moment that comes after `delay`, or never.
    async fn at(delay: Option<Duration>) {
        match delay {
            Some(delay) => tokio::time::sleep(delay).await,
            None => std::future::pending().await,
        }
    }

    /// Drives a test connection that ends `after` it is asked to close (or
    /// never), going quiet at `quiet` and the server stopping at `stop`.
    async fn drive_one(
        asked: &AtomicBool,
        after: Option<Duration>,
        quiet: Option<Duration>,
        stop: Option<Duration>,
    ) -> Ended<&'static str> {
        asked.store(false, SeqCst);
        let close = |_: Pin<&mut _>| asked.store(true, SeqCst);
        drive(pin!(connection(asked, after)), close, at(quiet), at(stop)).await
    }

    const SECOND: Option<Duration> = Some(Duration::from_secs(1));

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_is_asked_to_close_then_dropped_if_deaf() {
        let asked = AtomicBool::new(false);
        // Closes when asked (an idle keep-alive connection).
        let polite = Some(Duration::from_millis(5));
        let ended = drive_one(&asked, polite, SECOND, None).await;
        assert!(matches!(ended, Ended::Served("closed")), "{ended:?}");
        // Never closes (a request head still trickling in).
        let start = tokio::time::Instant::now();
        let ended = drive_one(&asked, None, SECOND, None).await;
        assert!(matches!(ended, Ended::Quiet), "{ended:?}");
        assert!(asked.load(SeqCst));
        assert_eq!(start.elapsed(), Duration::from_secs(1) + CLOSE_GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopping_server_lets_a_busy_connection_finish() {
        let asked = AtomicBool::new(false);
        // Its response takes far longer than the close grace.
        let busy = Some(Duration::from_secs(20));
        let ended = drive_one(&asked, busy, None, SECOND).await;
        assert!(matches!(ended, Ended::Served("closed")), "{ended:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_left_alone_is_not_asked_to_close() {
        let asked = AtomicBool::new(false);
        let close = |_: Pin<&mut _>| asked.store(true, SeqCst);
        let served = pin!(async { "served" });
        let ended = drive(served, close, at(SECOND), at(SECOND)).await;
        assert!(matches!(ended, Ended::Served("served")), "{ended:?}");
        assert!(!asked.load(SeqCst));
    }
}
