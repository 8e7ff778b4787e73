//! `reprise preinit COMPONENT -o OUT`: run the component's init once and
//! write the snapshot (`runtime::preinit`), a component like the original
//! (same exports, reuse hint included) whose memory starts as init left it.

use crate::cli::{LogFormat, PreinitArgs};
use crate::guest::guest_output;
use anyhow::Context as _;
use reprise_host::pool::InstanceLimits;
use reprise_host::runtime::component::Source;
use reprise_host::setup::{HostSettings, Setup};
use std::process::ExitCode;

pub fn run(args: PreinitArgs, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    let settings = HostSettings {
        limits: InstanceLimits {
            timeout: Some(args.timeout),
            ..InstanceLimits::default()
        },
        concurrent: true,
        ..HostSettings::default()
    };
    let setup = Setup::prepare(Source::File(args.component.clone()), settings)?;
    let guest = args
        .guest
        .environment(Vec::new(), false, guest_output(log_format, true));
    let snapshot = setup
        .snapshot(&guest)
        .with_context(|| format!("cannot pre-initialize {}", args.component.display()))?;
    std::fs::write(&args.output, &snapshot.bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "wrote {} ({} bytes): {} ran once in {:.1} ms; its instances start initialized",
        args.output.display(),
        snapshot.bytes.len(),
        snapshot.init,
        snapshot.took.as_secs_f64() * 1e3
    );
    Ok(ExitCode::SUCCESS)
}
