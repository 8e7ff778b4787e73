//! The hyper server loop: accept, serve, drain.
//!
//! Each connection speaks HTTP/1.1, or HTTP/2 when it opens with the HTTP/2
//! preface (h2c with prior knowledge, as gRPC clients and proxies use
//! between services): wasi:http has no version of its own, so a component
//! serves both without knowing.

use super::HttpFrontEnd;
use super::idle::{Activity, Tracked};
use super::limits::{BodyLimits, Limited, Verdict, declared_too_large};
use super::record::Recorder;
use super::text_response;
use super::woken::WokenOnly;
use crate::ops::listen::accept;
use http::HeaderValue;
use http_body::Body as _;
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
use wasmtime_wasi_http::WasiBody;

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
    /// Headers set on every incoming request, replacing any of the same
    /// name (`--header`).
    pub extra_headers: Arc<Vec<ExtraHeader>>,
    /// The most bytes a request's headers may take (`--max-header-bytes`):
    /// past it, HTTP/1 clients get `431` and HTTP/2 streams are refused
    /// with `431` too. At least [`MIN_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// How long a request body may take to arrive, and how large it may be
    /// (`--body-timeout`, `--max-body-bytes`): past either, `408` or `413`.
    pub body_limits: BodyLimits,
}

/// How serving ended.
#[derive(Debug, Default)]
pub struct Drained {
    /// Requests still running at the drain timeout, answered `503` or (their
    /// response head already sent) cut short.
    pub cut: usize,
}

/// The default of [`ServeOptions::max_header_bytes`]: 64 KiB, four times
/// nginx's largest header buffer and enough for any real client's cookies.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// The least [`ServeOptions::max_header_bytes`] may be: hyper's smallest
/// HTTP/1 read buffer.
pub const MIN_HEADER_BYTES: usize = 8192;

/// A header of `--header`.
pub type ExtraHeader = (http::HeaderName, HeaderValue);

/// Why a `--header` value is no header to add.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// No `:` between a name and a value.
    #[error("`{0}` is not `NAME: VALUE`")]
    Form(String),
    #[error("`{0}` is not a valid header name")]
    Name(String),
    #[error("the value of `{0}` is not a valid header value")]
    Value(http::HeaderName),
}

/// `NAME: VALUE` of `--header`.
pub fn parse_header(text: &str) -> Result<ExtraHeader, HeaderError> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| HeaderError::Form(text.to_string()))?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| HeaderError::Name(name.trim().to_string()))?;
    let value =
        HeaderValue::from_str(value.trim()).map_err(|_| HeaderError::Value(name.clone()))?;
    Ok((name, value))
}

/// Serves `front` on `listener` until `shutdown` resolves, then stops
/// accepting and lets in-flight requests finish (up to the drain timeout).
pub async fn serve(
    listener: TcpListener,
    front: Arc<HttpFrontEnd>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Drained> {
    let local = listener.local_addr()?;
    let connections = TaskTracker::new();
    let (stop, stopping) = watch::channel(false);
    // Set at the drain timeout: connections still serving count their
    // requests, answer `503` to those without a response yet and are dropped.
    let (cut_all, cutting) = watch::channel(false);
    let cut_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // `idle` keeps the time instead, for HTTP/1 and HTTP/2 alike.
    builder
        .http1()
        .header_read_timeout(None)
        .max_buf_size(options.max_header_bytes.max(MIN_HEADER_BYTES));
    builder
        .http2()
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
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
            let extra_headers = options.extra_headers.clone();
            let body_limits = options.body_limits;
            move |request: http::Request<Incoming>| {
                let in_flight = activity.start();
                let front = front.clone();
                let record = record.clone();
                let extra_headers = extra_headers.clone();
                async move {
                    let (mut request, verdict) = match adapt_request(request, local, &body_limits) {
                        Ok(adapted) => adapted,
                        Err(refused) => {
                            return Ok(refused.map(|body| Tracked::new(body, in_flight)));
                        }
                    };
                    for (name, value) in extra_headers.iter() {
                        request.headers_mut().insert(name.clone(), value.clone());
                    }
                    // Polled first: a request answered at once never
                    // registers for the drain timeout's cut. Made in place:
                    // a future kept in a local first would take the space
                    // of the whole call twice in this one.
                    let mut response = tokio::select! {
                        biased;
                        response = answer(&front, request, record) => response,
                        () = in_flight.activity().cut_short() => closing(text_response(
                            http::StatusCode::SERVICE_UNAVAILABLE,
                            "the server is shutting down: the drain timeout passed \
                             before this request was answered\n",
                        )),
                    };
                    if let Some((status, message)) = verdict.as_ref().and_then(|v| v.answer()) {
                        // The body was cut off: whatever the component made
                        // of that, the client gets the reason.
                        response = closing(text_response(status, message));
                    }
                    Ok::<_, Infallible>(response.map(|body| Tracked::new(body, in_flight)))
                }
            }
        });
        let builder = builder.clone();
        let header_timeout = options.header_timeout;
        let mut stopping = stopping.clone();
        let mut cutting = cutting.clone();
        let cut_count = cut_count.clone();
        connections.spawn(async move {
            let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
            // The connection's task wakes several times per request; these
            // three are polled only when they were woken (`woken.rs`).
            let quiet = WokenOnly::new(async {
                match header_timeout {
                    Some(timeout) => activity.quiet_for(timeout).await,
                    None => std::future::pending().await,
                }
            });
            let first = activity.clone();
            let stopped = WokenOnly::new(async move {
                // Dropped at once: the guard it returns is not `Send`.
                let _ = stopping.wait_for(|stop| *stop).await;
                // A connection accepted just before the stop may not have
                // sent its request yet, and hyper-util cannot close one
                // gracefully before it has read which HTTP version it
                // speaks: closed now, it would be dropped unread (the
                // client sees a reset). Its request gets a moment to start,
                // and is then answered before the connection closes.
                first.first_request_within(FIRST_REQUEST_GRACE).await;
            });
            let close = |connection: Pin<&mut _>| auto::Connection::graceful_shutdown(connection);
            let cut = WokenOnly::new(async move {
                let _ = cutting.wait_for(|cut| *cut).await;
            });
            let ended = tokio::select! {
                // The connection first, as in `drive`.
                biased;
                ended = drive(connection.as_mut(), close, quiet, stopped) => ended,
                () = cut => {
                    cut_count.fetch_add(activity.cut(), std::sync::atomic::Ordering::Relaxed);
                    // Long enough for the `503`s to leave; a response still
                    // streaming is then cut short by dropping the
                    // connection, which the client sees as an error.
                    match tokio::time::timeout(CUT_GRACE, connection).await {
                        Ok(served) => Ended::Served(served),
                        Err(_) => Ended::Served(Ok(())),
                    }
                }
            };
            match ended {
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
            let _ = cut_all.send(true);
            let _ = tokio::time::timeout(CUT_GRACE * 2, connections.wait()).await;
            let cut = cut_count.load(std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                "drain timeout elapsed with {cut} request(s) still running: those without a \
                 response yet were answered 503, the others cut short"
            );
            return Ok(Drained { cut });
        }
    }
    Ok(Drained::default())
}

