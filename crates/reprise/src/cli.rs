//! Raw command-line arguments, as clap parses them. Validation into the
//! host's typed settings happens in each command's module.

use crate::guest::GuestArgs;
use clap::{Args, Parser, Subcommand, ValueEnum};
use reprise_host::runtime::engine::DEFAULT_MAX_INSTANCES;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
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

    /// How log lines on stderr are written: `text` for people, `json` (one
    /// object per line) for log collectors.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve a wasi:http component (p2 or p3) over HTTP.
    Serve(ServeArgs),
    /// Run a command (a component exporting wasi:cli/run), N times.
    Run(RunArgs),
    /// Call any exported function with WAVE arguments, N times; print each
    /// result in WAVE, one per line.
    Call(CallArgs),
    /// Read, write or clear a component's instance reuse hint.
    #[command(subcommand)]
    Hint(HintCommand),
    /// Run a script of HTTP requests or function calls fresh, reused and
    /// under chaos, and report whether the component behaves the same (exit
    /// 0 only if so).
    Check(CheckArgs),
    /// Run the component's init once and write the pre-initialized
    /// component (its memory as init left it), which runs unchanged on any
    /// host.
    Preinit(PreinitArgs),
}

#[derive(Args)]
pub struct PreinitArgs {
    /// The component: it exports `reprise:init/init` or `wizer-initialize`.
    pub component: PathBuf,

    /// Where to write the pre-initialized component.
    #[arg(short, long)]
    pub output: PathBuf,

    /// Time init may take.
    #[arg(long, value_parser = crate::units::duration, default_value = "60s")]
    pub timeout: Duration,

    #[command(flatten)]
    pub guest: GuestArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PolicyArg {
    /// A new instance for every call.
    Fresh,
    /// Reuse instances, within the flags' and the component's bounds.
    Reuse,
    /// Follow the component's reuse hint (no hint: fresh).
    Auto,
}

/// `--preinit`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PreinitArg {
    /// Snapshot deterministic init at load.
    Auto,
    /// Run init on every instance.
    Never,
}

impl PreinitArg {
    pub fn mode(self) -> reprise_host::runtime::preinit::PreinitMode {
        match self {
            PreinitArg::Auto => reprise_host::runtime::preinit::PreinitMode::Auto,
            PreinitArg::Never => reprise_host::runtime::preinit::PreinitMode::Never,
        }
    }
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

    #[command(flatten)]
    pub instances: InstanceArgs,

    /// Never let one instance serve requests with different values of this
    /// key (`header:NAME`); requests without it get a fresh instance each.
    #[arg(long, value_name = "header:NAME")]
    pub isolate_by: Option<reprise_host::front::http::IsolateBy>,

    /// Under reuse: concurrent requests one p3 instance accepts (p2: always 1).
    #[arg(long)]
    pub max_concurrency: Option<NonZeroU32>,

    /// Under reuse: retire an instance idle this long (e.g. `1s`).
    #[arg(long, value_parser = crate::units::duration)]
    pub idle_timeout: Option<Duration>,

    /// Under reuse: retire an instance, after its current request, once its
    /// linear memory exceeds this (e.g. `256MiB`); a soft ceiling below
    /// `--max-memory`, for components that leak.
    #[arg(long, value_parser = crate::units::size)]
    pub memory_ceiling: Option<u64>,

    /// Open connections served at once; more wait in the listen backlog.
    /// Default: 1024, or less so as to stay 128 below the open-file limit
    /// (whose soft value is first raised to the hard one).
    #[arg(long, value_parser = max_connections)]
    pub max_connections: Option<usize>,

    /// After SIGINT/SIGTERM, how long in-flight requests may take to
    /// finish before the server exits anyway (keep it below the grace
    /// period of whatever sends the signal, e.g. Kubernetes' 30s).
    #[arg(long, value_parser = crate::units::duration, default_value = "25s")]
    pub drain_timeout: Duration,

    /// Close a connection whose client takes longer than this to send a
    /// request's headers, counted from the connection's start or its
    /// previous response's end (idle keep-alive connections included); `0`
    /// never closes one.
    #[arg(long, value_parser = crate::units::duration, default_value = "30s")]
    pub header_timeout: Duration,

    /// A request's body must have arrived this long after its headers;
    /// past it the request is answered 408 and its connection closed
    /// (`0`: no limit).
    #[arg(long, value_parser = crate::units::duration, default_value = "30s")]
    pub body_timeout: Duration,

    /// The largest request body accepted (e.g. `16MiB`); a larger one is
    /// answered 413 and its connection closed.
    #[arg(long, value_parser = crate::units::size, default_value = "16MiB")]
    pub max_body_bytes: u64,

