//! The guest components Reprise's tests run, built from the `guest/` workspace for
//! `wasm32-wasip2` by this crate's build script (into `<target dir>/guest`).
//!
//! Each fixture `guest/fixtures/NAME` is a constant holding the absolute path of its component,
//! named after the fixture in upper snake case (`slow-init` → [`SLOW_INIT`]); its doc states the
//! fixture's behaviour. [`ALL`] lists every fixture. [`EXAMPLE_BYTES`] embeds the bundled example
//! that `reprise serve` runs when given no component.

include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
