//! The HTTP front end: `wasi:http` proxy components behind a hyper server.

mod cut;
mod direct;
mod dispatch;
mod idle;
mod limits;
mod perturb;
pub mod record;
mod route;
mod server;
mod woken;

pub use limits::{BodyLimits, DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES};
pub use route::{IsolateBy, IsolateByError, Routing};
pub use server::{
    DEFAULT_MAX_HEADER_BYTES, Drained, ExtraHeader, HeaderError, MIN_HEADER_BYTES, ServeOptions,
    parse_header, serve,
};

use crate::policy::Retirement;
use crate::pool::InstanceManager;
use crate::runtime::failure::CallError;
use crate::runtime::instance::{InstanceId, InstanceState};
use bytes::Bytes;
use dispatch::CallTicket;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use perturb::Perturbed;
use route::Router;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::types::ComponentItem;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::ProxyPre;

/// The response header naming the instance that served a request.
pub const INSTANCE_HEADER: &str = "x-reprise-instance";

/// Which `wasi:http` world generation a component exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpFlavor {
    /// `wasi:http/incoming-handler@0.2.x`: one call at a time per instance.
    P2,
    /// `wasi:http/handler@0.3.x`: concurrent calls per instance.
    P3,
}

impl std::fmt::Display for HttpFlavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HttpFlavor::P2 => "wasi:http/incoming-handler@0.2 (p2)",
            HttpFlavor::P3 => "wasi:http/handler@0.3 (p3)",
        })
    }
}

/// Finds the component's HTTP handler export, preferring p3 when a
/// component exports both.
pub fn proxy_pre(
    manager: &InstanceManager,
) -> anyhow::Result<(ProxyPre<InstanceState>, HttpFlavor)> {
    let pre = manager.instance_pre().clone();
    if let Ok(p3) = wasmtime_wasi_http::p3::bindings::ServicePre::new(pre.clone()) {
        return Ok((ProxyPre::P3(p3), HttpFlavor::P3));
    }
    match wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre) {
        Ok(p2) => Ok((ProxyPre::P2(p2), HttpFlavor::P2)),
        Err(_) => {
            let engine = &manager.engine().engine;
            let exports: Vec<String> = manager
                .component()
                .component_type()
                .exports(engine)
                .map(|(name, item)| match item.ty {
                    ComponentItem::ComponentFunc(_) => format!("{name} (function)"),
                    _ => name.to_string(),
                })
                .collect();
            let found = if exports.is_empty() {
                "it exports nothing".to_string()
            } else {
                format!("its exports are: {}", exports.join(", "))
            };
            anyhow::bail!(
                "component does not export a wasi:http handler \
                 (wasi:http/incoming-handler@0.2.x or wasi:http/handler@0.3.x); {found}"
            )
        }
    }
}

/// Turns HTTP requests into export calls on managed instances.
pub struct HttpFrontEnd {
    manager: Arc<InstanceManager>,
    router: Router,
    flavor: HttpFlavor,
    expose_instance_id: bool,
}

impl HttpFrontEnd {
    /// Prepares the HTTP export of `manager`'s component; `prewarm` instances
    /// are kept initialized and unused, ready for the next requests, and
    /// `routing` says which instances a request may land on.
    pub fn new(
        manager: Arc<InstanceManager>,
        routing: Routing,
        expose_instance_id: bool,
        prewarm: usize,
    ) -> anyhow::Result<Self> {
        let (pre, flavor) = proxy_pre(&manager)?;
        Ok(Self {
            router: Router::new(manager.clone(), pre, routing, prewarm),
            manager,
            flavor,
            expose_instance_id,
        })
    }

    pub fn flavor(&self) -> HttpFlavor {
        self.flavor
    }

    pub fn manager(&self) -> &Arc<InstanceManager> {
        &self.manager
    }

    /// Creates instances before traffic arrives, at least one per instance
    /// set that serves requests from the start; readiness turns on when one
    /// succeeds.
    pub async fn warm_up(&self) -> anyhow::Result<()> {
        for set in self.router.warm_sets() {
            set.dispatch().pool().warm_up().await?;
        }
        Ok(())
    }

    /// Serves one request. Never fails: guest failures become 5xx responses
    /// and the instance that failed is retired.
    pub async fn handle(&self, request: http::Request<WasiBody>) -> Response<WasiBody> {
        self.call(request).await.response
    }

