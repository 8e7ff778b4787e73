//! Reprise's host library: everything `reprise` does, without a CLI.
//!
//! The data path reads top to bottom: a component is loaded
//! ([`component`]) into an engine ([`engine`]); its reuse hint and the
//! operator's flags resolve into a [`policy`]; the [`manager`] creates and
//! retires instances under that policy; front ends such as [`http`] turn
//! requests into export calls on those instances, while [`serial`] repeats
//! one call ([`cli_run`] for commands, [`invoke`] for any function).

pub mod admin;
pub mod chaos;
pub mod check;
pub mod cli_run;
pub mod component;
pub mod engine;
pub mod guest_output;
pub mod http;
pub mod init;
pub mod instance;
pub mod invoke;
pub mod linker;
pub mod manager;
pub mod metrics;
pub mod policy;
pub mod serial;