    /// Append every request served to FILE, in the `.http` format of REST
    /// Client and the JetBrains HTTP client (bodies up to 64 KiB; the
    /// values of `authorization`, `cookie` and `proxy-authorization`
    /// redacted).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// With `--record`: record the values of `authorization`, `cookie` and
    /// `proxy-authorization` too.
    #[arg(long, requires = "record")]
    pub record_secrets: bool,

    /// A header set on every incoming request, replacing one of that name
    /// the client sent: `'NAME: VALUE'`. Repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = reprise_host::front::http::parse_header)]
    pub headers: Vec<reprise_host::front::http::ExtraHeader>,

    /// The most a request's headers may take (e.g. `64KiB`, at least
    /// `8KiB`); larger ones are refused with 431.
    #[arg(long, value_parser = max_header_bytes, default_value = "64KiB")]
    pub max_header_bytes: usize,
}

/// Why a `--max-connections` value was refused.
#[derive(Debug, thiserror::Error)]
enum ConnectionsError {
    #[error(
        "0 would serve no connection at all; write a positive number, e.g. `1024` \
         (for no practical cap, a large one such as `100000`)"
    )]
    Zero,
    #[error("`{0}` is not a number of connections, e.g. `1024`")]
    NotANumber(String),
}

fn max_connections(text: &str) -> Result<usize, ConnectionsError> {
    match text.parse::<usize>() {
        Ok(0) => Err(ConnectionsError::Zero),
        Ok(cap) => Ok(cap),
        Err(_) => Err(ConnectionsError::NotANumber(text.to_string())),
    }
}

/// Why a `--max-header-bytes` value was refused.
#[derive(Debug, thiserror::Error)]
enum HeaderBytesError {
    #[error(transparent)]
    Size(#[from] crate::units::SizeError),
    /// Below [`reprise_host::front::http::MIN_HEADER_BYTES`]: too little
    /// for the headers of ordinary requests.
    #[error(
        "must be at least {} bytes (8KiB)",
        reprise_host::front::http::MIN_HEADER_BYTES
    )]
    TooSmall,
}

fn max_header_bytes(text: &str) -> Result<usize, HeaderBytesError> {
    let bytes = crate::units::size(text)?;
    let min = reprise_host::front::http::MIN_HEADER_BYTES;
    match usize::try_from(bytes) {
        Ok(bytes) if bytes >= min => Ok(bytes),
        _ => Err(HeaderBytesError::TooSmall),
    }
}

/// How instances are created, reused and limited: the same flags, with the
/// same meaning, for every command that runs a component.
#[derive(Args)]
pub struct InstanceArgs {
    /// When instances are reused: `auto` follows the component's reuse hint.
    #[arg(long, value_enum, default_value = "auto")]
    pub policy: PolicyArg,

    /// Keep this many initialized, never-used instances ready.
    #[arg(long, default_value_t = 0)]
    pub prewarm: usize,

    /// `auto`: run the component's init (`reprise:init`, `wizer-initialize`)
    /// once at load and start every instance from the snapshot, when init is
    /// deterministic; `never`: run init per instance.
    #[arg(long, value_enum, default_value = "auto")]
    pub preinit: PreinitArg,

    /// Under reuse: calls one instance serves before it is retired.
    #[arg(long)]
    pub max_calls: Option<NonZeroU64>,

    /// Under reuse: retire an instance this long after it was created.
    #[arg(long, value_parser = crate::units::duration)]
    pub max_age: Option<Duration>,

    /// Per-call time limit (e.g. `5s`), or `none`; an overdue call is
    /// stopped (serve: 504) and its instance discarded. Default: 60s under
    /// `serve`, so no request runs forever; none for `run` and `call`.
    #[arg(long, value_parser = crate::units::call_timeout, value_name = "DUR|none")]
    pub timeout: Option<crate::units::CallTimeout>,

    /// Linear memory cap per instance (e.g. `64MiB`); growing past it traps
    /// the call (serve: 500) and discards the instance.
    #[arg(long, value_parser = crate::units::size, default_value = "1GiB")]
    pub max_memory: Option<u64>,

    /// Instances alive at once (serving, idle or pre-warmed). When all are
    /// busy, further calls wait for one to end or become free.
    #[arg(long, default_value_t = NonZeroUsize::new(DEFAULT_MAX_INSTANCES).unwrap())]
    pub max_instances: NonZeroUsize,

    #[command(flatten)]
    pub chaos: ChaosArgs,

