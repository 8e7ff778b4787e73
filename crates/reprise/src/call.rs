//! `reprise call`: call one exported function N times, on fresh or reused
//! instances as the policy decides, printing each result in WAVE.

use crate::cli::{CallArgs, LogFormat};
use crate::guest::guest_output;
use crate::instances::{prepare, runtime, serial_options};
use reprise_host::front::serial::invoke::{call_repeatedly, parse_invocation};
use reprise_host::runtime::component::Source;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(args: CallArgs, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    let source = Source::File(args.component.clone());
    let setup = prepare(source, &args.instances, args.instances.reuse_flags(), false)?;
    let options = serial_options(&setup);
    // Whatever the guest prints stays out of the result lines.
    let output = guest_output(log_format, true);
    let guest = args.instances.guest.environment(Vec::new(), false, output);
    let manager = Arc::new(setup.manager(guest)?);
    // Checked before any instance exists: bad input costs no instantiation.
    let invocation = parse_invocation(manager.component(), &manager.engine().engine, &args.call)?;
    let mut stdout = std::io::stdout().lock();
    runtime()?.block_on(call_repeatedly(
        manager,
        &invocation,
        args.repeat,
        options,
        // Each result goes out as soon as it exists, even into a pipe.
        |line| {
            let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        },
    ))?;
    Ok(ExitCode::SUCCESS)
}
