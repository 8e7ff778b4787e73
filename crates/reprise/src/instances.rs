//! The instance flags every command that runs a component shares (`serve`,
//! `run`, `call`), validated into the host library's [`HostSettings`]; the
//! library's [`Setup`] does the rest (hint, policy, engine, manager), so a
//! flag means the same whichever command is given it.

use crate::cli::{InstanceArgs, PolicyArg};
use crate::units::CallTimeout;
use reprise_host::front::serial::SerialOptions;
use reprise_host::policy::chaos::ChaosConfig;
use reprise_host::policy::{PolicyChoice, ReuseFlags};
use reprise_host::pool::InstanceLimits;
use reprise_host::runtime::component::Source;
use reprise_host::runtime::engine::Allocator;
use reprise_host::setup::{HostSettings, Setup};
use std::time::Duration;

/// The per-call time limit of `serve` when `--timeout` is not given: long
/// enough for any request that is not stuck, short enough that a stuck one
/// (a guest in a loop, a client that went away under p3) gives its instance
/// and CPU back.
pub const DEFAULT_SERVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads `source` and resolves its policy from `args` and `flags` (the
/// shared flags' bounds plus any the command adds); with chaos on, prints
/// its seed, which scripts read.
pub fn prepare(
    source: Source,
    args: &InstanceArgs,
    flags: ReuseFlags,
    concurrent: bool,
) -> anyhow::Result<Setup> {
    let chaos = args
        .chaos
        .chaos
        .map(|p| ChaosConfig::new(Some(p), args.chaos.seed, args.chaos.chaos_respect_hint))
        .transpose()?;
    let settings = HostSettings {
        policy: policy_choice(args.policy),
        reuse: flags,
        chaos,
        limits: InstanceLimits {
            max_memory: args.max_memory,
            timeout: match args.timeout {
                Some(CallTimeout(limit)) => limit,
                // A server's calls are bounded unless told otherwise; a
                // command may run as long as it likes.
                None if concurrent => Some(DEFAULT_SERVE_TIMEOUT),
                None => None,
            },
            max_instances: args.max_instances.get(),
        },
        prewarm: args.prewarm,
        concurrent,
        preinit: args.preinit.mode(),
        // No flag: pooling falls back to on-demand allocation by itself.
        allocator: Allocator::default(),
    };
    let setup = Setup::prepare(source, settings)?;
    if let Some(chaos) = &setup.chaos {
        eprintln!("chaos seed: {}", chaos.config().seed);
    }
    Ok(setup)
}

/// What a serial front end (`run`, `call`) adds to the policy: the
/// pre-warmed instances asked for, and the testing mode.
pub fn serial_options(setup: &Setup) -> SerialOptions {
    SerialOptions {
        prewarm: setup.settings().prewarm,
        chaos: setup.chaos.clone(),
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
