//! The front ends: each turns what arrives (HTTP requests; repeated calls of
//! a command or a function) into export calls on instances drawn from the
//! [`pool`](crate::pool), under the policy the pool holds.

pub mod http;
pub mod serial;
