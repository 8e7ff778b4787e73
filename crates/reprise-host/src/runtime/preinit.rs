//! Pre-initialization: run a component's init once, at load, and create
//! every instance from a snapshot of the result (`docs/initialization.md`).
//!
//! Initialization that only computes (parsing a configuration, building
//! tables) gives the same memory every time, so it can run once in a
//! snapshotting instance: [`wasmtime_wizer`] instruments the component so
//! its globals and memories can be read, Reprise instantiates it and calls
//! the init function, and wizer writes the state back into the component as
//! data segments. The engine maps those copy-on-write (its memory image), so
//! a fresh instance starts initialized for the price of an uninitialized one.
//!
//! Initialization that asks the outside world (a clock, random numbers, a
//! connection) would be frozen by a snapshot: every instance would share one
//! moment, one seed, one dead socket. So the snapshot instance is linked with
//! the usual WASI, except that every import whose result is not fixed for
//! the life of the process traps, naming itself ([`nondeterministic`]). An
//! init that calls one is not snapshotted: [`Refusal::NotDeterministic`]
//! names the import, and the component keeps running init per instance.
//! Environment variables, arguments, `wasi:config` and reads are fixed, and
//! allowed.
//!
//! [`snapshot`] is the whole step; `setup.rs` decides when to take it.

use crate::runtime::engine::{EngineHandle, YIELD_TICKS};
use crate::runtime::init::{INTERFACE, InitExport};
use crate::runtime::instance::{GuestEnvironment, InstanceSlot, InstanceState};
use crate::runtime::limits::InstanceLimits;
use crate::runtime::linker::linker;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Instance, Linker, WasmList};
use wasmtime::{Engine, Store};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

/// Whether to pre-initialize (`--preinit`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PreinitMode {
    /// Snapshot when the component exports an init function and its init
    /// turns out deterministic; otherwise run init per instance.
    #[default]
    Auto,
    /// Always run init per instance.
    Never,
}

/// wizer's own convention for the init function: a top-level
/// `wizer-initialize: func()`.
pub const WIZER_INITIALIZE: &str = "wizer-initialize";

/// Which init function a component exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitFunc {
    /// `reprise:init/init@0.1.x#init`.
    Reprise,
    /// wizer's `wizer-initialize`.
    Wizer,
}

impl std::fmt::Display for InitFunc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitFunc::Reprise => write!(f, "{INTERFACE}#init"),
            InitFunc::Wizer => f.write_str(WIZER_INITIALIZE),
        }
    }
}

/// The component's init function, if it exports one that can be
/// snapshotted (`reprise:init` of the right type, or `wizer-initialize`).
pub fn init_func(component: &Component) -> Option<InitFunc> {
    if matches!(InitExport::find(component), Ok(Some(_))) {
        return Some(InitFunc::Reprise);
    }
    match component.get_export(None, WIZER_INITIALIZE) {
        Some((ComponentItem::ComponentFunc(func), _))
            if func.params().len() == 0 && func.results().len() == 0 =>
        {
            Some(InitFunc::Wizer)
        }
        _ => None,
    }
}

/// A pre-initialized component.
#[derive(Debug)]
pub struct Snapshot {
    /// The snapshotted component: the original with its initialized memories
    /// and globals as data. It still exports `reprise:init` (an instance
    /// export wizer cannot remove), so other hosts see the same interface;
    /// a `wizer-initialize` export stays as well (see [`take`]).
    pub bytes: Vec<u8>,
    /// What ran.
    pub init: InitFunc,
    /// How long instrumenting, running init and snapshotting took.
    pub took: Duration,
}

