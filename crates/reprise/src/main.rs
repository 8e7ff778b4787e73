//! `reprise`: a thin command line over `reprise-host` and `reprise-hint`.
//!
//! Each subcommand parses its raw flags (`cli`), validates them into the
//! library's typed settings, and calls the library; all errors reach `main`,
//! which prints them as one `error: …` line and exits non-zero.

mod allocator;
mod call;
mod check;
mod cli;
mod guest;
mod hint;
mod instances;
mod preinit;
mod run;
mod serve;
mod units;

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

/// mimalloc (see `allocator.rs`).
#[global_allocator]
static ALLOCATOR: allocator::MiMalloc = allocator::MiMalloc;

fn main() -> ExitCode {
    // Error values never carry a backtrace here: Reprise prints errors as
    // one line, and wasmtime creates an error on every store it drops, so
    // with `RUST_BACKTRACE=1` in the environment each fresh instance would
    // walk the stack for nothing (a third of a fresh request's CPU, measured).
    // Panics still print backtraces as `RUST_BACKTRACE` asks.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: nothing else runs yet; no other thread reads the environment.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let cli = cli::Cli::parse();
    // A command's stderr is the guest's: `run` adds only warnings to it by
    // default, as `wasmtime run` adds nothing, so tools that read a
    // command's output see the command's.
    let own_info = !matches!(cli.command, cli::Command::Run(_));
    init_tracing(cli.log_format, own_info);
    // Commands that only print a report: a reader that stops early
    // (`| head`) ends them quietly, as it ends other Unix tools, instead of
    // a panic on the next print. (Sockets are unaffected: Rust writes to
    // them with MSG_NOSIGNAL.)
    if matches!(cli.command, cli::Command::Check(_) | cli::Command::Hint(_)) {
        // SAFETY: restoring a signal's default action; no handler runs.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    // `check` tells a finding (1) from a check that could not run (2).
    let failed = match cli.command {
        cli::Command::Check(_) => ExitCode::from(check::BAD_INPUT),
        _ => ExitCode::FAILURE,
    };
    let result = match cli.command {
        cli::Command::Serve(args) => serve::run(args, cli.log_format),
        cli::Command::Run(args) => run::run(args),
        cli::Command::Call(args) => call::run(args, cli.log_format),
        cli::Command::Hint(args) => hint::run(args),
        cli::Command::Check(args) => check::run(args, cli.log_format),
        cli::Command::Preinit(args) => preinit::run(args, cli.log_format),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!(
                "error: {}",
                reprise_host::runtime::component::one_line(&error)
            );
            failed
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: everyone's
/// warnings, and with `own_info` Reprise's own informational messages), as
/// text or JSON lines.
fn init_tracing(format: cli::LogFormat, own_info: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(match own_info {
            true => "warn,reprise=info,reprise_host=info",
            false => "warn",
        })
    });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        cli::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        cli::LogFormat::Json => logs.json().init(),
    }
}
