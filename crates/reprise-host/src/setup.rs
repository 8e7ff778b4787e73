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
use crate::runtime::component::{self, Source};
use crate::runtime::engine::EngineOptions;
use crate::runtime::instance::GuestEnvironment;
use crate::pool::{InstanceLimits, InstanceManager};
use crate::policy::{self, Policy, PolicyChoice, Resolution, ReuseFlags};
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
        let limits = &self.settings.limits;
        let engine_options = EngineOptions {
            max_memory: limits.max_memory,
            interruptible: self.settings.concurrent || limits.timeout.is_some(),
            max_instances: limits.max_instances,
            ..EngineOptions::default()
        };
        let (engine, compiled) = component::load(&engine_options, &self.bytes, &self.source)?;
        tracing::debug!(allocator = ?engine.allocator, "engine ready");
        let mut managers = Vec::with_capacity(N);
        for policy in policies {
            let manager =
                InstanceManager::new(engine.clone(), compiled.clone(), limits.clone(), policy)?;
            managers.push(manager.with_guest(guest.clone()));
        }
        Ok(managers
            .try_into()
            .unwrap_or_else(|_| unreachable!("one manager per policy")))
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
