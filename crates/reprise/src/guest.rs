//! What a component's instances see of the world besides their calls:
//! environment variables (`--env`) and host directories (`--dir`), with the
//! same syntax as `wasmtime run`; outbound network (`--allow-net`);
//! wasi:config variables (`--config`) and wasi:keyvalue seed data
//! (`--keyvalue`). Parsed and checked when the flags are read, so a typo
//! fails before anything is compiled.

use crate::cli::LogFormat;
use clap::Args;
use reprise_host::runtime::guest_output::GuestOutput;
use reprise_host::runtime::instance::{GuestEnvironment, Preopen};
use reprise_host::runtime::net::{NetPolicy, NetTarget};
use std::path::PathBuf;
use std::sync::Arc;

/// Separates the host path from the guest path in `--dir HOST::GUEST`.
const DIR_SEPARATOR: &str = "::";

#[derive(Args, Clone, Default)]
pub struct GuestArgs {
    /// An environment variable every instance sees: `NAME=VALUE`, or `NAME`
    /// to pass on reprise's own value (unset there: a warning, and the guest
    /// sees no such variable). Repeatable.
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = env_var)]
    pub vars: Vec<(String, Option<String>)>,

    /// A host directory every instance may read and write, at `GUEST` (the
    /// same path when omitted). Repeatable.
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = preopen)]
    pub dirs: Vec<Preopen>,

    /// Let guests reach TARGET over wasi:sockets (TCP and UDP connects,
    /// sends, name lookups): `IP`, `IP:PORT`, `CIDR`, `HOST[:PORT]` (resolved
    /// at startup; only listed names may be looked up) or `*` (everything,
    /// listening included). Without it guests have no network. Repeatable.
    #[arg(long = "allow-net", value_name = "TARGET")]
    pub allow_net: Vec<NetTarget>,

    /// A wasi:config/store variable: `NAME=VALUE`. Repeatable.
    #[arg(long = "config", value_name = "NAME=VALUE", value_parser = name_value)]
    pub config: Vec<(String, String)>,

    /// A key of the in-memory wasi:keyvalue store every instance starts
    /// with (bucket `""`): `KEY=VALUE`. Repeatable.
    #[arg(long = "keyvalue", value_name = "KEY=VALUE", value_parser = name_value)]
    pub keyvalue: Vec<(String, String)>,
}

impl GuestArgs {
    /// The environment of every instance, with `args` as its command line,
    /// the host's stdin when `stdin` is set, and its output sent to
    /// `output`.
    pub fn environment(
        &self,
        args: Vec<String>,
        stdin: bool,
        output: GuestOutput,
    ) -> GuestEnvironment {
        let mut vars = Vec::new();
        for (name, value) in &self.vars {
            match value {
                Some(value) => vars.push((name.clone(), value.clone())),
                None => tracing::warn!(
                    "--env {name}: `{name}` is not set in reprise's environment; guests will not see it"
                ),
            }
        }
        let (net, warnings) = NetPolicy::resolved(&self.allow_net);
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        GuestEnvironment {
            args,
            vars,
            dirs: self.dirs.clone(),
            stdin,
            output,
            net: Arc::new(net),
            config: self.config.clone(),
            keyvalue: self.keyvalue.clone(),
        }
    }
}

/// Where a guest's output goes, for a command that writes its own results
/// on stdout (`call`, `check`) or not (`serve`): with JSON logs, guest
/// lines become log events, so every line on stderr is JSON.
pub fn guest_output(log_format: LogFormat, results_on_stdout: bool) -> GuestOutput {
    match (log_format, results_on_stdout) {
        (LogFormat::Json, _) => GuestOutput::Logs,
        (LogFormat::Text, true) => GuestOutput::Stderr,
        (LogFormat::Text, false) => GuestOutput::Inherit,
    }
}

/// An `--env` value with nothing before its `=`.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` has no variable name (write `NAME=VALUE`)")]
struct EnvVarError(String);

/// `NAME=VALUE`, or `NAME` taken from reprise's environment (`None` when
/// unset there, which [`GuestArgs::environment`] warns about).
fn env_var(text: &str) -> Result<(String, Option<String>), EnvVarError> {
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (text, std::env::var(text).ok()),
    };
    if name.is_empty() {
        return Err(EnvVarError(text.to_string()));
    }
    Ok((name.to_string(), value))
}

/// A `--config` or `--keyvalue` value that is not `NAME=VALUE`.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not `NAME=VALUE`")]
struct NameValueError(String);

/// `NAME=VALUE` of `--config` and `--keyvalue`.
fn name_value(text: &str) -> Result<(String, String), NameValueError> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(NameValueError(text.to_string())),
    }
}

/// Why a `--dir` value names no directory to open.
#[derive(Debug, thiserror::Error)]
enum PreopenError {
    /// An empty host or guest path.
    #[error("`{0}` is not `HOST` or `HOST::GUEST`")]
    Form(String),
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("cannot open {}: {reason}", .path.display())]
    Unreadable {
        path: PathBuf,
        reason: std::io::Error,
    },
}

/// `HOST` or `HOST::GUEST`; `HOST` must be a directory.
fn preopen(text: &str) -> Result<Preopen, PreopenError> {
    let (host, guest) = text.split_once(DIR_SEPARATOR).unwrap_or((text, text));
    if host.is_empty() || guest.is_empty() {
        return Err(PreopenError::Form(text.to_string()));
    }
    let host = PathBuf::from(host);
    match std::fs::metadata(&host) {
        Ok(meta) if meta.is_dir() => Ok(Preopen {
            host,
            guest: guest.to_string(),
        }),
        Ok(_) => Err(PreopenError::NotADirectory(host)),
        Err(reason) => Err(PreopenError::Unreadable { path: host, reason }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_set_or_passed_on() {
        assert_eq!(
            env_var("MODE=a=b").unwrap(),
            ("MODE".to_string(), Some("a=b".to_string()))
        );
        assert_eq!(
            env_var("EMPTY=").unwrap(),
            ("EMPTY".into(), Some("".into()))
        );
        let path = std::env::var("PATH").unwrap();
        assert_eq!(env_var("PATH").unwrap(), ("PATH".to_string(), Some(path)));
        assert_eq!(
            env_var("REPRISE_SURELY_UNSET_VARIABLE").unwrap(),
            ("REPRISE_SURELY_UNSET_VARIABLE".to_string(), None)
        );
        assert!(
            env_var("=x")
                .unwrap_err()
                .to_string()
                .contains("no variable name")
        );
        assert_eq!(name_value("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(name_value("novalue").is_err());
        assert!(name_value("=v").is_err());
    }

    #[test]
    fn directories_must_exist_and_may_be_renamed() {
        let here = env!("CARGO_MANIFEST_DIR");
        assert_eq!(
            preopen(here).unwrap(),
            Preopen {
                host: here.into(),
                guest: here.into()
            }
        );
        let renamed = preopen(&format!("{here}::/data")).unwrap();
        assert_eq!(renamed.guest, "/data");
        let file = format!("{here}/Cargo.toml");
        assert!(
            preopen(&file)
                .unwrap_err()
                .to_string()
                .contains("is not a directory")
        );
        assert!(
            preopen("/no/such/dir")
                .unwrap_err()
                .to_string()
                .contains("cannot open")
        );
        assert!(preopen(&format!("{here}::")).is_err());
    }
}
