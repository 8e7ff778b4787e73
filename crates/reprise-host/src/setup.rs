//! From a component and settings to an instance manager: hint → policy →
//! engine → pool, the path every command takes (`serve`, `run`, `call`,
//! `check`), so a flag or a hint means the same whichever runs it.
//!
//! Two steps, so bad input is found before anything is compiled:
//! [`Setup::prepare`] reads the bytes, adopts the hint and resolves the
//! policy (the testing mode included); [`Setup::manager`] reports the
//! policy, builds the engine, compiles and creates the manager. The
//! settings are plain values, independent of any command line.

use crate::policy::adopt::effective_hint;
use crate::policy::chaos::{self, Chaos, ChaosConfig};
use crate::policy::{self, Policy, PolicyChoice, Resolution, ReuseFlags};
use crate::pool::{InstanceLimits, InstanceManager};
use crate::runtime::component::{self, Source};
use crate::runtime::engine::{Allocator, EngineOptions};
use crate::runtime::instance::GuestEnvironment;
use crate::runtime::preinit::{self, InitFunc, PreinitMode, Refusal};
use reprise_hint::ReuseHint;
use std::borrow::Cow;
use std::sync::Arc;

/// What the operator decided, independent of how it was said.
#[derive(Clone, Debug, Default)]
pub struct HostSettings {
    pub policy: PolicyChoice,
    pub reuse: ReuseFlags,
    /// The testing mode, when on.
    pub chaos: Option<ChaosConfig>,
    pub limits: InstanceLimits,
    /// Initialized, never-used instances to keep ready.
    pub prewarm: usize,
    /// Calls overlap (`serve`): long-running guest code must yield to the
    /// others, so the engine checks epochs even without a timeout.
    pub concurrent: bool,
    /// Whether to run init once at load and create instances from the
    /// snapshot (`--preinit`; see `runtime::preinit`).
    pub preinit: PreinitMode,
    /// The preferred instance allocator. The pooling one falls back to
    /// on-demand allocation where it cannot work; the benchmark asks for
    /// each to compare them.
    pub allocator: Allocator,
}

/// Settings that contradict each other.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--prewarm {prewarm} keeps more instances than --max-instances {max} allows")]
    PrewarmAboveMax { prewarm: usize, max: usize },
    #[error("--chaos keeps {needed} instances alive; --max-instances must be at least {needed}")]
    ChaosNeedsInstances { needed: usize },
}

/// A component read and its policy resolved, not yet compiled.
pub struct Setup {
    source: Source,
    bytes: Cow<'static, [u8]>,
    /// The component's effective reuse hint, if it declares a valid one.
    pub hint: Option<ReuseHint>,
    pub resolution: Resolution,
    /// The testing mode's seeded decisions, when it is on.
    pub chaos: Option<Arc<Chaos>>,
    settings: HostSettings,
    /// Whether the last managers created run on a pre-initialization
    /// snapshot.
    preinitialized: std::sync::atomic::AtomicBool,
}

impl Setup {
    /// Checks `settings`, reads `source`, adopts its hint and resolves the
    /// policy.
    pub fn prepare(source: Source, settings: HostSettings) -> anyhow::Result<Self> {
        let max = settings.limits.max_instances;
        if settings.prewarm > max {
            Err(SettingsError::PrewarmAboveMax {
                prewarm: settings.prewarm,
                max,
            })?;
        }
        if settings.chaos.is_some() && max < chaos::INSTANCES {
            Err(SettingsError::ChaosNeedsInstances {
                needed: chaos::INSTANCES,
            })?;
        }
        let bytes = component::read(&source)?;
        let hint = effective_hint(&bytes, &source);
        let mut resolution = policy::resolve(settings.policy, hint.as_ref(), &settings.reuse);
        if let Some(chaos) = &settings.chaos {
            resolution = resolution.under_chaos(chaos.respect_hint, hint.as_ref(), &settings.reuse);
        }
        Ok(Self {
            source,
            bytes,
            hint,
            chaos: settings.chaos.map(|config| Arc::new(Chaos::new(config))),
            resolution,
            settings,
            preinitialized: Default::default(),
        })
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    pub fn settings(&self) -> &HostSettings {
        &self.settings
    }

    /// Reports how the hint was honored and the policy, then compiles the
    /// component and creates its instance manager, whose instances see
    /// `guest`.
    pub fn manager(&self, guest: GuestEnvironment) -> anyhow::Result<InstanceManager> {
        for note in &self.resolution.notes {
            tracing::warn!("{note}");
        }
        match &self.resolution.policy {
            Policy::Fresh => tracing::info!("policy: a fresh instance per call"),
            Policy::Reuse(bounds) => tracing::info!("policy: reuse ({bounds})"),
        }
        let [manager] = self.managers([self.resolution.policy.clone()], guest)?;
        Ok(manager)
    }

    /// Compiles the component once and creates a manager per policy
    /// instead of the resolved one: what `reprise check` does to run the
    /// same component fresh and reused side by side.
    pub fn managers<const N: usize>(
        &self,
        policies: [Policy; N],
        guest: GuestEnvironment,
    ) -> anyhow::Result<[InstanceManager; N]> {
        self.managers_with(policies, guest, self.settings.preinit)
    }

    /// [`Self::managers`] with `preinit` instead of the settings' choice:
    /// `reprise check` runs a snapshot against per-instance init.
    pub fn managers_with<const N: usize>(
        &self,
        policies: [Policy; N],
        guest: GuestEnvironment,
        preinit: PreinitMode,
    ) -> anyhow::Result<[InstanceManager; N]> {
        let limits = &self.settings.limits;
        let (engine, compiled) =
            component::load(&self.engine_options(), &self.bytes, &self.source)?;
        tracing::debug!(allocator = ?engine.allocator, "engine ready");
        let (snapshot, init_failed) = match preinit {
            PreinitMode::Auto => self.preinitialize(&engine, &compiled, &guest),
            PreinitMode::Never => (None, None),
        };
        let preinitialized = snapshot.is_some();
        self.preinitialized
            .store(preinitialized, std::sync::atomic::Ordering::Relaxed);
        let compiled = snapshot.unwrap_or(compiled);
        let mut managers = Vec::with_capacity(N);
        for policy in policies {
            let mut manager =
                InstanceManager::new(engine.clone(), compiled.clone(), limits.clone(), policy)?;
            if preinitialized {
                manager = manager.preinitialized();
            }
            if let Some(message) = &init_failed {
                // Readiness says why from the start, in the guest's words,
                // before any instance tries again.
                manager.init_failed_at_load(message);
            }
            managers.push(manager.with_guest(guest.clone()));
        }
        Ok(managers
            .try_into()
            .unwrap_or_else(|_| unreachable!("one manager per policy")))
    }
}

impl Setup {
    fn engine_options(&self) -> EngineOptions {
        let limits = &self.settings.limits;
        EngineOptions {
            allocator: self.settings.allocator,
            max_memory: limits.max_memory,
            interruptible: self.settings.concurrent || limits.timeout.is_some(),
            max_instances: limits.max_instances,
            ..EngineOptions::default()
        }
    }

