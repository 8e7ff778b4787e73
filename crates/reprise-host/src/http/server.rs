//! The hyper server loop: accept, serve, drain.
//!
//! Each connection speaks HTTP/1.1, or HTTP/2 when it opens with the HTTP/2
//! preface (h2c with prior knowledge, as gRPC clients and proxies use
//! between services): wasi:http has no version of its own, so a component
//! serves both without knowing.

use super::HttpFrontEnd;
use super::idle::{Activity, Tracked};
use http::HeaderValue;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
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
    /// How long a client may take to start a request: counted from the
    /// connection's start or the end of its previous response, and closed
    /// between 1 and 1.25 times this later. A client that sends nothing, or
    /// trickles its headers, cannot hold a connection (of
    /// `max_connections`) forever.
    pub header_timeout: Option<Duration>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            drain_timeout: Duration::from_secs(25),
            header_timeout: Some(Duration::from_secs(30)),
        }
    }
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
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let front = front.clone();
        let activity = Arc::new(Activity::default());
        let service = service_fn({
            let activity = activity.clone();
            move |request: http::Request<Incoming>| {
                let in_flight = activity.start();
                let front = front.clone();
                async move {
                    let request = adapt_request(request, local);
                    let response = front.handle(request).await;
                    Ok::<_, Infallible>(response.map(|body| Tracked::new(body, in_flight)))
                }
            }
        });
        let builder = builder.clone();
        let header_timeout = options.header_timeout;
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
            let mut quiet = pin!(async {
                match header_timeout {
                    Some(timeout) => activity.quiet_for(timeout).await,
                    None => std::future::pending().await,
                }
            });
            let mut stopped = pin!(async move {
                // Dropped at once: the guard it returns is not `Send`.
                let _ = stopping.wait_for(|stop| *stop).await;
            });
            // A connection asked to close finishes its response in flight;
            // then HTTP/1 closes, and HTTP/2 sends a GOAWAY first so that
            // the client knows no further stream will be served.
            let served = tokio::select! {
                served = connection.as_mut() => Some(served),
                () = quiet.as_mut() => {
                    tracing::debug!(%peer, "closing a connection that sent no request within the header timeout");
                    connection.as_mut().graceful_shutdown();
                    // A client still trickling a request head is not
                    // waited for.
                    tokio::time::timeout(CLOSE_GRACE, connection.as_mut()).await.ok()
                }
                () = stopped.as_mut() => {
                    connection.as_mut().graceful_shutdown();
                    tokio::select! {
                        served = connection.as_mut() => Some(served),
                        () = quiet.as_mut() => None,
                    }
                }
            };
            if let Some(Err(e)) = served {
                tracing::debug!(%peer, "connection ended with error: {e}");
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
