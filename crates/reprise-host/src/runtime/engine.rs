//! The wasmtime [`Engine`]: one per process, shared by every instance.
//!
//! Fresh-per-call is only affordable when instantiation costs microseconds,
//! which is what the pooling allocator buys: it pre-reserves slots for
//! memories, tables and instances so that a new instance is a few `mmap`
//! resets instead of fresh allocations. Not every machine lets a process
//! reserve that much virtual memory, and not every component fits the pool's
//! per-slot limits, so the engine falls back to on-demand allocation and
//! says so rather than refusing to run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How instance memory is allocated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Allocator {
    /// Pre-reserved slots: instantiation in microseconds.
    #[default]
    Pooling,
    /// `mmap` per instance: slower to instantiate, no up-front reservation.
    OnDemand,
}

/// The interval at which an interruptible engine's epoch advances. Guest
/// code notices deadlines only at ticks, so a timeout is honoured to within
/// [`YIELD_TICKS`] of them.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Epoch ticks a call runs between two yields to the async runtime. A guest
/// computing for long (or forever, without `--timeout`) would otherwise hold
/// its runtime thread, and the runtime's I/O driver with it: on a small
/// machine every connection, and shutdown itself, could wait on it.
pub const YIELD_TICKS: u64 = 2;

/// Live instances allowed when the operator sets no limit. The pooling
/// allocator reserves address space for each, so this is also what it
/// reserves by default.
pub const DEFAULT_MAX_INSTANCES: usize = 1000;

/// Settings that shape the engine. They are fixed for the life of the process
/// because compiled code depends on them.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Preferred allocator; [`Allocator::Pooling`] falls back to on-demand
    /// when the pool cannot be reserved.
    pub allocator: Allocator,
    /// Upper bound on one instance's linear memory, in bytes. The pool's slot
    /// size is derived from it so that the cap and the pool agree.
    pub max_memory: Option<u64>,
    /// Whether guest code checks the epoch, so calls can be interrupted
    /// (`--timeout`) and long-running ones yield to other tasks now and then
    /// (`serve`). Costs a little on every loop back-edge, so it is off when
    /// neither is needed.
    pub interruptible: bool,
    /// Reuse compiled code across runs through wasmtime's on-disk cache:
    /// interpreted-language components take seconds to compile.
    pub cache: bool,
    /// Whether the engine supports the component model's async features
    /// (p3 `wasi:http/handler`, streams, futures). Every guest-to-host call
    /// pays for that support in wasmtime's task bookkeeping, so components
    /// that do not need it run on an engine without it
    /// ([`crate::runtime::component::load`] decides).
    pub concurrency: bool,
    /// Instances alive at once; the pool reserves slots for this many.
    pub max_instances: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            allocator: Allocator::Pooling,
            max_memory: None,
            interruptible: false,
            cache: true,
            concurrency: true,
            max_instances: DEFAULT_MAX_INSTANCES,
        }
    }
}

/// A built engine and what it actually ended up using.
#[derive(Clone)]
pub struct EngineHandle {
    pub engine: Engine,
    pub allocator: Allocator,
    /// Whether compiled code checks the epoch ([`EngineOptions::interruptible`]).
    pub interruptible: bool,
    /// Keeps the epoch ticker alive; it stops when the last handle is dropped.
    _ticker: Option<Arc<EpochTicker>>,
}

impl EngineHandle {
    /// Builds the engine, trying the pool first when asked for it.
    pub fn new(options: &EngineOptions) -> anyhow::Result<Self> {
        let mut attempts = vec![options.allocator];
        if options.allocator == Allocator::Pooling {
            attempts.push(Allocator::OnDemand);
        }
        let mut last_error = None;
        for allocator in attempts {
            match build(options, allocator) {
                Ok(engine) => {
                    let ticker = options
                        .interruptible
                        .then(|| Arc::new(EpochTicker::start(engine.clone())));
                    return Ok(Self {
                        engine,
                        allocator,
                        interruptible: options.interruptible,
                        _ticker: ticker,
                    });
                }
                Err(e) => {
                    tracing::warn!(?allocator, "cannot build engine: {e:#}");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// The same options with on-demand allocation, for components that do not
    /// fit the pool's slots.
    pub fn on_demand(options: &EngineOptions) -> anyhow::Result<Self> {
        Self::new(&EngineOptions {
            allocator: Allocator::OnDemand,
            ..options.clone()
        })
    }
}

fn build(options: &EngineOptions, allocator: Allocator) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(options.concurrency);
    config.concurrency_support(options.concurrency);
    config.epoch_interruption(options.interruptible);
    if options.cache {
        match wasmtime::Cache::from_file(None) {
            Ok(cache) => {
                config.cache(Some(cache));
            }
            Err(e) => tracing::debug!("compilation cache unavailable: {e:#}"),
        }
    }
    if allocator == Allocator::Pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(
            options.max_memory,
            options.max_instances,
        )));
    }
    Ok(Engine::new(&config)?)
}

/// Linear memory (and table) bytes a freed pool slot keeps mapped, resetting
/// only the pages the instance dirtied, by `memset`.
///
/// Returning a slot's pages to the kernel (`madvise`) is what dominates a
/// fresh-per-request workload, not instantiation itself: the kernel must
/// flush the TLB of every core the process runs on (an inter-processor
/// interrupt each time), and the next instance in that slot takes a page
/// fault for every page it touches again. With the `PAGEMAP_SCAN` ioctl
/// (Linux 6.7+, used when present) wasmtime finds exactly the dirty pages
/// and resets them in place, so a small component's slot goes back to the
/// pool without a system call. The cost is resident memory: up to this much
/// per idle slot, which is bounded by the pool's warm-slot count.
const KEEP_RESIDENT: usize = 4 << 20;

/// Pool sizing. Components from interpreted-language toolchains contain many
/// core instances and large function tables, so the per-component limits are
/// wider than wasmtime's defaults; the totals follow `max_instances`, the
/// live instances the manager allows, with some headroom: an instance gives
/// its permit back as its store drops, a moment before its slot is free.
fn pooling_config(max_memory: Option<u64>, max_instances: usize) -> PoolingAllocationConfig {
    let slots = u32::try_from(max_instances + max_instances / 8 + 16).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::default();
    pool.pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT / 16);
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(5))
        .total_memories(slots)
        .total_tables(slots.saturating_mul(2))
        .total_stacks(slots)
        .max_tables_per_module(4)
        .table_elements(100_000)
        .max_component_instance_size(4 << 20)
        .max_core_instance_size(4 << 20);
    if let Some(max) = max_memory {
        // A slot never needs to be larger than the cap the store enforces;
        // round up to a whole wasm page.
        let page = 64 * 1024;
        let bytes = max.div_ceil(page).saturating_mul(page);
        pool.max_memory_size(usize::try_from(bytes).unwrap_or(usize::MAX));
    }
    pool
}

/// A background thread that advances the engine's epoch every
/// [`EPOCH_TICK`], so that deadlines set in ticks become wall-clock timeouts.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("reprise-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn epoch thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
