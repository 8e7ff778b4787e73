//! Serial front ends (`reprise run`, `reprise call`): one export called N
//! times in a row, each call on the current instance or on a new one, as the
//! policy decides.
//!
//! The decision is the same [`Policy::admit`](crate::policy::Policy::admit)
//! the HTTP front end consults, asked before every call; instances come from
//! the shared [`InstanceManager`], so numbering, metrics and retirement
//! reasons mean the same whichever front end ran them. Calls never overlap,
//! so an instance is either serving the one call in flight or idle.
//!
//! Under chaos the same seeded [`Decision`](crate::policy::chaos::Decision)s as over
//! HTTP pick one of two instance slots per call and retire its instance
//! first with probability P, so `reprise call --chaos --seed S` replays the
//! instance history of that seed exactly.


pub mod command;
pub mod invoke;

use crate::policy::chaos::{self, Chaos};
use crate::runtime::failure::CallError;
use crate::runtime::instance::{InstanceId, InstanceState};
use crate::pool::InstanceManager;
use crate::policy::Retirement;
use crate::policy::{Admit, InstanceStats};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tokio::task::JoinHandle;
use wasmtime::component::Instance;
use wasmtime::Store;

/// Finds, on a new instance, the export the front end calls: a `Func`, a
/// `wasi:cli` command. Runs once per instance, so each call skips the lookup.
pub type Bind<E> =
    Arc<dyn Fn(&mut Store<InstanceState>, &Instance) -> wasmtime::Result<E> + Send + Sync>;

/// One live instance and the export bound on it.
struct Live<E> {
    store: Store<InstanceState>,
    export: E,
    created: Instant,
    /// Calls it has accepted.
    served: u64,
}

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

/// Runs calls one after another on policy-chosen instances, keeping
/// `prewarm` initialized, never-used instances ready for when the policy
/// asks for a new one.
pub struct Serial<E> {
    manager: Arc<InstanceManager>,
    bind: Bind<E>,
    /// The instances kept between calls: one, or one per chaos slot.
    current: Vec<Option<Live<E>>>,
    chaos: Option<Arc<Chaos>>,
    warm: VecDeque<Live<E>>,
    /// Instantiations under way in the background to refill `warm`.
    warming: VecDeque<JoinHandle<anyhow::Result<Live<E>>>>,
    prewarm: usize,
}

