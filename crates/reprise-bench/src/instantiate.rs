//! Instantiation time: a new store and instance from the pre-instance, the
//! cost a fresh-per-call policy pays on every request, with the pooling
//! allocator and with on-demand allocation. The manager comes from the
//! host's builder (`setup.rs`), as `reprise serve`'s does, so the engine
//! measured is the one Reprise would run the component on.
//!
//! Measured as the median over batches of the mean time per instance, after
//! a warm-up batch, so a single slow batch (the other core busy) does not
//! move the result.

use reprise_host::policy::PolicyChoice;
use reprise_host::runtime::component::Source;
use reprise_host::runtime::engine::Allocator;
use reprise_host::runtime::instance::GuestEnvironment;
use reprise_host::setup::{HostSettings, Setup};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BATCHES: usize = 11;
const PER_BATCH: usize = 200;

/// Mean time to create, instantiate and drop one instance of `component`.
pub fn measure(component: &str, allocator: Allocator) -> anyhow::Result<Duration> {
    let settings = HostSettings {
        policy: PolicyChoice::Fresh,
        allocator,
        ..HostSettings::default()
    };
    let setup = Setup::prepare(Source::File(PathBuf::from(component)), settings)?;
    let manager = setup.manager(GuestEnvironment::default())?;
    if manager.engine().allocator != allocator {
        anyhow::bail!("the {allocator:?} allocator is not available on this machine");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut batches = Vec::with_capacity(BATCHES);
        // The first batch warms caches and the pool's slots; it is not kept.
        for batch in 0..=BATCHES {
            let start = Instant::now();
            for _ in 0..PER_BATCH {
                let mut store = manager.new_store(manager.slot().await)?;
                manager.instance_pre().instantiate_async(&mut store).await?;
                drop(store);
            }
            if batch > 0 {
                batches.push(start.elapsed() / PER_BATCH as u32);
            }
        }
        batches.sort();
        Ok(batches[batches.len() / 2])
    })
}