    /// Whether the managers last created run on a pre-initialization
    /// snapshot (init ran once, at load).
    pub fn is_preinitialized(&self) -> bool {
        self.preinitialized
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs the component's init once and returns the snapshotted component
    /// (`reprise preinit`), or why it cannot be snapshotted.
    pub fn snapshot(&self, guest: &GuestEnvironment) -> anyhow::Result<preinit::Snapshot> {
        let (engine, compiled) =
            component::load(&self.engine_options(), &self.bytes, &self.source)?;
        let snapshot = preinit::snapshot(
            &engine,
            &compiled,
            &self.bytes,
            guest,
            &self.settings.limits,
        )?;
        // What cannot be served is not worth writing.
        component::compile(&engine.engine, &snapshot.bytes, &self.source)?;
        Ok(snapshot)
    }

    /// The snapshot of `compiled`'s init, compiled on `engine`, when it has
    /// an init function and that init is deterministic; otherwise `None`,
    /// and one log line says why (instances then run init themselves).
    /// When init itself failed, its message comes second.
    fn preinitialize(
        &self,
        engine: &crate::runtime::engine::EngineHandle,
        compiled: &wasmtime::component::Component,
        guest: &GuestEnvironment,
    ) -> (Option<wasmtime::component::Component>, Option<String>) {
        let Some(init) = preinit::init_func(compiled) else {
            return (None, None);
        };
        let fallback = match init {
            InitFunc::Reprise => {
                "every instance runs init itself (reuse and --prewarm hide its cost)"
            }
            InitFunc::Wizer => "instances start without it, as before",
        };
        let snapshot =
            match preinit::snapshot(engine, compiled, &self.bytes, guest, &self.settings.limits) {
                Ok(snapshot) => snapshot,
                Err(Refusal::InitFailed(message)) => {
                    tracing::error!(
                        "not pre-initialized: {init} failed when run at load: {message}; \
                         {fallback}"
                    );
                    return (None, Some(message));
                }
                Err(refusal) => {
                    tracing::warn!("not pre-initialized: {refusal}; {fallback}");
                    return (None, None);
                }
            };
        match component::compile(&engine.engine, &snapshot.bytes, &self.source) {
            Ok(component) => {
                tracing::info!(
                    "pre-initialized: {init} ran once at load in {:.1} ms; instances start from \
                     its snapshot, memory mapped copy-on-write",
                    snapshot.took.as_secs_f64() * 1e3
                );
                (Some(component), None)
            }
            Err(e) => {
                tracing::warn!(
                    "not pre-initialized: the snapshot does not compile: {e}; {fallback}"
                );
                (None, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded(bytes: &'static [u8]) -> Source {
        Source::Embedded {
            name: "test",
            bytes,
        }
    }

    #[test]
    fn contradicting_settings_are_refused_before_reading() {
        let settings = HostSettings {
            prewarm: 5,
            limits: InstanceLimits {
                max_instances: 2,
                ..InstanceLimits::default()
            },
            ..HostSettings::default()
        };
        let error = Setup::prepare(embedded(b"not wasm"), settings)
            .err()
            .unwrap();
        assert!(error.to_string().contains("--prewarm 5"), "{error}");
    }

    #[test]
    fn chaos_over_a_fresh_hint_keeps_the_operators_bounds() {
        let wasm = wat::parse_str(
            r#"(component (core module (@custom "instance-reuse-hint" "v1 reuse max-concurrency=1")))"#,
        )
        .unwrap();
        let settings = HostSettings {
            policy: PolicyChoice::Fresh,
            chaos: Some(ChaosConfig::new(None, Some(1), false).unwrap()),
            ..HostSettings::default()
        };
        let bytes: &'static [u8] = Box::leak(wasm.into_boxed_slice());
        let setup = Setup::prepare(embedded(bytes), settings).unwrap();
        match &setup.resolution.policy {
            Policy::Reuse(bounds) => assert_eq!(bounds.max_concurrency.get(), 1),
            Policy::Fresh => panic!("chaos reuses"),
        }
        assert!(setup.chaos.is_some());
        setup.manager(GuestEnvironment::default()).unwrap();
    }
}