    #[command(flatten)]
    pub guest: GuestArgs,
}

/// The testing mode, for every command that runs a component.
#[derive(Args)]
pub struct ChaosArgs {
    /// Testing mode: before each call, retire the chosen instance with
    /// probability P (default 0.25, floor 0.1); keep two instances and pick
    /// one at random; reuse even unhinted or `fresh` components; over HTTP,
    /// also perturb body chunking, I/O timing and admission order.
    #[arg(long, value_name = "P", num_args = 0..=1, require_equals = true, default_missing_value = "0.25")]
    pub chaos: Option<f64>,

    /// Seed of every chaos decision; the same seed and the same serial
    /// calls replay the same decisions. Random (and printed) when unset.
    #[arg(long, requires = "chaos")]
    pub seed: Option<u64>,

    /// Under chaos, still honor a `fresh` hint (or no hint) instead of
    /// reusing instances anyway.
    #[arg(long, requires = "chaos")]
    pub chaos_respect_hint: bool,
}

#[derive(Args)]
pub struct RunArgs {
    /// The command component (exports wasi:cli/run).
    pub component: PathBuf,

    /// Arguments for the command (its argv after the program name); put
    /// ones that start with `-` after `--`.
    pub args: Vec<String>,

    /// Run this many times, each on the current or a new instance as the
    /// policy decides.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeat: u64,

    #[command(flatten)]
    pub instances: InstanceArgs,
}

#[derive(Args)]
pub struct CallArgs {
    /// The component.
    pub component: PathBuf,

    /// The call, in WAVE: `name(arg, ...)`, e.g. `add(1, 2)` or
    /// `my:pkg/iface#f({x: 1}, "text")` (or `iface#f(..)` when one exported
    /// interface has that name).
    pub call: String,

    /// Call this many times, each on the current or a new instance as the
    /// policy decides.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeat: u64,

    #[command(flatten)]
    pub instances: InstanceArgs,
}

#[derive(Args)]
pub struct CheckArgs {
    /// The component to check: a wasi:http handler, or any component whose
    /// functions `--call` or `--script` name.
    pub component: PathBuf,

    /// What to send. A file ending in `.http` holds requests in the `.http`
    /// format (REST Client, JetBrains): separated by `###` lines, each a
    /// request line `METHOD PATH-OR-URL [HTTP/1.1]`, headers, a blank line
    /// and a body. Other files hold one entry per line: HTTP requests,
    /// `METHOD /PATH [BODY]`, or function calls in WAVE, `name(args)` (`#`
    /// starts a comment). Default: twelve `GET /`.
    #[arg(long, conflicts_with = "call")]
    pub script: Option<PathBuf>,

    /// A function call in WAVE, `name(args)`, to make twelve times in each
    /// run instead of a script.
    #[arg(long)]
    pub call: Option<String>,

    /// Chaos runs to make, each with its own seed.
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,

    /// The seed of every random choice (tokens, admission orders; chaos
    /// seeds follow it); random and printed if unset.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Calls of the long reuse run (the script repeated on one instance),
    /// also bounded by `--time-budget`.
    #[arg(long, default_value_t = 1000)]
    pub calls: usize,

    /// Time the long reuse run, and shrinking a finding, may each take.
    #[arg(long, value_parser = crate::units::duration, default_value = "3s")]
    pub time_budget: Duration,

    /// Calls in flight at once in the concurrent runs (p3 handlers);
    /// default: the instance's max concurrency, at most the script length.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: Option<u64>,

    /// Write the shrunk script of a finding to this file (`.http` for
    /// requests), to replay it with `--script`.
    #[arg(long, value_name = "FILE")]
    pub repro: Option<PathBuf>,

    /// Write JUnit XML (a test case per run) to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Write the report as one self-contained HTML page to this file: per
    /// run a timeline of instances and calls, answers diffed against the
    /// fresh baseline, leaks and the divergence highlighted, and the
    /// memory curve of the long reuse run.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Per-call time limit, so a hanging call fails the check instead of
    /// hanging it.
    #[arg(long, value_parser = crate::units::duration, default_value = "10s")]
    pub timeout: Duration,

    /// Linear memory cap per instance.
    #[arg(long, value_parser = crate::units::size, default_value = "1GiB")]
    pub max_memory: u64,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// `auto`: check the pre-initialization snapshot (when init is
    /// deterministic) and compare its answers with per-instance init;
    /// `never`: run init per instance.
    #[arg(long, value_enum, default_value = "auto")]
    pub preinit: PreinitArg,

    #[command(flatten)]
    pub guest: GuestArgs,
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
