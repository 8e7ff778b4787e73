//! Guest-side support for Reprise: declare how a component wants its
//! instances to be reused, and build per-instance state once, in Rust source.
//!
//! # Per-instance state
//!
//! Implement [`State`] for what an instance should build once (a client, a parsed
//! configuration), register it with [`export_state!`], and reach it from any export with
//! [`with_state`]. The macro exports the `reprise:init/init` interface (`wit/init.wit`), so a
//! host that knows it builds the state before the first call, during pre-warming when enabled;
//! on other hosts the first call builds it. See [`State`] for an example.
//!
//! # The instance reuse hint
//!
//! [`reuse_hint!`] embeds a custom section named `instance-reuse-hint` in the core module.
//! `wasm32-wasip2` keeps core-module custom sections inside the component, where a host (Reprise,
//! `reprise hint show`) finds it. The payload is one line of UTF-8 text in canonical form:
//!
//! | declaration                                                  | payload                                  |
//! |--------------------------------------------------------------|------------------------------------------|
//! | `reuse_hint!(reuse);`                                        | `v1 reuse`                               |
//! | `reuse_hint!(reuse, max_calls = 1000);`                      | `v1 reuse max-calls=1000`                |
//! | `reuse_hint!(reuse, max_concurrency = 8);`                   | `v1 reuse max-concurrency=8`             |
//! | `reuse_hint!(reuse, max_calls = 100, max_concurrency = 8);`  | `v1 reuse max-calls=100 max-concurrency=8` |
//! | `reuse_hint!(fresh);`                                        | `v1 fresh`                               |
//!
//! - `reuse`: the component is designed to be reused; its initialization is worth amortizing.
//!   `max_calls` bounds the calls one instance serves, `max_concurrency` the concurrent calls one
//!   instance accepts (async exports). A host clamps its own limits by these and never exceeds them.
//! - `fresh`: each call should get a new instance (e.g. code that breaks when called twice).
//!
//! The hint is advisory: a host may ignore it. Declare it once per component (a second
//! declaration in the same module does not compile; elsewhere, the linker would merge both into
//! one malformed section). The section survives `strip` settings (wasm-ld strips debug info
//! and names, not other custom sections); post-processing tools that drop unknown custom
//! sections would lose it.
//!
//! Invalid declarations do not compile:
//!
//! ```compile_fail
//! reprise_guest::reuse_hint!(sometimes); // unknown mode
//! ```
//! ```compile_fail
//! reprise_guest::reuse_hint!(fresh, max_calls = 10); // keys are only allowed with `reuse`
//! ```
//! ```compile_fail
//! reprise_guest::reuse_hint!(reuse, max_instances = 10); // unknown key
//! ```
//! ```compile_fail
//! reprise_guest::reuse_hint!(reuse, max_calls = 0); // values are at least 1
//! ```
//! ```compile_fail
//! reprise_guest::reuse_hint!(reuse, max_calls = 10, max_calls = 20); // duplicate key
//! ```
//! ```compile_fail
//! reprise_guest::reuse_hint!(reuse);
//! reprise_guest::reuse_hint!(fresh); // declared twice
//! ```

#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod state;

pub use state::{ExportedState, Slot, State, with_state};

