//! Explicit initialization: the `reprise:init` interface.
//!
//! Start functions run at instantiation but cannot say why they failed, and
//! most toolchains give user code no way into them. A component may therefore
//! export `reprise:init/init@0.1.x` (`guest/reprise-guest/wit/init.wit`,
//! documented in `docs/initialization.md`), whose `init: func() ->
//! result<_, string>` the host calls once per instance, after the start
//! functions and before the first call. Its error string is the guest's own
//! explanation, which is what an operator needs on `/ready` and in the logs.
//!
//! The export is looked up once per component ([`InitExport::find`]) so that
//! creating an instance, which `fresh` does for every call, costs no string
//! lookups; any front end (HTTP, `run`, `call`) then calls
//! [`InitExport::run`] on each new instance.

use wasmtime::AsContextMut;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, ComponentExportIndex, Instance};

/// The interface, at the version Reprise implements. Export lookup is
/// semver-aware, so a component exporting any `0.1.x` matches.
pub const INTERFACE: &str = "reprise:init/init@0.1.0";

/// The signature `init` must have, in WIT, for messages.
const SIGNATURE: &str = "func() -> result<_, string>";

/// A component's `init` function, located and type-checked once.
#[derive(Clone, Debug)]
pub struct InitExport {
    index: ComponentExportIndex,
}

/// Why a component's `reprise:init` export cannot be used. Reported when the
/// component is loaded: a component that asks for initialization but cannot
/// receive it must not be served uninitialized.
#[derive(Debug, thiserror::Error)]
pub enum InitExportError {
    #[error("the component exports {INTERFACE} but not its function `init`")]
    Missing,
    #[error(
        "the component exports {INTERFACE} with `init` of the wrong type: expected `{SIGNATURE}`"
    )]
    WrongType,
}

/// Why an instance failed to initialize.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// `init` returned `error(message)`: the guest's own reason.
    #[error("the component's init returned an error: {0}")]
    Failed(String),
    /// `init` trapped, or ran past the instantiation deadline. The trap's
    /// own chain (wasm backtrace, trap code) is part of the message rather
    /// than a `source`, because `wasmtime::Error` is not a `std` error and
    /// would lose it there.
    #[error("the component's init trapped: {0:#}")]
    Trapped(wasmtime::Error),
}

impl InitExport {
    /// Finds `component`'s `reprise:init/init@0.1.x#init`. `Ok(None)` when
    /// the component does not export the interface: it initializes in its
    /// start functions or lazily, and needs nothing more.
    pub fn find(component: &Component) -> Result<Option<Self>, InitExportError> {
        let Some(interface) = component.get_export_index(None, INTERFACE) else {
            return Ok(None);
        };
        let Some((item, index)) = component.get_export(Some(&interface), "init") else {
            return Err(InitExportError::Missing);
        };
        match item {
            ComponentItem::ComponentFunc(func) if has_init_signature(&func) => {
                Ok(Some(InitExport { index }))
            }
            _ => Err(InitExportError::WrongType),
        }
    }

    /// Calls `init` on a new `instance`. The caller arms whatever deadline
    /// should bound it; a trap, including an epoch interrupt, comes back as
    /// [`InitError::Trapped`] and leaves the instance unusable.
    pub async fn run<T: Send + DeniedNetwork + 'static>(
        &self,
        mut store: impl AsContextMut<Data = T>,
        instance: &Instance,
    ) -> Result<(), InitError> {
        let init = instance
            .get_typed_func::<(), (Result<(), String>,)>(&mut store, &self.index)
            .map_err(InitError::Trapped)?;
        match init.call_async(&mut store, ()).await {
            Ok((Ok(()),)) => Ok(()),
            // A guest that could not reach its database says so in its own
            // words, which cannot name the flag; the host adds it.
            Ok((Err(message),)) => Err(InitError::Failed(
                match store.as_context_mut().data().denied_network() {
                    Some(denied) => format!("{message} ({denied})"),
                    None => message,
                },
            )),
            Err(trap) => Err(InitError::Trapped(trap)),
        }
    }
}

/// What a store's data can tell about network access its instance was
/// denied (`--allow-net`), for the message of a failing `init`.
pub trait DeniedNetwork {
    fn denied_network(&self) -> Option<String> {
        None
    }
}

impl DeniedNetwork for () {}

impl DeniedNetwork for crate::runtime::instance::InstanceState {
    fn denied_network(&self) -> Option<String> {
        self.net_denials.explanation()
    }
}

