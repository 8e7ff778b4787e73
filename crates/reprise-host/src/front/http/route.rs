//! Which set of instances serves a request.
//!
//! An instance set hands each request to whichever of its instances is
//! free; it has no notion of *which* instance should serve it. Reprise needs
//! that choice for two features, so it keeps several sets (each with its own
//! policy) and routes between them:
//! - isolation keys: one set per key value, so an instance never serves two
//!   tenants; requests without a key get a fresh instance each;
//! - chaos: [`chaos::INSTANCES`] sets, one picked at random per request, whose
//!   instances are retired at random before a call (per isolation key when
//!   both are on).

use super::dispatch::{CallTicket, Dispatch};
use crate::policy::Policy;
use crate::policy::Retirement;
use crate::policy::chaos::{self, Chaos};
use crate::pool::InstanceManager;
use crate::runtime::failure::CallError;
use crate::runtime::instance::InstanceState;
use http::{HeaderName, HeaderValue};
use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use wasmtime_wasi_http::handler::{ProxyHandler, ProxyPre, Request, Response};

/// What keeps instances apart (`--isolate-by`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsolateBy {
    /// The value of this request header.
    Header(HeaderName),
}

/// Why an `--isolate-by` value names no isolation key.
#[derive(Debug, thiserror::Error)]
pub enum IsolateByError {
    /// Not of the one kind of key there is, `header:NAME`.
    #[error("invalid isolation key `{0}`: expected `header:NAME`, e.g. `header:x-tenant`")]
    NotAHeader(String),
    #[error("invalid isolation key `{text}`: `{name}` is not a valid header name")]
    HeaderName { text: String, name: String },
}

impl FromStr for IsolateBy {
    type Err = IsolateByError;

    fn from_str(text: &str) -> Result<Self, IsolateByError> {
        let Some(name) = text.strip_prefix("header:") else {
            return Err(IsolateByError::NotAHeader(text.to_string()));
        };
        HeaderName::from_str(name)
            .map(IsolateBy::Header)
            .map_err(|_| IsolateByError::HeaderName {
                text: text.to_string(),
                name: name.to_string(),
            })
    }
}

/// How requests are spread over instance sets. The two combine: with both,
/// each isolation key gets chaos's slots of its own.
#[derive(Clone, Debug, Default)]
pub struct Routing {
    /// One group of sets per value of this key (`--isolate-by`).
    pub isolate_by: Option<IsolateBy>,
    /// The testing mode: a group is chaos's slots, one picked per request.
    pub chaos: Option<Arc<Chaos>>,
}

/// One set of instances with one policy, and the driver its export needs.
#[derive(Clone)]
pub(crate) enum InstanceSet {
    /// p3 (and p2 components that use async features): `ProxyHandler`
    /// runs each instance as a worker task, which takes concurrent calls
    /// when the export is p3.
    Concurrent(ProxyHandler<Dispatch>),
    /// p2 on an engine without concurrency support: one call at a time per
    /// instance, on the request's task (`direct.rs`).
    Direct(Dispatch),
}

impl InstanceSet {
    pub fn dispatch(&self) -> &Dispatch {
        match self {
            InstanceSet::Concurrent(handler) => handler.state(),
            InstanceSet::Direct(dispatch) => dispatch,
        }
    }

    /// Serves `request` on one of the set's instances; `ticket` learns which.
    pub async fn handle(
        &self,
        ticket: Arc<CallTicket>,
        request: Request,
    ) -> Result<Response, CallError> {
        match self {
            InstanceSet::Concurrent(handler) => {
                let mut abandoned = Abandoned(Some(ticket.clone()));
                let answer = handler.handle(ticket.clone(), request).await;
                abandoned.0 = None;
                // The worker takes its next call when it is ready; nothing
                // to wait for once the answer is here.
                ticket.answered();
                let response = answer.map_err(CallError::from_wasmtime)?;
                Ok(match ticket.instance() {
                    Some(instance) => super::cut::on_instance(response, instance.clone()),
                    None => response,
                })
            }
            InstanceSet::Direct(dispatch) => dispatch.serve_direct(ticket, request).await,
        }
    }
}

/// Dropped with a p3 request whose client went away before its answer.
/// `ProxyHandler` cannot cancel the guest's task (wasmtime 48 has no API
/// for it), so its instance takes no new calls, and is stopped (ending as
/// `cancelled`) once no other call on it awaits an answer. Bodies its
/// answered calls were still writing are cut then, and aborted as such.
struct Abandoned(Option<Arc<CallTicket>>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some(ticket) = self.0.take() {
            ticket.abandon();
        }
    }
}

/// Where one request goes, and the chaos decision taken for it, if any.
/// The set is borrowed when the router owns it for good (no reference
/// count shared by every request to bump).
pub(crate) struct Route<'a> {
    pub handler: Cow<'a, InstanceSet>,
    pub decision: Option<chaos::Decision>,
}

