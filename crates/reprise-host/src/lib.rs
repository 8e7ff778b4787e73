//! Reprise's host library: everything `reprise` does, without a CLI.
//!
//! The folders follow the data path, and each depends only on the ones
//! before it (`docs/architecture.md` draws it):
//! - [`policy`]: the reuse policy as plain values: the hint adopted
//!   ([`policy::adopt`]), resolved against the operator's flags, chaos's
//!   seeded decisions ([`policy::chaos`]), admission, expiry and deadlines;
//! - [`runtime`]: wasmtime underneath: engine, component loading, linker,
//!   per-instance state, guest output, `reprise:init`, typed call failures;
//! - [`pool`]: the instance manager every front end draws instances from,
//!   and its metrics;
//! - [`setup`]: hint → policy → engine → pool, from CLI-independent
//!   settings;
//! - [`ops`]: what operators talk to (the admin endpoint) and the accept
//!   loop both listeners share;
//! - [`front`]: the front ends, thin drivers that turn requests (HTTP) or
//!   repeated calls (`run`, `call`) into export calls on pooled instances;
//! - [`check`]: `reprise check`, the differential reuse report, driving
//!   the front ends.

pub mod check;
pub mod front;
pub mod ops;
pub mod policy;
pub mod pool;
pub mod runtime;
pub mod setup;
