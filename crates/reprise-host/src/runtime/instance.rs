//! Per-instance host state: what one component instance owns for its whole
//! life, whether it serves one call (fresh) or many (reuse).
//!
//! Following Spin's split by lifetime, nothing here is per call: a reused
//! instance keeps its WASI context, resource table and memory limits across
//! calls, exactly as the guest keeps its linear memory.

use crate::runtime::failure::MemoryCapExceeded;
use crate::runtime::guest_output::{GuestOutput, LoggedStream, Printed};
use crate::runtime::net::{Denials, NetPolicy, Verdict, describe_use};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::ResourceTable;
use wasmtime::error::Context as _;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, ForbiddenHeaderFilter, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

/// Instances are numbered from 1 in creation order; the number is what
/// `x-reprise-instance` exposes.
pub type InstanceId = u64;

/// Room for one live instance (of the pool's `--max-instances`), held by
/// the instance's state for as long as it lives: dropping the store gives
/// it back.
pub struct InstanceSlot {
    _permit: OwnedSemaphorePermit,
}

impl InstanceSlot {
    pub fn new(permit: OwnedSemaphorePermit) -> Self {
        Self { _permit: permit }
    }
}

/// The `T` of every `Store<T>` Reprise creates.
pub struct InstanceState {
    pub id: InstanceId,
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: Hooks,
    /// `wasi:config/store`'s variables (`--config`).
    config: wasmtime_wasi_config::WasiConfigVariables,
    /// `wasi:keyvalue`'s in-memory store, seeded by `--keyvalue`.
    keyvalue: wasmtime_wasi_keyvalue::WasiKeyValueCtx,
    /// What this instance may reach (`--allow-net`).
    net: Arc<NetPolicy>,
    /// The network accesses this instance was denied.
    pub net_denials: Denials,
    pub(crate) limits: MemoryTracker,
    /// Its stdout, when captured ([`GuestOutput::Captured`]).
    pub printed: Option<Printed>,
    /// When the current call (or the instantiation) of a store that runs
    /// one call at a time runs out of time.
    pub(crate) call_deadline: Option<std::time::Instant>,
    /// The deadlines of concurrent (p3) calls, shared with their guards;
    /// made on the first such call, so stores that run one call at a time
    /// never pay for it.
    pub(crate) concurrent_deadlines:
        std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<crate::policy::CallDeadlines>>>,
    /// Held for the instance's life; see [`InstanceSlot`].
    _slot: InstanceSlot,
}

/// The store's resource limiter: enforces the operator's caps and keeps a
/// running total of the instance's linear memory, which the reuse policy's
/// memory ceiling and `reprise check`'s leak trend read without touching the
/// store.
pub(crate) struct MemoryTracker {
    limits: StoreLimits,
    /// The operator's cap on linear memory, in bytes.
    cap: Option<u64>,
    bytes: Arc<AtomicU64>,
}

impl ResourceLimiter for MemoryTracker {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let wanted = u64::try_from(desired).unwrap_or(u64::MAX);
        if let Some(cap) = self.cap.filter(|&cap| wanted > cap) {
            // A trap of its own type, so every front end knows it for the
            // memory cap without reading its message.
            return Err(wasmtime::Error::new(MemoryCapExceeded {
                desired: wanted,
                cap,
            }));
        }
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            let grown = u64::try_from(desired.saturating_sub(current)).unwrap_or(u64::MAX);
            self.bytes.fetch_add(grown, Relaxed);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// What WASI shows every instance of a component, as a shell shows a
/// process: its command line, environment variables and preopened
/// directories. Set once per component from the command line; every
/// instance, fresh or reused, sees the same.
#[derive(Clone, Debug, Default)]
pub struct GuestEnvironment {
    /// argv, program name first; empty for components that are not
    /// commands.
    pub args: Vec<String>,
    pub vars: Vec<(String, String)>,
    pub dirs: Vec<Preopen>,
    /// Whether instances read the host's stdin (for `reprise run`; shared,
    /// so a later instance reads on where an earlier one stopped).
    pub stdin: bool,
    /// Where what instances print goes.
    pub output: GuestOutput,
    /// The outbound network instances may reach (`--allow-net`); none by
    /// default.
    pub net: Arc<NetPolicy>,
    /// `wasi:config/store` variables (`--config NAME=VALUE`).
    pub config: Vec<(String, String)>,
    /// Seed data of the `wasi:keyvalue` in-memory store (`--keyvalue
    /// NAME=VALUE`), which every instance starts from.
    pub keyvalue: Vec<(String, String)>,
}

/// A host directory the guest sees, read-write, under its own path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
}