/// Why a component was not snapshotted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Init called an import whose result changes over the process's life.
    #[error(
        "init called `{import}`, whose result is not fixed for the life of the process: a \
         snapshot would freeze one answer for every instance"
    )]
    NotDeterministic { import: String },
    /// One of wasmtime-wizer's documented limits.
    #[error("wasmtime-wizer cannot snapshot this component: {0}")]
    Unsupported(String),
    /// Init returned an error or trapped: the guest's own words.
    #[error("{0}")]
    InitFailed(String),
    /// Init did not finish in time (`--timeout`).
    #[error("init did not finish within {0:?}")]
    TimedOut(Duration),
    /// The snapshot instance could not be linked or instantiated.
    #[error("cannot create the snapshotting instance: {0}")]
    Link(String),
    /// Nothing to run.
    #[error("the component exports neither {INTERFACE} nor `{WIZER_INITIALIZE}`")]
    NoInit,
}

/// The message a stub of a non-deterministic import traps with.
fn not_deterministic(import: &str) -> String {
    format!("reprise preinit: `{import}` is not deterministic")
}

/// Whether `function` of `interface` (no version) gives an answer that is
/// not fixed for the process's life, or changes the world outside the
/// instance (which a snapshot could not replay).
pub fn nondeterministic(interface: &str, function: &str) -> bool {
    match interface {
        "wasi:clocks/wall-clock" | "wasi:clocks/monotonic-clock" | "wasi:clocks/timezone" => {
            function != "resolution"
        }
        "wasi:clocks/system-clock" => function != "get-resolution",
        "wasi:random/random" | "wasi:random/insecure" | "wasi:random/insecure-seed" => true,
        "wasi:http/outgoing-handler" | "wasi:http/client" | "wasi:http/handler" => true,
        "wasi:cli/stdin" => true,
        "wasi:filesystem/types" => [
            ".write",
            ".write-via-stream",
            ".append-via-stream",
            ".set-size",
            ".set-times",
            ".set-times-at",
            ".create-directory-at",
            ".link-at",
            ".remove-directory-at",
            ".rename-at",
            ".symlink-at",
            ".unlink-file-at",
            ".sync",
            ".sync-data",
        ]
        .iter()
        .any(|suffix| function.ends_with(suffix)),
        "wasi:keyvalue/atomics" => true,
        "wasi:keyvalue/store" | "wasi:keyvalue/batch" => {
            [".set", ".delete", "set-many", "delete-many"]
                .iter()
                .any(|suffix| function.ends_with(suffix))
        }
        _ => interface.starts_with("wasi:sockets/"),
    }
}

/// The name under which Reprise's linker defines the interface a component
/// imports as `name`: wasmtime-wasi implements WASI 0.2 at 0.2.12 and 0.3 at
/// 0.3.0, and links older patch versions to those.
fn linker_name(name: &str) -> String {
    let Some((interface, version)) = name.split_once('@') else {
        return name.to_string();
    };
    let wasi = interface.starts_with("wasi:");
    match version.split('.').collect::<Vec<_>>()[..] {
        ["0", "2", patch] if wasi && !patch.contains('-') => format!("{interface}@0.2.12"),
        ["0", "3", patch] if wasi && !patch.contains('-') => format!("{interface}@0.3.0"),
        _ => name.to_string(),
    }
}

/// Shadows, in `linker`, every non-deterministic function `component`
/// imports with one that records its name in `tripped` and traps.
fn stub_nondeterministic(
    linker: &mut Linker<InstanceState>,
    engine: &Engine,
    component: &Component,
    tripped: &Arc<Mutex<Option<String>>>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    for (name, item) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        let interface = name.split('@').next().unwrap_or(name);
        let stubbed: Vec<String> = instance
            .exports(engine)
            .filter(|(function, item)| {
                matches!(item.ty, ComponentItem::ComponentFunc(_))
                    && nondeterministic(interface, function)
            })
            .map(|(function, _)| function.to_string())
            .collect();
        if stubbed.is_empty() {
            continue;
        }
        let mut defined = linker.instance(&linker_name(name))?;
        for function in stubbed {
            let import = format!("{interface}.{function}");
            let tripped = tripped.clone();
            defined.func_new(&function, move |_, _, _, _| {
                tripped
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| import.clone());
                Err(wasmtime::Error::msg(not_deterministic(&import)))
            })?;
        }
    }
    Ok(())
}