impl<E: Send + 'static> Serial<E> {
    pub fn new(manager: Arc<InstanceManager>, bind: Bind<E>, options: SerialOptions) -> Self {
        let SerialOptions { prewarm, chaos } = options;
        let slots = if chaos.is_some() { chaos::INSTANCES } else { 1 };
        Self {
            manager,
            bind,
            current: (0..slots).map(|_| None).collect(),
            chaos,
            warm: VecDeque::new(),
            warming: VecDeque::new(),
            prewarm,
        }
    }

    /// Creates the warm instances before the first call, so their start
    /// functions run before anything is timed or printed. Fails with the
    /// instantiation error, which is also recorded on the manager.
    pub async fn warm_up(&mut self) -> anyhow::Result<()> {
        while self.warm.len() < self.prewarm {
            let live = instantiate(&self.manager, &self.bind).await?;
            self.manager.metrics().warm_instances.fetch_add(1, Relaxed);
            self.warm.push_back(live);
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
        let slot = match &self.chaos {
            Some(chaos) => {
                let decision = chaos.next();
                if decision.reinstantiate {
                    self.retire(decision.slot, Retirement::Chaos);
                }
                decision.slot
            }
            None => 0,
        };
        self.admit_current(slot);
        let mut live = match self.current[slot].take() {
            Some(live) => live,
            None => self.next_instance().await?,
        };
        let instance = live.store.data().id;
        let earlier_calls = live.served;
        live.served += 1;
        let metrics = self.manager.metrics().clone();
        metrics.calls.fetch_add(1, Relaxed);
        if earlier_calls > 0 {
            metrics.reused_calls.fetch_add(1, Relaxed);
        }
        self.manager.arm_deadline(&mut live.store);
        let start = Instant::now();
        let outcome = call(&mut live.store, &live.export).await;
        metrics.call_latency.observe(start.elapsed());
        let result = match outcome {
            Ok(value) => {
                self.current[slot] = Some(live);
                Ok(value)
            }
            Err(error) => {
                let failure = CallError::from_wasmtime(error);
                if failure.is_error() {
                    metrics.call_errors.fetch_add(1, Relaxed);
                }
                let reason = failure.retirement().unwrap_or(Retirement::Trap);
                self.manager.instance_retired(instance, reason);
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
    pub async fn finish(mut self) {
        for slot in 0..self.current.len() {
            self.retire(slot, Retirement::Shutdown);
        }
        for live in self.warm.drain(..) {
            self.manager.metrics().warm_instances.fetch_sub(1, Relaxed);
            self.manager
                .instance_retired(live.store.data().id, Retirement::Shutdown);
        }
        for task in self.warming.drain(..) {
            if let Ok(Ok(live)) = task.await {
                self.manager
                    .instance_retired(live.store.data().id, Retirement::Shutdown);
            }
        }
    }

    /// Ends the instance kept in `slot`, if there is one.
    fn retire(&mut self, slot: usize, reason: Retirement) {
        if let Some(live) = self.current[slot].take() {
            self.manager.instance_retired(live.store.data().id, reason);
        }
    }

    /// Asks the policy whether the instance in `slot` takes the next call,
    /// retiring it if not.
    fn admit_current(&mut self, slot: usize) {
        let Some(live) = &self.current[slot] else {
            return;
        };
        let stats = InstanceStats {
            served: live.served,
            in_flight: 0,
            age: live.created.elapsed(),
            memory: live.store.data().memory_bytes().load(Relaxed),
            concurrent: false,
        };
        match self.manager.policy().admit(&stats) {
            // `NotNow` only means "at the concurrency limit", and serial
            // calls never overlap.
            Admit::Yes | Admit::NotNow => {}
            Admit::Retire(reason) => self.retire(slot, reason),
        }
    }

    /// A new instance for the next call: a warm one when there is one (and
    /// a replacement starts warming in the background), else one created
    /// now.
    async fn next_instance(&mut self) -> anyhow::Result<Live<E>> {
        let live = match self.warm.pop_front() {
            Some(live) => {
                self.manager.metrics().warm_instances.fetch_sub(1, Relaxed);
                live
            }
            None => match self.warming.pop_front() {
                Some(task) => task.await??,
                None => instantiate(&self.manager, &self.bind).await?,
            },
        };
        self.collect_warmed();
        while self.warm.len() + self.warming.len() < self.prewarm {
            let manager = self.manager.clone();
            let bind = self.bind.clone();
            self.warming.push_back(tokio::spawn(
                async move { instantiate(&manager, &bind).await },
            ));
        }
        Ok(live)
    }

    /// Moves background instantiations that finished into the warm set.
    /// One that failed is dropped: the manager recorded why, and the next
    /// refill tries again.
    fn collect_warmed(&mut self) {
        while self.warming.front().is_some_and(JoinHandle::is_finished) {
            let task = self.warming.pop_front().expect("checked above");
            if let Some(Ok(live)) = futures::FutureExt::now_or_never(task).and_then(Result::ok) {
                self.manager.metrics().warm_instances.fetch_add(1, Relaxed);
                self.warm.push_back(live);
            }
        }
    }
}

/// Creates an instance through the manager (start functions, then the
/// component's `reprise:init`, as for every front end) and binds the export
/// on it.
async fn instantiate<E>(manager: &InstanceManager, bind: &Bind<E>) -> anyhow::Result<Live<E>> {
    let mut store = manager
        .new_store(manager.slot().await)
        .map_err(|e| anyhow::Error::from(e).context("cannot instantiate the component"))?;
    let export = manager
        .instantiate(&mut store, |store, instance| bind(store, instance))
        .await
        .map_err(|e| anyhow::Error::from(e).context("cannot instantiate the component"))?;
    Ok(Live {
        store,
        export,
        created: Instant::now(),
        served: 0,
    })
}