impl InstanceState {
    /// State for instance `id`, alive in `slot`, its memory capped at
    /// `max_memory` bytes, with `guest`'s command line, variables and
    /// directories. Fails only when a preopened directory can no longer be
    /// opened.
    ///
    /// A failed `memory.grow` traps instead of returning -1: most guest
    /// allocators abort on allocation failure anyway, and a trap names the
    /// cause where an abort does not.
    pub fn new(
        id: InstanceId,
        max_memory: Option<u64>,
        guest: &GuestEnvironment,
        slot: InstanceSlot,
    ) -> wasmtime::Result<Self> {
        let mut limits = StoreLimitsBuilder::new().trap_on_grow_failure(true);
        if let Some(max) = max_memory {
            limits = limits.memory_size(usize::try_from(max).unwrap_or(usize::MAX));
        }
        let mut wasi = WasiCtxBuilder::new();
        let logged = |stream| LoggedStream {
            instance: id,
            stream,
        };
        let mut printed = None;
        match guest.output {
            GuestOutput::Inherit => {
                wasi.inherit_stdout().inherit_stderr();
            }
            GuestOutput::Stderr => {
                wasi.stdout(tokio::io::stderr()).inherit_stderr();
            }
            GuestOutput::Logs => {
                wasi.stdout(logged("stdout")).stderr(logged("stderr"));
            }
            GuestOutput::Captured => {
                let capture = Printed::default();
                wasi.stdout(capture.clone()).stderr(logged("stderr"));
                printed = Some(capture);
            }
        }
        wasi.args(&guest.args).envs(&guest.vars);
        if guest.stdin {
            wasi.inherit_stdin();
        }
        let net_denials = Denials::default();
        restrict_network(&mut wasi, id, &guest.net, &net_denials);
        for dir in &guest.dirs {
            wasi.preopened_dir(&dir.host, &dir.guest, FsPerms::ReadWrite)
                .with_context(|| format!("cannot open directory {}", dir.host.display()))?;
        }
        Ok(Self {
            id,
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            http_hooks: Hooks,
            config: guest.config.iter().cloned().collect(),
            keyvalue: wasmtime_wasi_keyvalue::WasiKeyValueCtxBuilder::new()
                .in_memory_data(guest.keyvalue.iter().cloned())
                .build(),
            net: guest.net.clone(),
            net_denials,
            limits: MemoryTracker {
                limits: limits.build(),
                cap: max_memory,
                bytes: Arc::default(),
            },
            printed,
            call_deadline: None,
            concurrent_deadlines: std::sync::OnceLock::new(),
            _slot: slot,
        })
    }
}

/// Lets instance `id` use wasi:sockets as `policy` allows, logging each
/// denied target once (naming the flag that would allow it) and recording
/// it in `denials`. TCP and UDP stay enabled so that every use reaches the
/// address check, which knows the target: a socket refused at creation could
/// not say what it was for.
fn restrict_network(
    wasi: &mut WasiCtxBuilder,
    id: InstanceId,
    policy: &Arc<NetPolicy>,
    denials: &Denials,
) {
    wasi.allow_tcp(true)
        .allow_udp(true)
        .allow_ip_name_lookup(policy.allows_some_lookup());
    let policy = policy.clone();
    let denials = denials.clone();
    wasi.socket_addr_check(move |addr, usage| {
        let allowed = match policy.check(addr, usage) {
            Verdict::Allowed => true,
            Verdict::Denied { allow_with } => {
                let what = format!("{} {addr}", describe_use(usage));
                if denials.record(what.clone(), allow_with.clone()) {
                    tracing::warn!(
                        instance = id,
                        "network access denied: {what}; allow it with `--allow-net {allow_with}`"
                    );
                }
                false
            }
        };
        Box::pin(async move { allowed })
    });
}

impl InstanceState {
    /// `wasi:config/store`, for the linker.
    pub fn config(&mut self) -> wasmtime_wasi_config::WasiConfig<'_> {
        wasmtime_wasi_config::WasiConfig::new(&self.config)
    }

    /// `wasi:sockets/ip-name-lookup`, filtered by the policy, for the linker.
    pub(crate) fn lookup(&mut self) -> crate::runtime::net::FilteredLookup<'_> {
        crate::runtime::net::FilteredLookup {
            policy: self.net.clone(),
            denials: self.net_denials.clone(),
            instance: self.id,
            sockets: wasmtime_wasi::sockets::WasiSocketsView::sockets(self),
        }
    }

    /// `wasi:keyvalue`, for the linker.
    pub fn keyvalue(&mut self) -> wasmtime_wasi_keyvalue::WasiKeyValue<'_> {
        wasmtime_wasi_keyvalue::WasiKeyValue::new(&self.keyvalue, &mut self.table)
    }

    /// A live view of the instance's total linear memory, in bytes.
    pub fn memory_bytes(&self) -> Arc<AtomicU64> {
        self.limits.bytes.clone()
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// `wasi:http`'s default behaviour, without its default hooks' allocation
/// per header check: they build a new `Arc`'d filter for every header of
/// every request and response (about one in six of a reused hello-world
/// request's allocations).
struct Hooks;

impl WasiHttpHooks for Hooks {
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        static FILTER: LazyLock<ForbiddenHeaderFilter> =
            LazyLock::new(|| Arc::new(|name| DEFAULT_FORBIDDEN_HEADERS.contains(name)));
        FILTER.clone()
    }
}
