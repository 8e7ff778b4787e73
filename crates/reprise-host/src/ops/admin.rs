//! The admin endpoint an orchestrator talks to: `/ready`, `/live` and
//! `/metrics`. It listens on its own address so that probes and scrapes
//! never queue behind application traffic and are never exposed with it.

use crate::ops::listen::{Listener, accept};
use crate::pool::InstanceManager;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
#[cfg(test)]
use std::time::Duration;

/// Answers one admin request.
///
/// `/ready` is 200 only once an instance initialized successfully and
/// until the server starts `draining`, and 503 with the reason otherwise;
/// `/live` is 200 while the process serves at all; `/metrics` is the
/// Prometheus text exposition.
pub fn respond(
    manager: &InstanceManager,
    draining: bool,
    method: &Method,
    path: &str,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (method, path) {
        (&Method::GET | &Method::HEAD, "/ready") if draining => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready: draining\n".to_string(),
        ),
        (&Method::GET | &Method::HEAD, "/ready") if manager.is_ready() => {
            (StatusCode::OK, "text/plain", "ready\n".to_string())
        }
        (&Method::GET | &Method::HEAD, "/ready") => {
            let body = match manager.last_init_failure() {
                Some(error) => format!("not ready: initialization failed: {error}\n"),
                None => "not ready: no instance has initialized yet\n".to_string(),
            };
            (StatusCode::SERVICE_UNAVAILABLE, "text/plain", body)
        }
        (&Method::GET | &Method::HEAD, "/live") => (StatusCode::OK, "text/plain", "live\n".into()),
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            manager.metrics().render(),
        ),
        (_, "/ready" | "/live" | "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".into(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: the admin endpoint serves /ready, /live and /metrics\n".into(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// Connections the admin endpoint serves at once: probes and scrapes need
/// few, and a client that opens many must not take the process's files.
pub const ADMIN_MAX_CONNECTIONS: usize = 16;

/// How long an admin client may take to send a request head (and how long
/// an idle kept-alive admin connection stays open).
pub const ADMIN_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest an admin connection stays open.
const ADMIN_CONNECTION_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves the admin endpoint on `listener` for as long as the process
/// runs. Once `draining` resolves (the server stopped taking connections),
/// `/ready` answers 503 while `/live` and `/metrics` go on answering: a
/// drain stays observable, and liveness never fails for it. A failed accept
/// (out of file descriptors) is retried after a pause: probes must keep
/// getting answers once the pressure passes. At most
/// [`ADMIN_MAX_CONNECTIONS`] connections are served at once (more wait in
/// the backlog), each closed if its client sends no request head within
/// [`ADMIN_HEADER_TIMEOUT`].
pub async fn serve_admin(
    listener: impl Listener,
    manager: Arc<InstanceManager>,
    draining: impl Future<Output = ()>,
) {
    let mut draining = std::pin::pin!(draining);
    let drained = Arc::new(AtomicBool::new(false));
    let permits = Arc::new(tokio::sync::Semaphore::new(ADMIN_MAX_CONNECTIONS));
    loop {
        let accepted = async {
            let permit = permits.clone().acquire_owned().await.expect("never closed");
            (permit, accept(&listener, "admin endpoint").await)
        };
        let (permit, (stream, _)) = if drained.load(Relaxed) {
            accepted.await
        } else {
            tokio::select! {
                accepted = accepted => accepted,
                () = &mut draining => {
                    drained.store(true, Relaxed);
                    continue;
                }
            }
        };
        let (manager, drained) = (manager.clone(), drained.clone());
        let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let draining = drained.load(Relaxed);
            let response = respond(&manager, draining, request.method(), request.uri().path());
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(ADMIN_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            // The header timeout bounds the wait for a head; this bounds a
            // connection that reads its answers slowly.
            match tokio::time::timeout(ADMIN_CONNECTION_LIMIT, connection).await {
                Ok(Err(e)) => tracing::debug!("admin connection ended with error: {e}"),
                Ok(Ok(())) => {}
                Err(_) => tracing::debug!("closed an admin connection open too long"),
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::listen::tests::Flaky;
    use crate::policy::Policy;
    use crate::pool::InstanceLimits;
    use crate::runtime::engine::EngineOptions;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A manager of a component that does nothing, never instantiated.
    fn empty_component_manager() -> Arc<InstanceManager> {
        let engine = crate::runtime::engine::EngineHandle::new(&EngineOptions::default()).unwrap();
        let component = wasmtime::component::Component::new(
            &engine.engine,
            wat::parse_str("(component)").unwrap(),
        )
        .unwrap();
        Arc::new(
            InstanceManager::new(engine, component, InstanceLimits::default(), Policy::Fresh)
                .unwrap(),
        )
    }

    /// Regression: one failed accept (EMFILE) used to end the admin
    /// endpoint for good, while the process went on serving.
    #[tokio::test]
    async fn the_admin_endpoint_survives_failed_accepts() {
        let manager = empty_component_manager();
        let listener = Flaky {
            inner: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            failures: AtomicUsize::new(2),
        };
        let addr = listener.inner.local_addr().unwrap();
        let server = tokio::spawn(serve_admin(listener, manager, std::future::pending()));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut answer))
            .await
            .expect("the admin endpoint answered")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(!server.is_finished(), "the endpoint ended");
        server.abort();
    }

    /// Regression: the admin endpoint ended at SIGTERM, so a draining
    /// replica refused its probes and scrapes. It goes on answering; only
    /// `/ready` turns 503.
    #[tokio::test]
    async fn a_drain_turns_ready_to_503_and_leaves_live_and_metrics_answering() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (drain, draining) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_admin(listener, empty_component_manager(), async {
            let _ = draining.await;
        }));
        let get = |path: &'static str| async move {
            let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            client.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut answer))
                .await
                .expect("the admin endpoint answered")
                .unwrap();
            answer
        };
        drain.send(()).unwrap();
        // The drain is seen before the next accept.
        tokio::task::yield_now().await;
        let ready = get("/ready").await;
        assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
        assert!(ready.ends_with("not ready: draining\n"), "{ready}");
        for path in ["/live", "/metrics"] {
            let answer = get(path).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        }
        server.abort();
    }
}
