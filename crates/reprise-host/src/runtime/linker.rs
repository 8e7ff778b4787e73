//! The imports Reprise provides to components.
//!
//! Real toolchains import far more than the `wasi:http/proxy` world: Rust's
//! std pulls in `wasi:cli`, componentize-py all of `wasi:sockets` and
//! `wasi:filesystem`. Like `wasmtime serve -Scli`, Reprise links all of WASI
//! p2 and p3 beside `wasi:http`; wasmtime's semver-aware linker then accepts
//! any 0.2.x / 0.3.x patch version a component was built against.

use crate::runtime::instance::InstanceState;
use wasmtime::Engine;
use wasmtime::component::Linker;

/// A linker with every WASI interface Reprise implements.
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    // As `wasmtime serve -Sconfig -Skeyvalue`: variables from `--config`,
    // an in-memory store seeded by `--keyvalue`.
    wasmtime_wasi_config::add_to_linker(&mut linker, InstanceState::config)?;
    wasmtime_wasi_keyvalue::add_to_linker(&mut linker, InstanceState::keyvalue)?;
    crate::runtime::net::add_lookup_filter(&mut linker)?;
    // p3 interfaces pass streams and futures, which only an engine with
    // concurrency support can run (and only such components import them).
    if engine.get_concurrency_support() {
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    }
    Ok(linker)
}