/// Runs `component`'s init once in a snapshotting instance (on a thread of
/// its own, so this may be called from inside an async runtime) and returns
/// the snapshotted component. `compiled` is `bytes` compiled on `engine`;
/// the snapshot instance sees `guest` (its variables and arguments) and
/// `limits` (memory cap, and the timeout bounding init).
pub fn snapshot(
    engine: &EngineHandle,
    compiled: &Component,
    bytes: &[u8],
    guest: &GuestEnvironment,
    limits: &InstanceLimits,
) -> Result<Snapshot, Refusal> {
    let init = init_func(compiled).ok_or(Refusal::NoInit)?;
    let start = Instant::now();
    let outcome = std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Refusal::Link(e.to_string()))?;
            runtime.block_on(take(engine, init, bytes, guest, limits))
        });
        run.join().unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("it panicked");
            Err(Refusal::Unsupported(message.to_string()))
        })
    });
    outcome.map(|bytes| Snapshot {
        bytes,
        init,
        took: start.elapsed(),
    })
}

async fn take(
    engine: &EngineHandle,
    init: InitFunc,
    bytes: &[u8],
    guest: &GuestEnvironment,
    limits: &InstanceLimits,
) -> Result<Vec<u8>, Refusal> {
    let mut wizer = Wizer::new();
    match init {
        // An instance export: wizer removes only function exports.
        InitFunc::Reprise => wizer.init_func(INTERFACE).keep_init_func(true),
        // Kept too: wasmtime-wizer 48 removes the export from the core
        // module while the component's `canon lift` still aliases it, so
        // the snapshot of every wit-bindgen component would not compile
        // (bytecodealliance/wasmtime#13168). Reprise never calls init on
        // instances of a snapshot, and other hosts do not call it at all.
        InitFunc::Wizer => wizer.init_func(WIZER_INITIALIZE).keep_init_func(true),
    };
    let (cx, instrumented) = wizer
        .instrument_component(bytes)
        .map_err(|e| Refusal::Unsupported(format!("{e:#}")))?;
    let instrumented = Component::new(&engine.engine, &instrumented).map_err(|e| {
        Refusal::Unsupported(format!("its instrumented form does not compile: {e:#}"))
    })?;
    let tripped = Arc::new(Mutex::new(None));
    let mut linker = linker(&engine.engine).map_err(|e| Refusal::Link(format!("{e:#}")))?;
    stub_nondeterministic(&mut linker, &engine.engine, &instrumented, &tripped)
        .map_err(|e| Refusal::Link(format!("{e:#}")))?;
    let semaphore = Arc::new(tokio::sync::Semaphore::new(1));
    let slot = InstanceSlot::new(semaphore.try_acquire_owned().expect("one permit"));
    let state = InstanceState::new(0, limits.max_memory, guest, slot)
        .map_err(|e| Refusal::Link(format!("{e:#}")))?;
    let mut store = Store::new(&engine.engine, state);
    store.limiter(|state| &mut state.limits);
    if engine.interruptible {
        store.epoch_deadline_async_yield_and_update(YIELD_TICKS);
    }
    let tripped_import = || tripped.lock().unwrap().clone();
    let run = async {
        let instance = linker
            .instantiate_async(&mut store, &instrumented)
            .await
            .map_err(|e| match tripped_import() {
                Some(import) => Refusal::NotDeterministic { import },
                None => Refusal::InitFailed(format!("the start functions trapped: {e:#}")),
            })?;
        let ran = match init {
            InitFunc::Reprise => {
                let export = InitExport::find(&instrumented)
                    .ok()
                    .flatten()
                    .ok_or(Refusal::NoInit)?;
                export
                    .run(&mut store, &instance)
                    .await
                    .map_err(|e| e.to_string())
            }
            InitFunc::Wizer => {
                let run = async {
                    let func = instance.get_typed_func::<(), ()>(&mut store, WIZER_INITIALIZE)?;
                    func.call_async(&mut store, ()).await
                };
                run.await
                    .map_err(|e| format!("`{WIZER_INITIALIZE}` trapped: {e:#}"))
            }
        };
        if let Some(import) = tripped_import() {
            return Err(Refusal::NotDeterministic { import });
        }
        ran.map_err(Refusal::InitFailed)?;
        Ok(instance)
    };
    let instance = match limits.timeout {
        Some(timeout) => tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| Refusal::TimedOut(timeout))??,
        None => run.await?,
    };
    let mut access = Access {
        store: &mut store,
        instance,
    };
    wizer
        .snapshot_component(&cx, &mut access)
        .await
        .map_err(|e| Refusal::Unsupported(format!("{e:#}")))
}