/// Builds instance sets for one component.
pub(crate) struct Sets {
    manager: Arc<InstanceManager>,
    pre: ProxyPre<InstanceState>,
}

impl Sets {
    fn new_set(&self, prewarm: usize, policy: Policy) -> InstanceSet {
        let pre = match &self.pre {
            ProxyPre::P2(pre) => ProxyPre::P2(pre.clone()),
            ProxyPre::P3(pre) => ProxyPre::P3(pre.clone()),
        };
        // The direct driver calls the p2 export without wasmtime's async
        // task machinery; a component compiled with concurrency support (it
        // uses async features somewhere) keeps the driver built on it.
        let direct = matches!(pre, ProxyPre::P2(_))
            && !self.manager.engine().engine.get_concurrency_support();
        let dispatch = Dispatch::new(self.manager.clone(), pre, prewarm, policy);
        if !direct {
            InstanceSet::Concurrent(ProxyHandler::new(dispatch))
        } else {
            InstanceSet::Direct(dispatch)
        }
    }

    /// One set, or under chaos its slots, each keeping `prewarm` warm.
    fn new_group(&self, prewarm: usize, chaos: Option<&Arc<Chaos>>) -> Group {
        let policy = self.manager.policy().clone();
        match chaos {
            None => Group::One(self.new_set(prewarm, policy)),
            Some(chaos) => Group::Chaos {
                slots: (0..chaos::INSTANCES)
                    .map(|_| self.new_set(prewarm, policy.clone()))
                    .collect(),
                chaos: chaos.clone(),
            },
        }
    }
}

/// The sets that one isolation key's requests (or, without isolation, all
/// requests) may land on.
pub(crate) enum Group {
    One(InstanceSet),
    /// Chaos's slots, one picked at random per request.
    Chaos {
        chaos: Arc<Chaos>,
        slots: Vec<InstanceSet>,
    },
}

impl Group {
    /// The set for the next request, carrying out chaos's re-instantiation.
    fn pick(&self) -> (&InstanceSet, Option<chaos::Decision>) {
        match self {
            Group::One(set) => (set, None),
            Group::Chaos { chaos, slots } => {
                let decision = chaos.next();
                let set = &slots[decision.slot];
                if decision.reinstantiate {
                    set.dispatch()
                        .pool()
                        .retire_one_used(decision.victim, Retirement::Chaos);
                }
                (set, Some(decision))
            }
        }
    }

    fn sets(&self) -> &[InstanceSet] {
        match self {
            Group::One(set) => std::slice::from_ref(set),
            Group::Chaos { slots, .. } => slots,
        }
    }

    /// Whether no instance of the group is alive.
    fn is_unused(&self) -> bool {
        self.sets()
            .iter()
            .all(|set| set.dispatch().pool().is_unused())
    }
}

/// One value per key, for keys that arrive from clients: values found
/// unused are dropped whenever the map has doubled since the last look, so
/// a stream of distinct keys cannot grow it without bound while the sets
/// still serving (or holding idle instances) stay.
pub(crate) struct Keyed<K, V> {
    map: HashMap<K, V>,
    sweep_at: usize,
}

/// Below this many keys the map is never swept.
const MIN_SWEEP: usize = 64;

impl<K, V> Default for Keyed<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            sweep_at: MIN_SWEEP,
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Keyed<K, V> {
    /// The value for `key`, made by `make` if there is none.
    fn get_or_insert(
        &mut self,
        key: &K,
        unused: impl Fn(&V) -> bool,
        make: impl FnOnce() -> V,
    ) -> V {
        if let Some(value) = self.map.get(key) {
            return value.clone();
        }
        if self.map.len() >= self.sweep_at {
            self.map.retain(|_, value| !unused(value));
            self.sweep_at = (self.map.len() * 2).max(MIN_SWEEP);
        }
        self.map.entry(key.clone()).or_insert_with(make).clone()
    }
}

/// The sets of instances of one HTTP component, and the routing between them.
pub(crate) enum Router {
    Shared(Group),
    Isolated {
        header: HeaderName,
        keyed: Mutex<Keyed<HeaderValue, Arc<Group>>>,
        /// Requests without a key: a fresh instance each (under chaos too),
        /// as there is nobody to share an instance with.
        unkeyed: InstanceSet,
        chaos: Option<Arc<Chaos>>,
        sets: Sets,
    },
}

impl Router {
    pub fn new(
        manager: Arc<InstanceManager>,
        pre: ProxyPre<InstanceState>,
        routing: Routing,
        prewarm: usize,
    ) -> Self {
        let sets = Sets { manager, pre };
        match routing.isolate_by {
            // Chaos keeps every slot's instance ready, so that two are alive.
            None => {
                let prewarm = if routing.chaos.is_some() {
                    prewarm.max(1)
                } else {
                    prewarm
                };
                Router::Shared(sets.new_group(prewarm, routing.chaos.as_ref()))
            }
            Some(IsolateBy::Header(header)) => Router::Isolated {
                header,
                keyed: Mutex::default(),
                unkeyed: sets.new_set(prewarm, Policy::Fresh),
                chaos: routing.chaos,
                sets,
            },
        }
    }