/// `front`'s answer to `request`, recorded when `record` says where: when
/// the request's body ends, or at the latest once the response is done.
async fn answer(
    front: &HttpFrontEnd,
    request: http::Request<WasiBody>,
    record: Option<Arc<Recorder>>,
) -> http::Response<WasiBody> {
    let (request, guard) = match record {
        Some(recorder) => {
            let (request, guard) = recorder.wrap(request);
            (request.map(|body| body.boxed_unsync()), Some(guard))
        }
        None => (request, None),
    };
    let response = front.handle(request).await;
    match guard {
        Some(guard) => response.map(|body| guard.hold(body)),
        None => response,
    }
}

/// How long a connection still serving at the drain timeout may take to
/// send its `503`s before it is dropped.
const CUT_GRACE: Duration = Duration::from_millis(250);

/// `response`, closing its HTTP/1 connection after it (hyper drops the
/// header from HTTP/2 responses).
fn closing(mut response: http::Response<WasiBody>) -> http::Response<WasiBody> {
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    response
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
        // The connection first: every request wakes this task, and a
        // random start would cost a draw per wake-up for nothing.
        biased;
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

/// How long a connection with no request yet may take to start one once
/// the server stops (see `serve`).
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(500);

/// Gives the request the body type wasi:http expects, held to the body
/// limits, and an authority: components may read it, and HTTP/1.0 clients
/// may send no `Host`. A request that is malformed (HTTP/1.1 without a
/// `Host`, or with two) or whose declared length is past the body limit
/// gets its answer instead.
fn adapt_request(
    request: http::Request<Incoming>,
    local: SocketAddr,
    limits: &BodyLimits,
) -> Result<(http::Request<WasiBody>, Option<Arc<Verdict>>), http::Response<WasiBody>> {
    let (mut parts, body) = request.into_parts();
    let mut hosts = parts.headers.get_all(http::header::HOST).iter();
    let first_host = hosts.next();
    let has_host = first_host.is_some();
    let refusal = match (first_host, hosts.next()) {
        (Some(_), Some(_)) => Some("more than one Host header\n"),
        (None, _) if parts.version == http::Version::HTTP_11 => {
            Some("an HTTP/1.1 request needs a Host header\n")
        }
        _ => None,
    };
    if let Some(refusal) = refusal {
        return Err(closing(text_response(
            http::StatusCode::BAD_REQUEST,
            refusal,
        )));
    }
    if parts.uri.authority().is_none()
        && !has_host
        && let Ok(host) = HeaderValue::from_str(&local.to_string())
    {
        parts.headers.insert(http::header::HOST, host);
    }
    if declared_too_large(parts.headers.get(http::header::CONTENT_LENGTH), limits) {
        return Err(closing(text_response(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "request body larger than the body size limit (--max-body-bytes)\n",
        )));
    }
    let body = body.map_err(wasmtime_wasi_http::Error::from);
    if body.is_end_stream() || (limits.timeout.is_none() && limits.max_bytes.is_none()) {
        return Ok((http::Request::from_parts(parts, body.boxed_unsync()), None));
    }
    let verdict = Arc::new(Verdict::default());
    let body = Limited::new(body, limits, verdict.clone()).boxed_unsync();
    Ok((http::Request::from_parts(parts, body), Some(verdict)))
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
