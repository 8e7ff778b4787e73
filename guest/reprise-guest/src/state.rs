//! Per-instance state, built once by the component's `reprise:init` export.
//!
//! See [`State`] for the shape and [`export_state!`](crate::export_state) for the wiring.

use alloc::string::String;
use core::cell::RefCell;
use core::marker::PhantomData;

/// State a component builds once per instance and lends to every call that instance serves:
/// a database client, a parsed configuration, a compiled template set.
///
/// Register the type with [`export_state!`](crate::export_state), which exports the
/// `reprise:init/init` interface; reach the state from any export with [`with_state`].
///
/// **When `init` runs.** A host that knows `reprise:init` (Reprise does) calls it once per
/// instance, after the start functions and before the first call; with pre-warming that is before
/// any traffic, so the first request does not pay for it. A host that does not know the interface
/// never calls it: then the first [`with_state`] builds the state, during that first call. Either
/// way `init` runs at most once per instance after it succeeds.
///
/// **When `init` fails.** Return `Err` with a message an operator can act on. Called by the host,
/// the instance is discarded and the message is logged and shown on Reprise's `/ready`. Called
/// lazily by [`with_state`], it panics with the message, which traps the call (an HTTP host
/// answers 500).
///
/// ```
/// use reprise_guest::{State, with_state};
///
/// struct Greeter {
///     greeting: String,
///     served: u64,
/// }
///
/// impl State for Greeter {
///     fn init() -> Result<Self, String> {
///         // Expensive, fallible setup goes here: it runs once per instance.
///         let greeting = "hello".to_string();
///         Ok(Greeter { greeting, served: 0 })
///     }
/// }
///
/// reprise_guest::export_state!(Greeter);
///
/// // In an export, e.g. a wasi:http handler:
/// let body = with_state(|greeter: &mut Greeter| {
///     greeter.served += 1;
///     format!("{} #{}\n", greeter.greeting, greeter.served)
/// });
/// assert_eq!(body, "hello #1\n");
/// ```
pub trait State: Sized + 'static {
    /// Builds the state for this instance. Runs once per instance after it succeeds; a failure
    /// leaves nothing behind, so a later [`with_state`] tries again.
    fn init() -> Result<Self, String>;
}

/// Where [`export_state!`](crate::export_state) keeps a [`State`]: one slot per instance, empty
/// until `init` succeeds.
pub type Slot<S> = RefCell<Option<S>>;

/// A [`State`] registered with [`export_state!`](crate::export_state), which implements this
/// trait; there is no reason to implement it by hand.
///
/// It exists because a generic function cannot own a `static`: the macro declares the slot in
/// the component's crate, where the concrete type is known, and this trait leads [`with_state`]
/// to it.
pub trait ExportedState: State {
    /// Runs `f` on this instance's slot.
    fn with_slot<R>(f: impl FnOnce(&Slot<Self>) -> R) -> R;
}

/// Runs `f` with this instance's state, building it first if the host did not call `init`.
///
/// The closure is synchronous on purpose: the borrow cannot be held across an `await`, so
/// concurrent calls on one instance (wasi:http p3) never see the state mid-update.
///
/// # Panics
///
/// Panics (trapping the call) when the state has to be built here and [`State::init`] fails,
/// with `init`'s message; and when called again from inside `f` or from `State::init`, since
/// the state is then already borrowed.
pub fn with_state<S: ExportedState, R>(f: impl FnOnce(&mut S) -> R) -> R {
    S::with_slot(|slot| {
        let mut slot = slot.try_borrow_mut().unwrap_or_else(|_| {
            panic!(
                "reprise_guest::with_state::<{}>: the state is already borrowed (with_state was \
                 called from inside with_state or State::init)",
                core::any::type_name::<S>()
            )
        });
        let state = slot.get_or_insert_with(|| {
            S::init().unwrap_or_else(|message| {
                panic!("{}::init failed: {message}", core::any::type_name::<S>())
            })
        });
        f(state)
    })
}

