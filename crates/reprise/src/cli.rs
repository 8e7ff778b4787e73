//! Raw command-line arguments, as clap parses them. Validation into the
//! host's typed settings happens in each command's module.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "reprise",
    version,
    about = "A WebAssembly component host where instance reuse is a declared, testable contract"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve a wasi:http component (p2 or p3) over HTTP.
    Serve(ServeArgs),
    /// Read, write or clear a component's instance reuse hint.
    #[command(subcommand)]
    Hint(HintCommand),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PolicyArg {
    /// A new instance for every request.
    Fresh,
    /// Reuse instances, within the flags' and the component's bounds.
    Reuse,
    /// Follow the component's reuse hint (no hint: fresh).
    Auto,
}

#[derive(Args)]
pub struct ServeArgs {
    /// The component to serve. Without one, a bundled example is served.
    pub component: Option<PathBuf>,

    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Address of the admin endpoint (/ready, /live, /metrics).
    #[arg(long)]
    pub admin_addr: Option<SocketAddr>,

    /// Add an `x-reprise-instance: N` header naming the instance that served
    /// each request (instances are numbered from 1 in creation order).
    #[arg(long)]
    pub expose_instance_id: bool,

    /// When instances are reused: `auto` follows the component's reuse hint.
    #[arg(long, value_enum, default_value = "auto")]
    pub policy: PolicyArg,

    /// Keep this many initialized, never-used instances ready.
    #[arg(long, default_value_t = 0)]
    pub prewarm: usize,

    /// Under reuse: calls one instance serves before it is retired.
    #[arg(long)]
    pub max_calls: Option<NonZeroU64>,

    /// Under reuse: concurrent requests one p3 instance accepts (p2: always 1).
    #[arg(long)]
    pub max_concurrency: Option<NonZeroU32>,

    /// Under reuse: retire an instance idle this long (e.g. `1s`).
    #[arg(long, value_parser = crate::units::duration)]
    pub idle_timeout: Option<Duration>,

    /// Under reuse: retire an instance this long after it was created.
    #[arg(long, value_parser = crate::units::duration)]
    pub max_age: Option<Duration>,

    /// Per-request time limit (e.g. `5s`); an overdue request gets 504 and its
    /// instance is discarded.
    #[arg(long, value_parser = crate::units::duration)]
    pub timeout: Option<Duration>,

    /// Linear memory cap per instance (e.g. `64MiB`); growing past it traps
    /// the request (500) and discards the instance.
    #[arg(long, value_parser = crate::units::size)]
    pub max_memory: Option<u64>,

    /// Open connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
}

#[derive(Subcommand)]
pub enum HintCommand {
    /// Print the component's effective reuse hint and where it came from.
    Show {
        file: PathBuf,
        /// Print JSON: {"effective", "sources", "conflicts"}.
        #[arg(long)]
        json: bool,
    },
    /// Write PAYLOAD (e.g. 'v1 reuse max-calls=100') as the top-level hint.
    Set {
        file: PathBuf,
        payload: String,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Remove the top-level component's own hint.
    Clear {
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
}