    /// Serves one request and says which instance served it and how much
    /// linear memory that instance held afterwards.
    pub async fn call(&self, mut request: http::Request<WasiBody>) -> Served {
        let ticket = Arc::new(CallTicket::default());
        let start = Instant::now();
        let route = match self.router.route(&request) {
            Ok(route) => route,
            Err(refusal) => {
                ticket.settle();
                return Served {
                    response: text_response(StatusCode::BAD_REQUEST, refusal.to_string()),
                    instance: None,
                    memory: None,
                    settlement: Settlement(ticket),
                };
            }
        };
        let io = route.decision.as_ref().and_then(|d| d.io.as_ref());
        if let Some(io) = io {
            io.admit.wait().await;
            request = request.map(|body| Perturbed::new(body, io.request_seed).boxed_unsync());
        }
        let answer = route.handler.handle(ticket.clone(), request).await;
        // An error answer is not timed: a timeout's would only say how long
        // the limit is.
        route
            .handler
            .dispatch()
            .pool()
            .call_ended(answer.is_ok().then(|| start.elapsed()), answer.is_err());
        let mut response = match answer {
            Ok(mut response) => {
                if let Some(io) = io {
                    let seed = io.response_seed;
                    response = response.map(|body| Perturbed::new(body, seed).boxed_unsync());
                }
                response
            }
            Err(CallError::GuestErrorCode(code)) => {
                // The guest answered, with an HTTP error code instead of a
                // response: a deliberate answer, so its instance stays.
                tracing::debug!(instance = ?ticket.instance_id(), "component answered {code}");
                let (status, body) = CallError::GuestErrorCode(code).http_answer();
                text_response(status, body)
            }
            Err(error) => self.failed(&ticket, error).await,
        };
        let instance = ticket.instance_id();
        if self.expose_instance_id
            && let Some(id) = instance
        {
            response
                .headers_mut()
                .insert(INSTANCE_HEADER, HeaderValue::from(id));
        }
        Served {
            response,
            instance,
            memory: ticket.memory_bytes(),
            settlement: Settlement(ticket),
        }
    }

    /// The answer to a call whose instance failed (trapped, ran out of time
    /// or memory, never answered): the instance is retired and the failure
    /// logged with its reason.
    async fn failed(&self, ticket: &CallTicket, error: CallError) -> Response<WasiBody> {
        let reason = ticket.failure(&error).await;
        tracing::warn!(
            instance = ?ticket.instance_id(),
            reason = reason.as_str(),
            "request failed: {error}"
        );
        // The worker may know better than the caller's error (a p2 trap
        // under `ProxyHandler` reaches the caller as "no response").
        let error = match (reason, error) {
            (Retirement::Timeout, _) => CallError::Timeout,
            (Retirement::Memory, CallError::Memory(cap)) => CallError::Memory(cap),
            (Retirement::Memory, _) => CallError::Memory(None),
            // No instance took the call: creating one failed.
            (_, CallError::Trap(e)) if ticket.instance_id().is_none() => {
                CallError::Instantiation(e)
            }
            (_, error) => error,
        };
        let (status, body) = error.http_answer();
        text_response(status, body)
    }
}

/// A served request, with what the host knows about how it was served.
pub struct Served {
    pub response: Response<WasiBody>,
    pub instance: Option<InstanceId>,
    /// Linear memory of the serving instance when the response head left.
    pub memory: Option<u64>,
    /// When the call lets go of its instance.
    pub settlement: Settlement,
}

/// The end of a call for its instance, which can come after its response:
/// a p2 guest may go on writing its body after the response head left.
pub struct Settlement(Arc<CallTicket>);

impl Settlement {
    /// Resolves once the call no longer holds its instance (parked for the
    /// next call, or ended). A serial client that must see its next call
    /// land on the same reused instance waits for this, instead of
    /// guessing with a sleep.
    pub async fn settled(&self) {
        self.0.settled().await
    }

    /// The serving instance's linear memory now, in bytes.
    pub fn memory_now(&self) -> Option<u64> {
        self.0.memory_bytes()
    }
}

/// A plain-text response with a body built by the host.
pub fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Response<WasiBody> {
    let body = Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
