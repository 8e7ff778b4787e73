//! The instance reuse hint: a component's declaration of whether one instance
//! may serve many calls (`reuse`, optionally bounded) or should serve one
//! (`fresh`).
//!
//! The hint travels in a custom section named `instance-reuse-hint` whose
//! payload is one line of text, `v1 MODE [KEY=VALUE ...]`; the full format is
//! specified in `docs/reuse-hint.md`. This crate is the reference
//! implementation, and depends on no runtime so a producer toolchain can use
//! it alone:
//!
//! - [`ReuseHint`] parses ([`ReuseHint::from_payload`], [`str::parse`]) and
//!   prints (`Display`, always canonical) one payload;
//! - [`inspect`] finds every hint in a component tree (the component, nested
//!   components, nested core modules) and composes them into the effective
//!   hint, with a [`Report`] of where it came from;
//! - [`set_hint`] and [`clear_hint`] rewrite the top-level component's own
//!   hint and nothing else;
//! - [`Canonical`] encodes a payload in a `const`, with `core` alone: without
//!   the default `std` feature it is all this crate has, which is what a
//!   `no_std` guest needs to embed its hint.
//!
//! ```
//! let hint: reprise_hint::ReuseHint = "v1 reuse max-calls=100".parse()?;
//! assert_eq!(hint.mode(), reprise_hint::Mode::Reuse);
//! assert_eq!(hint.max_calls().map(|n| n.get()), Some(100));
//! # Ok::<(), reprise_hint::PayloadError>(())
//! ```

#![cfg_attr(not(feature = "std"), no_std)]

#[cfg(feature = "std")]
mod compose;
mod encode;
#[cfg(feature = "std")]
mod error;
#[cfg(feature = "std")]
mod payload;
#[cfg(feature = "std")]
mod report;
#[cfg(feature = "std")]
mod rewrite;
#[cfg(feature = "std")]
mod walk;

pub use encode::{Canonical, MAX_CANONICAL_LEN};
#[cfg(feature = "std")]
pub use error::{HintError, PayloadError};
#[cfg(feature = "std")]
pub use payload::{MAX_PAYLOAD_LEN, Mode, ReuseHint, SECTION_NAME};
#[cfg(feature = "std")]
pub use report::{Report, Source};
#[cfg(feature = "std")]
pub use rewrite::{clear_hint, set_hint};
#[cfg(feature = "std")]
pub use walk::MAX_NESTING_DEPTH;

/// Finds every `instance-reuse-hint` section in the component `wasm` and
/// composes them into its effective hint.
///
/// Sections with an unsupported version are ignored and reported in
/// [`Report::warnings`]. Anything else wrong is an error: the input is not a
/// binary component, does not parse, nests too deeply, or a node has two
/// hint sections or a malformed one (the error names the node).
#[cfg(feature = "std")]
pub fn inspect(wasm: &[u8]) -> Result<Report, HintError> {
    walk::walk(wasm).map(|tree| compose::compose(&tree))
}
