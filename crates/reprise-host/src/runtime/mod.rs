//! wasmtime underneath Reprise: the engine and its allocator, loading and
//! compiling components, the linker with everything WASI, the limits and
//! the state of one instance, where guests' output goes, the `reprise:init`
//! export, and the typed failures a call can end in.

pub mod component;
pub mod engine;
pub mod failure;
pub mod guest_output;
pub mod init;
pub mod instance;
pub mod limits;
pub mod linker;
pub mod net;
pub mod preinit;
