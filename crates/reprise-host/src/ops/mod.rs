//! What operators and orchestrators talk to: the admin endpoint (`/ready`,
//! `/live`, `/metrics`), and the accept loop it shares with the HTTP front
//! end.

pub mod activation;
pub mod admin;
pub mod files;
pub mod listen;
