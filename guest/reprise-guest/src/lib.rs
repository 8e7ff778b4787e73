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
/// Keys may be given in any order and values may be any constant `u32` expression; the section
/// always holds the canonical form (`max-calls` before `max-concurrency`).
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
        const __REPRISE_REUSE_HINT: $crate::__private::ReuseHint = $hint;
        // Only wasm names sections freely (Mach-O wants `segment,section`), so the macro stays
        // usable in host builds of a guest crate (tests, docs).
        #[cfg_attr(target_family = "wasm", unsafe(link_section = "instance-reuse-hint"))]
        #[used]
        static __REPRISE_INSTANCE_REUSE_HINT: [u8; __REPRISE_REUSE_HINT.encoded_len()] =
            __REPRISE_REUSE_HINT.encode();
    };
}

/// What the macros expand to: compile-time construction of the hint payload, and the
/// `reprise:init` export. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::state::{InitExport, bindings};

    /// Longer than any payload: `v1 reuse max-calls=4294967295 max-concurrency=4294967295`.
    const MAX_LEN: usize = 64;

    pub enum Key {
        MaxCalls,
        MaxConcurrency,
    }

    pub struct ReuseHint {
        reuse: bool,
        max_calls: Option<u32>,
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

        pub const fn set(mut self, key: Key, value: u32) -> Self {
            assert!(value >= 1, "reuse_hint!: values must be at least 1");
            let slot = match key {
                Key::MaxCalls => &mut self.max_calls,
                Key::MaxConcurrency => &mut self.max_concurrency,
            };
            assert!(
                slot.is_none(),
                "reuse_hint!: each key may be given at most once"
            );
            *slot = Some(value);
            self
        }

        pub const fn encoded_len(&self) -> usize {
            self.write().1
        }

        pub const fn encode<const N: usize>(&self) -> [u8; N] {
            let (buf, len) = self.write();
            assert!(len == N);
            let mut out = [0; N];
            let mut i = 0;
            while i < N {
                out[i] = buf[i];
                i += 1;
            }
            out
        }

        const fn write(&self) -> ([u8; MAX_LEN], usize) {
            let mut buf = [0; MAX_LEN];
            let mut len = push(
                &mut buf,
                0,
                if self.reuse { "v1 reuse" } else { "v1 fresh" },
            );
            if let Some(n) = self.max_calls {
                len = push(&mut buf, len, " max-calls=");
                len = push_decimal(&mut buf, len, n);
            }
            if let Some(n) = self.max_concurrency {
                len = push(&mut buf, len, " max-concurrency=");
                len = push_decimal(&mut buf, len, n);
            }
            (buf, len)
        }
    }

    const fn push(buf: &mut [u8; MAX_LEN], mut len: usize, s: &str) -> usize {
        let s = s.as_bytes();
        let mut i = 0;
        while i < s.len() {
            buf[len] = s[i];
            len += 1;
            i += 1;
        }
        len
    }

    const fn push_decimal(buf: &mut [u8; MAX_LEN], len: usize, n: u32) -> usize {
        let mut digits = 1;
        let mut rest = n / 10;
        while rest > 0 {
            digits += 1;
            rest /= 10;
        }
        let mut rest = n;
        let mut i = digits;
        while i > 0 {
            i -= 1;
            buf[len + i] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        len + digits
    }

    #[cfg(test)]
    mod tests {
        extern crate std;

        use super::{Key, ReuseHint};
        use std::string::String;

        fn text(hint: ReuseHint) -> String {
            let (buf, len) = hint.write();
            String::from_utf8(buf[..len].into()).unwrap()
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
                text(ReuseHint::reuse().set(Key::MaxConcurrency, 8)),
                "v1 reuse max-concurrency=8"
            );
            assert_eq!(
                text(
                    ReuseHint::reuse()
                        .set(Key::MaxConcurrency, 8)
                        .set(Key::MaxCalls, 100)
                ),
                "v1 reuse max-calls=100 max-concurrency=8"
            );
            assert_eq!(
                text(
                    ReuseHint::reuse()
                        .set(Key::MaxCalls, u32::MAX)
                        .set(Key::MaxConcurrency, 10)
                ),
                "v1 reuse max-calls=4294967295 max-concurrency=10"
            );
        }
    }
}