    /// Every set that should be warmed before traffic arrives.
    pub fn warm_sets(&self) -> Vec<&InstanceSet> {
        match self {
            Router::Shared(group) => group.sets().iter().collect(),
            Router::Isolated { unkeyed, .. } => vec![unkeyed],
        }
    }

    /// Picks the set for `request`, carrying out chaos's re-instantiation.
    /// A request with more than one value of the isolation key is refused
    /// (the message names the header): routing it by any one of them would
    /// let a client steer itself onto another key's instance.
    pub fn route<B>(&self, request: &http::Request<B>) -> Result<Route<'_>, AmbiguousKey> {
        Ok(match self {
            Router::Shared(group) => {
                let (set, decision) = group.pick();
                Route {
                    handler: Cow::Borrowed(set),
                    decision,
                }
            }
            Router::Isolated {
                header,
                keyed,
                unkeyed,
                chaos,
                sets,
            } => match isolation_key(request.headers(), header)? {
                Some(key) => {
                    // Keyed groups come and go with their keys: nothing is
                    // kept warm for them.
                    let group = keyed.lock().unwrap().get_or_insert(
                        key,
                        |group| group.is_unused(),
                        || Arc::new(sets.new_group(0, chaos.as_ref())),
                    );
                    let (set, decision) = group.pick();
                    Route {
                        handler: Cow::Owned(set.clone()),
                        decision,
                    }
                }
                // Fresh instances have no state to disturb, but chaos still
                // perturbs their I/O.
                None => Route {
                    handler: Cow::Borrowed(unkeyed),
                    decision: chaos.as_ref().map(|chaos| chaos.next()),
                },
            },
        })
    }
}

/// A request with more than one value of the isolation key's header; its
/// message is the body of the 400 it is answered with.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "more than one `{header}` header: the isolation key (--isolate-by header:{header}) \
     must have one value\n"
)]
pub(crate) struct AmbiguousKey {
    header: HeaderName,
}

/// The isolation key of a request: the one value of `header`, if it has
/// one that is not empty (an empty value is no key: a fresh instance, never
/// an instance shared by every request that sends one). Two or more values
/// are refused.
fn isolation_key<'h>(
    headers: &'h http::HeaderMap,
    header: &HeaderName,
) -> Result<Option<&'h HeaderValue>, AmbiguousKey> {
    let mut values = headers.get_all(header).iter();
    match (values.next(), values.next()) {
        (_, Some(_)) => Err(AmbiguousKey {
            header: header.clone(),
        }),
        (Some(key), None) if !key.as_bytes().iter().all(u8::is_ascii_whitespace) => Ok(Some(key)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keys_do_not_grow_the_map_without_bound() {
        let mut keyed: Keyed<u32, Arc<()>> = Keyed::default();
        let busy = keyed.get_or_insert(&0, |_| false, || Arc::new(()));
        for key in 1..10_000 {
            // A value nobody else holds is unused.
            keyed.get_or_insert(&key, |v| Arc::strong_count(v) == 1, || Arc::new(()));
        }
        assert!(keyed.map.len() <= 2 * MIN_SWEEP);
        let again = keyed.get_or_insert(&0, |_| true, || Arc::new(()));
        assert!(Arc::ptr_eq(&busy, &again), "a set in use was dropped");
    }

    #[test]
    fn two_values_of_the_key_are_refused_and_an_empty_one_is_no_key() {
        let name = HeaderName::from_static("x-tenant");
        let mut headers = http::HeaderMap::new();
        assert_eq!(isolation_key(&headers, &name), Ok(None));
        headers.append(&name, HeaderValue::from_static(""));
        assert_eq!(isolation_key(&headers, &name), Ok(None));
        headers.insert(&name, HeaderValue::from_static("alice"));
        assert_eq!(isolation_key(&headers, &name).unwrap().unwrap(), "alice");
        headers.append(&name, HeaderValue::from_static("mallory"));
        assert!(
            isolation_key(&headers, &name)
                .unwrap_err()
                .to_string()
                .contains("`x-tenant`")
        );
    }

    #[test]
    fn isolation_keys_parse_from_header_names() {
        assert_eq!(
            "header:x-tenant".parse::<IsolateBy>().unwrap(),
            IsolateBy::Header(HeaderName::from_static("x-tenant"))
        );
        assert!(
            "cookie:x"
                .parse::<IsolateBy>()
                .unwrap_err()
                .to_string()
                .contains("header:NAME")
        );
        assert!(
            "header:bad name"
                .parse::<IsolateBy>()
                .unwrap_err()
                .to_string()
                .contains("not a valid header")
        );
    }
}