/// Declares this component's instance reuse hint (see the [crate docs](crate)).
///
/// ```
/// reprise_guest::reuse_hint!(reuse, max_calls = 100, max_concurrency = 8);
/// ```
///
/// Keys may be given in any order and values may be any constant integer expression (`max_calls`
/// up to `u64::MAX`, `max_concurrency` up to `u32::MAX`, as the format allows); the section always
/// holds the canonical form (`max-calls` before `max-concurrency`), written by `reprise-hint`'s
/// encoder, the one every Reprise tool uses.
#[macro_export]
macro_rules! reuse_hint {
    (fresh $(,)?) => {
        $crate::__emit_hint!($crate::__private::ReuseHint::fresh());
    };
    (fresh, $($keys:tt)*) => {
        ::core::compile_error!("reuse_hint!: keys are only allowed with `reuse`");
    };
    (reuse $(, $key:ident = $value:expr)* $(,)?) => {
        $crate::__emit_hint!(
            $crate::__private::ReuseHint::reuse() $(.set($crate::__hint_key!($key), $value))*
        );
    };
    ($($other:tt)*) => {
        ::core::compile_error!(::core::concat!(
            "reuse_hint!: expected `fresh` or `reuse[, max_calls = N][, max_concurrency = N]`, got `",
            ::core::stringify!($($other)*),
            "`"
        ));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __hint_key {
    (max_calls) => {
        $crate::__private::Key::MaxCalls
    };
    (max_concurrency) => {
        $crate::__private::Key::MaxConcurrency
    };
    ($other:ident) => {
        ::core::compile_error!(::core::concat!(
            "reuse_hint!: unknown key `",
            ::core::stringify!($other),
            "`; expected `max_calls` or `max_concurrency`"
        ))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __emit_hint {
    ($hint:expr) => {
        // Named items, so that a second declaration in the same module fails to compile (two
        // sections would be concatenated by the linker into one malformed payload).
        const __REPRISE_REUSE_HINT: $crate::__private::Canonical = $hint.encode();
        // Only wasm names sections freely (Mach-O wants `segment,section`), so the macro stays
        // usable in host builds of a guest crate (tests, docs).
        #[cfg_attr(target_family = "wasm", unsafe(link_section = "instance-reuse-hint"))]
        #[used]
        static __REPRISE_INSTANCE_REUSE_HINT: [u8; __REPRISE_REUSE_HINT.len()] =
            __REPRISE_REUSE_HINT.to_array();
    };
}

/// What the macros expand to: compile-time construction of the hint payload, and the
/// `reprise:init` export. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::state::{InitExport, bindings};
    pub use reprise_hint::Canonical;

    pub enum Key {
        MaxCalls,
        MaxConcurrency,
    }

    /// The declaration as the macro collects it, key by key; encoded by
    /// `reprise-hint`'s one payload encoder.
    pub struct ReuseHint {
        reuse: bool,
        max_calls: Option<u64>,
        max_concurrency: Option<u32>,
    }

    impl ReuseHint {
        pub const fn fresh() -> Self {
            ReuseHint {
                reuse: false,
                max_calls: None,
                max_concurrency: None,
            }
        }

        pub const fn reuse() -> Self {
            ReuseHint {
                reuse: true,
                max_calls: None,
                max_concurrency: None,
            }
        }

        pub const fn set(mut self, key: Key, value: u64) -> Self {
            assert!(value >= 1, "reuse_hint!: values must be at least 1");
            let duplicate = match key {
                Key::MaxCalls => self.max_calls.replace(value).is_some(),
                Key::MaxConcurrency => {
                    assert!(
                        value <= u32::MAX as u64,
                        "reuse_hint!: max_concurrency is at most 4294967295"
                    );
                    self.max_concurrency.replace(value as u32).is_some()
                }
            };
            assert!(
                !duplicate,
                "reuse_hint!: each key may be given at most once"
            );
            self
        }

        pub const fn encode(&self) -> reprise_hint::Canonical {
            reprise_hint::Canonical::new(self.reuse, self.max_calls, self.max_concurrency)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::{Key, ReuseHint};

        fn text(hint: ReuseHint) -> std::string::String {
            std::string::String::from(hint.encode().as_str())
        }

        #[test]
        fn payloads_are_canonical() {
            assert_eq!(text(ReuseHint::fresh()), "v1 fresh");
            assert_eq!(text(ReuseHint::reuse()), "v1 reuse");
            assert_eq!(
                text(ReuseHint::reuse().set(Key::MaxCalls, 1000)),
                "v1 reuse max-calls=1000"
            );
            assert_eq!(
                text(
                    ReuseHint::reuse()
                        .set(Key::MaxConcurrency, 8)
                        .set(Key::MaxCalls, 100)
                ),
                "v1 reuse max-calls=100 max-concurrency=8"
            );
            // The spec allows any u64 for max-calls.
            assert_eq!(
                text(ReuseHint::reuse().set(Key::MaxCalls, 10_000_000_000)),
                "v1 reuse max-calls=10000000000"
            );
        }
    }
}