/// The body of the `reprise:init/init` export: builds the state unless it already exists, so a
/// host calling `init` twice costs nothing and loses nothing.
fn init<S: ExportedState>() -> Result<(), String> {
    S::with_slot(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(S::init()?);
        }
        Ok(())
    })
}

/// The type [`export_state!`](crate::export_state) exports as `reprise:init/init` for `S`.
#[doc(hidden)]
pub struct InitExport<S>(PhantomData<S>);

impl<S: ExportedState> bindings::exports::reprise::init::init::Guest for InitExport<S> {
    fn init() -> Result<(), String> {
        init::<S>()
    }
}

/// Bindings for `wit/init.wit`. The export macro is public so that [`export_state!`] can emit
/// the export (and the component-type section describing it) in the component's own crate.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "reprise:init/initializable",
        pub_export_macro: true,
        export_macro_name: "export",
    });
}

/// Registers `$state` (a [`State`]) as this component's per-instance state and exports
/// `reprise:init/init@0.1.0`, whose `init` builds it.
///
/// Use it once per component; the state's slot lives in the component's crate (a
/// `thread_local!`, so the crate needs `std`).
///
/// See [`State`] for an example.
#[macro_export]
macro_rules! export_state {
    ($state:ty) => {
        const _: () = {
            ::std::thread_local! {
                static SLOT: $crate::Slot<$state> = const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            impl $crate::ExportedState for $state {
                fn with_slot<R>(f: impl FnOnce(&$crate::Slot<Self>) -> R) -> R {
                    SLOT.with(f)
                }
            }

            // The export macro takes a plain identifier.
            type StateInit = $crate::__private::InitExport<$state>;
            $crate::__private::bindings::export!(
                StateInit with_types_in $crate::__private::bindings
            );
        };
    };
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::{State, init, with_state};
    use alloc::string::{String, ToString};
    use std::cell::Cell;

    std::thread_local! {
        static INIT_CALLS: Cell<u32> = const { Cell::new(0) };
        static FAIL: Cell<bool> = const { Cell::new(false) };
    }

    struct Counter {
        served: u32,
    }

    impl State for Counter {
        fn init() -> Result<Self, String> {
            INIT_CALLS.set(INIT_CALLS.get() + 1);
            if FAIL.get() {
                return Err("database unreachable".to_string());
            }
            Ok(Counter { served: 0 })
        }
    }

    crate::export_state!(Counter);

    fn serve() -> u32 {
        with_state(|counter: &mut Counter| {
            counter.served += 1;
            counter.served
        })
    }

    // Each test runs on its own thread, so each starts with an empty slot: a fresh instance.

    #[test]
    fn init_builds_the_state_once_and_calls_reuse_it() {
        assert_eq!(init::<Counter>(), Ok(()));
        assert_eq!(init::<Counter>(), Ok(()), "a second init keeps the state");
        assert_eq!((serve(), serve()), (1, 2));
        assert_eq!(INIT_CALLS.get(), 1);
    }

    #[test]
    fn without_init_the_first_call_builds_the_state() {
        assert_eq!((serve(), serve()), (1, 2));
        assert_eq!(INIT_CALLS.get(), 1);
    }

    #[test]
    fn a_failed_init_reports_the_message_and_leaves_no_state() {
        FAIL.set(true);
        assert_eq!(init::<Counter>(), Err("database unreachable".to_string()));
        FAIL.set(false);
        assert_eq!(serve(), 1, "the next use initializes again");
        assert_eq!(INIT_CALLS.get(), 2);
    }

    #[test]
    #[should_panic(expected = "Counter::init failed: database unreachable")]
    fn a_failed_lazy_init_panics_with_the_message() {
        FAIL.set(true);
        serve();
    }

    #[test]
    #[should_panic(expected = "already borrowed")]
    fn nested_use_panics_instead_of_aliasing() {
        with_state(|_: &mut Counter| serve());
    }
}