/// wizer's view of the snapshot instance: the accessor functions its
/// instrumentation exported.
struct Access<'a> {
    store: &'a mut Store<InstanceState>,
    instance: Instance,
}

impl Access<'_> {
    async fn call<R, R2>(
        &mut self,
        instance: &str,
        func: &str,
        use_ret: impl FnOnce(&mut Store<InstanceState>, R) -> R2,
    ) -> R2
    where
        R: wasmtime::component::Lift + Send + Sync + 'static,
    {
        let (_, exported) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .expect("wizer's accessor instance is exported");
        let (_, func) = self
            .instance
            .get_export(&mut *self.store, Some(&exported), func)
            .expect("wizer's accessor is exported");
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, func)
            .expect("wizer's accessor has its type");
        let ret = func
            .call_async(&mut *self.store, ())
            .await
            .expect("wizer's accessors do not trap")
            .0;
        use_ret(&mut *self.store, ret)
    }
}

impl ComponentInstanceState for Access<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        self.call(instance, func, |store, list: WasmList<u8>| {
            contents(list.as_le_slice(&store));
        })
        .await
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, r| r).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, r| r).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, r: f32| r.to_bits()).await
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, r: f64| r.to_bits()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::engine::EngineOptions;

    #[test]
    fn clocks_random_sockets_and_writes_are_not_deterministic() {
        assert!(nondeterministic("wasi:clocks/wall-clock", "now"));
        assert!(!nondeterministic("wasi:clocks/wall-clock", "resolution"));
        assert!(nondeterministic("wasi:random/random", "get-random-u64"));
        assert!(nondeterministic(
            "wasi:sockets/tcp",
            "[method]tcp-socket.start-connect"
        ));
        assert!(nondeterministic("wasi:http/outgoing-handler", "handle"));
        assert!(nondeterministic(
            "wasi:filesystem/types",
            "[method]descriptor.write-via-stream"
        ));
        assert!(!nondeterministic(
            "wasi:filesystem/types",
            "[method]descriptor.read"
        ));
        assert!(!nondeterministic("wasi:cli/environment", "get-environment"));
        assert!(!nondeterministic("wasi:config/store", "get"));
    }

    #[test]
    fn older_wasi_patch_versions_name_the_linkers_definition() {
        assert_eq!(
            linker_name("wasi:clocks/wall-clock@0.2.3"),
            "wasi:clocks/wall-clock@0.2.12"
        );
        assert_eq!(
            linker_name("wasi:http/handler@0.3.0"),
            "wasi:http/handler@0.3.0"
        );
        assert_eq!(
            linker_name("wasi:http/handler@0.3.0-rc-2025-09-16"),
            "wasi:http/handler@0.3.0-rc-2025-09-16"
        );
        assert_eq!(linker_name("my:pkg/x@0.2.1"), "my:pkg/x@0.2.1");
    }

    /// A component whose `reprise:init` stores 42 at address 100 (and, with
    /// `clock`, first reads the wall clock).
    fn component(clock: bool) -> Vec<u8> {
        let (import, call) = match clock {
            true => (
                // Not WASI's type for `now`: the stub takes any.
                r#"(import "wasi:clocks/wall-clock@0.2.0" (instance $clock
                      (export "now" (func (result u64)))))
                   (alias export $clock "now" (func $now))
                   (core func $now (canon lower (func $now)))
                   (core instance $imports (export "now" (func $now)))"#,
                "(drop (call $now))",
            ),
            false => ("(core instance $imports)", ""),
        };
        let import_decl = match clock {
            true => r#"(import "clock" "now" (func $now (result i64)))"#,
            false => "",
        };
        let wat = format!(
            r#"(component
                {import}
                (core module $m
                    {import_decl}
                    (memory (export "memory") 1)
                    (func (export "init") (result i32)
                        {call}
                        (i32.store (i32.const 100) (i32.const 42))
                        i32.const 0)
                    (func (export "read") (result i32) (i32.load (i32.const 100))))
                (core instance $i (instantiate $m (with "clock" (instance $imports))))
                (func $init (result (result (error string)))
                    (canon lift (core func $i "init") (memory $i "memory")))
                (func $read (result s32) (canon lift (core func $i "read")))
                (instance $init (export "init" (func $init)))
                (export "{INTERFACE}" (instance $init))
                (export "read" (func $read)))"#
        );
        wat::parse_str(wat).unwrap()
    }

    fn engine() -> EngineHandle {
        EngineHandle::new(&EngineOptions {
            cache: false,
            ..EngineOptions::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn deterministic_init_is_snapshotted_into_the_component() {
        let engine = engine();
        let bytes = component(false);
        let compiled = Component::new(&engine.engine, &bytes).unwrap();
        let snapshot = snapshot(
            &engine,
            &compiled,
            &bytes,
            &GuestEnvironment::default(),
            &InstanceLimits::default(),
        )
        .unwrap();
        assert_eq!(snapshot.init, InitFunc::Reprise);
        // A new instance of the snapshot, init never called, reads 42.
        let snapped = Component::new(&engine.engine, &snapshot.bytes).unwrap();
        let mut store = Store::new(&engine.engine, ());
        let instance = wasmtime::component::Linker::new(&engine.engine)
            .instantiate_async(&mut store, &snapped)
            .await
            .unwrap();
        let read = instance
            .get_typed_func::<(), (i32,)>(&mut store, "read")
            .unwrap();
        assert_eq!(read.call_async(&mut store, ()).await.unwrap().0, 42);
        assert_eq!(init_func(&snapped), Some(InitFunc::Reprise));
    }

    #[test]
    fn wizers_limits_are_named() {
        let engine = engine();
        let wat = format!(
            r#"(component
                (core module $m
                    (memory (export "memory") 1)
                    (func (export "init") (result i32) i32.const 0))
                (core instance $i (instantiate $m))
                (core instance $again (instantiate $m))
                (func $init (result (result (error string)))
                    (canon lift (core func $i "init") (memory $i "memory")))
                (instance $init (export "init" (func $init)))
                (export "{INTERFACE}" (instance $init)))"#
        );
        let bytes = wat::parse_str(wat).unwrap();
        let compiled = Component::new(&engine.engine, &bytes).unwrap();
        let refusal = snapshot(
            &engine,
            &compiled,
            &bytes,
            &GuestEnvironment::default(),
            &InstanceLimits::default(),
        )
        .unwrap_err();
        assert!(
            refusal
                .to_string()
                .contains("modules may be instantiated at most once"),
            "{refusal}"
        );
    }

    #[test]
    fn init_reading_the_clock_is_refused_naming_the_import() {
        let engine = engine();
        let bytes = component(true);
        let compiled = Component::new(&engine.engine, &bytes).unwrap();
        let refusal = snapshot(
            &engine,
            &compiled,
            &bytes,
            &GuestEnvironment::default(),
            &InstanceLimits::default(),
        )
        .unwrap_err();
        assert!(
            matches!(&refusal, Refusal::NotDeterministic { import } if import == "wasi:clocks/wall-clock.now"),
            "{refusal}"
        );
    }
}