/// Whether `func` is `func() -> result<_, string>`.
fn has_init_signature(func: &ComponentFunc) -> bool {
    let mut results = func.results();
    let result = match (results.next(), results.next()) {
        (Some(Type::Result(result)), None) => result,
        _ => return false,
    };
    func.params().len() == 0 && result.ok().is_none() && matches!(result.err(), Some(Type::String))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use crate::pool::{InstanceLimits, InstanceManager};
    use crate::runtime::engine::{Allocator, EngineHandle, EngineOptions};
    use std::time::Duration;
    use wasmtime::component::Linker;
    use wasmtime::{Engine, Store};

    /// Where `init` finds the `result<_, string>` it returns: a
    /// discriminant, then (for `error`) the message's address and length.
    /// Address 0 holds zeros, the `ok` case.
    const OK: &str = "i32.const 0";
    const ERROR: &str = "i32.const 16";

    /// A component exporting `interface`, whose `init` runs `body`.
    fn component(engine: &Engine, interface: &str, body: &str) -> Component {
        let wat = format!(
            r#"(component
                (core module $m
                    (memory (export "memory") 1)
                    ;; at 16: error("database unreachable")
                    (data (i32.const 16) "\01\00\00\00\20\00\00\00\14\00\00\00")
                    (data (i32.const 32) "database unreachable")
                    (func (export "init") (result i32) {body}))
                (core instance $i (instantiate $m))
                (func $init (result (result (error string)))
                    (canon lift (core func $i "init") (memory $i "memory")))
                (instance $init (export "init" (func $init)))
                (export "{interface}" (instance $init)))"#
        );
        Component::new(engine, wat).unwrap()
    }

    async fn run(component: &Component) -> Result<(), InitError> {
        let init = InitExport::find(component)
            .unwrap()
            .expect("init is exported");
        let mut store = Store::new(component.engine(), ());
        let instance = Linker::new(component.engine())
            .instantiate_async(&mut store, component)
            .await
            .unwrap();
        init.run(&mut store, &instance).await
    }

    #[tokio::test]
    async fn init_returning_ok_succeeds() {
        let engine = Engine::default();
        let result = run(&component(&engine, INTERFACE, OK)).await;
        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn init_returning_an_error_carries_the_guest_message() {
        let engine = Engine::default();
        let result = run(&component(&engine, INTERFACE, ERROR)).await;
        assert!(
            matches!(&result, Err(InitError::Failed(m)) if m == "database unreachable"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_trapping_init_is_a_failure() {
        let engine = Engine::default();
        let result = run(&component(&engine, INTERFACE, "unreachable")).await;
        assert!(matches!(result, Err(InitError::Trapped(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_spinning_init_is_stopped_by_the_instantiation_deadline() {
        let engine = EngineHandle::new(&EngineOptions {
            allocator: Allocator::OnDemand,
            interruptible: true,
            cache: false,
            ..EngineOptions::default()
        })
        .unwrap();
        let component = component(&engine.engine, INTERFACE, "(loop (br 0)) unreachable");
        let limits = InstanceLimits {
            timeout: Some(Duration::from_millis(50)),
            ..InstanceLimits::default()
        };
        let manager = InstanceManager::new(engine, component, limits, Policy::Fresh).unwrap();
        let mut store = manager.new_store(manager.slot().await).unwrap();
        let error = manager
            .instantiate(&mut store, |_, _| Ok(()))
            .await
            .unwrap_err();
        assert!(
            matches!(error.downcast_ref(), Some(InitError::Trapped(_))),
            "{error:?}"
        );
        assert!(!manager.is_ready());
        let failure = manager.last_init_failure().unwrap();
        assert!(failure.contains("interrupt"), "{failure}");
    }

    #[test]
    fn any_0_1_patch_release_is_found() {
        let engine = Engine::default();
        let component = component(&engine, "reprise:init/init@0.1.7", OK);
        assert!(InitExport::find(&component).unwrap().is_some());
    }

    #[test]
    fn another_major_version_is_not_ours() {
        let engine = Engine::default();
        let component = component(&engine, "reprise:init/init@1.0.0", OK);
        assert!(InitExport::find(&component).unwrap().is_none());
    }

    #[test]
    fn components_without_the_interface_have_no_init() {
        let engine = Engine::default();
        let component = Component::new(&engine, "(component)").unwrap();
        assert!(InitExport::find(&component).unwrap().is_none());
    }

    #[test]
    fn init_of_the_wrong_type_is_rejected() {
        let engine = Engine::default();
        let wat = format!(
            r#"(component
                (core module $m (func (export "init") (result i32) i32.const 0))
                (core instance $i (instantiate $m))
                (func $init (result u32) (canon lift (core func $i "init")))
                (instance $init (export "init" (func $init)))
                (export "{INTERFACE}" (instance $init)))"#
        );
        let component = Component::new(&engine, wat).unwrap();
        assert!(matches!(
            InitExport::find(&component),
            Err(InitExportError::WrongType)
        ));
    }
}
