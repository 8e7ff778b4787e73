//! Per-instance host state: what one component instance owns for its whole
//! life, whether it serves one call (fresh) or many (reuse).
//!
//! Following Spin's split by lifetime, nothing here is per call: a reused
//! instance keeps its WASI context, resource table and memory limits across
//! calls, exactly as the guest keeps its linear memory.

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Instances are numbered from 1 in creation order; the number is what
/// `x-reprise-instance` exposes.
pub type InstanceId = u64;

/// The `T` of every `Store<T>` Reprise creates.
pub struct InstanceState {
    pub id: InstanceId,
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) limits: StoreLimits,
}

impl InstanceState {
    /// State for instance `id`, its memory capped at `max_memory` bytes.
    ///
    /// A failed `memory.grow` traps instead of returning -1: most guest
    /// allocators abort on allocation failure anyway, and a trap names the
    /// cause where an abort does not.
    pub fn new(id: InstanceId, max_memory: Option<u64>) -> Self {
        let mut limits = StoreLimitsBuilder::new().trap_on_grow_failure(true);
        if let Some(max) = max_memory {
            limits = limits.memory_size(usize::try_from(max).unwrap_or(usize::MAX));
        }
        let wasi = WasiCtxBuilder::new()
            .inherit_stdout()
            .inherit_stderr()
            .build();
        Self {
            id,
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            limits: limits.build(),
        }
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
            hooks: Default::default(),
        }
    }
}
