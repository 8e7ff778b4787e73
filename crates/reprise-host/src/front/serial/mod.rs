//! Serial front ends (`reprise run`, `reprise call`, and `reprise check`'s
//! function runs): one export called N times in a row, each call on an
//! instance leased from the [`Pool`], which parks it for the next call or
//! retires it as the policy decides. Calls never overlap, so an instance is
//! either serving the one call in flight or idle.
//!
//! Under chaos the same seeded [`Decision`](crate::policy::chaos::Decision)s
//! as over HTTP pick one of two pools ("slots") per call and retire its used
//! instance first with probability P, so `reprise call --chaos --seed S`
//! replays the instance history of that seed exactly.

pub mod command;
pub mod invoke;

use crate::policy::Retirement;
use crate::policy::chaos::{self, Chaos};
use crate::pool::{Bind, InstanceManager, Pool};
use crate::runtime::failure::CallError;
use crate::runtime::instance::{InstanceId, InstanceState};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::Store;

/// Which instance served a call, and how the call ended. A failed call's
/// instance has been retired: after a trap (or a guest `exit`) a component
/// instance must not be entered again.
pub struct Served<R> {
    pub instance: InstanceId,
    /// Calls that instance had served before this one (0: a new instance).
    pub earlier_calls: u64,
    pub result: Result<R, CallError>,
}

/// What a serial front end adds to the policy's choice of instances.
#[derive(Clone, Debug, Default)]
pub struct SerialOptions {
    /// Initialized, never-used instances kept ready.
    pub prewarm: usize,
    /// The testing mode, when on.
    pub chaos: Option<Arc<Chaos>>,
}

/// Runs calls one after another on instances leased from a pool (one per
/// chaos slot under the testing mode).
pub struct Serial<E> {
    slots: Vec<Pool<E>>,
    chaos: Option<Arc<Chaos>>,
}

impl<E: Send + 'static> Serial<E> {
    pub fn new(manager: Arc<InstanceManager>, bind: Bind<E>, options: SerialOptions) -> Self {
        let SerialOptions { prewarm, chaos } = options;
        let slots = if chaos.is_some() { chaos::INSTANCES } else { 1 };
        let policy = manager.policy().clone();
        Self {
            slots: (0..slots)
                .map(|_| {
                    Pool::new(
                        manager.clone(),
                        bind.clone(),
                        policy.clone(),
                        prewarm,
                        false,
                    )
                })
                .collect(),
            chaos,
        }
    }

    /// Creates the warm instances before the first call, so their start
    /// functions run before anything is timed or printed. Fails with the
    /// instantiation error, which is also recorded on the manager.
    pub async fn warm_up(&mut self) -> anyhow::Result<()> {
        for pool in &self.slots {
            pool.fill().await.map_err(instantiation)?;
        }
        Ok(())
    }

    /// Makes one call with `call` on the instance the policy picks.
    ///
    /// `Err` means no instance could be created; a failed call is
    /// [`Served::result`].
    pub async fn call<R>(
        &mut self,
        call: impl AsyncFnOnce(&mut Store<InstanceState>, &E) -> wasmtime::Result<R>,
    ) -> anyhow::Result<Served<R>> {
        let pool = match &self.chaos {
            Some(chaos) => {
                let decision = chaos.next();
                let pool = &self.slots[decision.slot];
                if decision.reinstantiate {
                    pool.retire_one_used(decision.victim, Retirement::Chaos);
                }
                pool
            }
            None => &self.slots[0],
        };
        let mut pooled = pool.lease().await.map_err(instantiation)?;
        let instance = pooled.lifecycle.id();
        let earlier_calls = pooled.lifecycle.accepted() - 1;
        let start = Instant::now();
        let outcome = call(&mut pooled.store, &pooled.export).await;
        let latency = start.elapsed();
        let result = match outcome {
            Ok(value) => {
                pool.call_ended(Some(latency), false);
                pool.give_back(pooled, None);
                Ok(value)
            }
            Err(error) => {
                let failure = CallError::from_wasmtime(error);
                pool.call_ended(Some(latency), failure.is_error());
                pool.give_back(pooled, Some(&failure));
                Err(failure)
            }
        };
        Ok(Served {
            instance,
            earlier_calls,
            result,
        })
    }

    /// Retires every instance: the front end is done.
    pub async fn finish(self) {
        for pool in &self.slots {
            pool.close();
        }
    }
}

/// The error of an instance that could not be created.
fn instantiation(error: wasmtime::Error) -> anyhow::Error {
    anyhow::Error::from(error).context("cannot instantiate the component")
}
