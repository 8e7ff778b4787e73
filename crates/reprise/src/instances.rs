//! The setup every command that runs a component shares (`serve`, `run`,
//! `call`): read the bytes, read the reuse hint, resolve the policy, build
//! the engine, compile, create the instance manager. One path, so a flag or
//! a hint means the same whichever command is given it.

use crate::cli::{InstanceArgs, PolicyArg};
use reprise_host::chaos::{self, Chaos, ChaosConfig};
use reprise_host::component::{self, Source};
use reprise_host::engine::EngineOptions;
use reprise_host::instance::GuestEnvironment;
use reprise_host::manager::{InstanceLimits, InstanceManager};
use reprise_host::policy::{self, Policy, PolicyChoice, Resolution, ReuseFlags};
use reprise_host::serial::SerialOptions;
use std::borrow::Cow;
use std::sync::Arc;

/// A component read, its hint resolved against the operator's flags (and
/// the testing mode), not yet compiled.
pub struct Prepared {
    source: Source,
    bytes: Cow<'static, [u8]>,
    resolution: Resolution,
    /// The testing mode, when `--chaos` is on; its seed is printed.
    pub chaos: Option<Arc<Chaos>>,
}

/// Reads `source` and resolves its policy from `args` and `flags` (the
/// shared flags' bounds plus any the command adds).
pub fn prepare(
    source: Source,
    args: &InstanceArgs,
    flags: &ReuseFlags,
) -> anyhow::Result<Prepared> {
    if args.prewarm > args.max_instances.get() {
        anyhow::bail!(
            "--prewarm {} keeps more instances than --max-instances {} allows",
            args.prewarm,
            args.max_instances
        );
    }
    let chaos = args
        .chaos
        .chaos
        .map(|p| ChaosConfig::new(Some(p), args.chaos.seed, args.chaos.chaos_respect_hint))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    if chaos.is_some() && args.max_instances.get() < chaos::INSTANCES {
        anyhow::bail!(
            "--chaos keeps {} instances alive; --max-instances must be at least {0}",
            chaos::INSTANCES
        );
    }
    let bytes = component::read(&source)?;
    let hint = crate::hint::effective_hint(&bytes, &source);
    let mut resolution = policy::resolve(policy_choice(args.policy), hint.as_ref(), flags);
    if let Some(chaos) = &chaos {
        eprintln!("chaos seed: {}", chaos.seed);
        resolution = resolution.under_chaos(chaos.respect_hint);
    }
    Ok(Prepared {
        source,
        bytes,
        resolution,
        chaos: chaos.map(|config| Arc::new(Chaos::new(config))),
    })
}

impl Prepared {
    /// What a serial front end (`run`, `call`) adds to the policy: the
    /// pre-warmed instances `args` ask for, and the testing mode.
    pub fn serial_options(&self, args: &InstanceArgs) -> SerialOptions {
        SerialOptions {
            prewarm: args.prewarm,
            chaos: self.chaos.clone(),
        }
    }

    /// Reports the policy, then compiles the component and creates its
    /// instance manager, whose instances see `guest`. With `concurrent`
    /// calls (`serve`), long-running guest code yields to the others.
    pub fn into_manager(
        self,
        args: &InstanceArgs,
        guest: GuestEnvironment,
        concurrent: bool,
    ) -> anyhow::Result<InstanceManager> {
        for note in &self.resolution.notes {
            tracing::warn!("{note}");
        }
        match &self.resolution.policy {
            Policy::Fresh => tracing::info!("policy: a fresh instance per call"),
            Policy::Reuse(bounds) => tracing::info!("policy: reuse ({bounds})"),
        }
        let engine_options = EngineOptions {
            max_memory: args.max_memory,
            interruptible: concurrent || args.timeout.is_some(),
            max_instances: args.max_instances.get(),
            ..EngineOptions::default()
        };
        let (engine, compiled) = component::load(&engine_options, &self.bytes, &self.source)?;
        tracing::debug!(allocator = ?engine.allocator, "engine ready");
        let limits = InstanceLimits {
            max_memory: args.max_memory,
            timeout: args.timeout,
            max_instances: args.max_instances.get(),
        };
        Ok(
            InstanceManager::new(engine, compiled, limits, self.resolution.policy)?
                .with_guest(guest),
        )
    }
}

impl InstanceArgs {
    /// The reuse bounds these flags set; commands add their own.
    pub fn reuse_flags(&self) -> ReuseFlags {
        ReuseFlags {
            max_calls: self.max_calls,
            max_age: self.max_age,
            ..ReuseFlags::default()
        }
    }
}

fn policy_choice(arg: PolicyArg) -> PolicyChoice {
    match arg {
        PolicyArg::Fresh => PolicyChoice::Fresh,
        PolicyArg::Reuse => PolicyChoice::Reuse,
        PolicyArg::Auto => PolicyChoice::Auto,
    }
}

/// A multi-threaded async runtime: instances warm up on one thread while a
/// call runs on another.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
