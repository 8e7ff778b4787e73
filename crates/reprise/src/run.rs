//! `reprise run`: run a command component N times, on fresh or reused
//! instances as the policy decides; exit with the first failing run's code.

use crate::cli::RunArgs;
use crate::instances::{prepare, runtime, serial_options};
use reprise_host::front::serial::command::run_repeatedly;
use reprise_host::runtime::component::Source;
use reprise_host::runtime::guest_output::GuestOutput;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let file = args.component.display().to_string();
    let source = Source::File(args.component.clone());
    let setup = prepare(source, &args.instances, args.instances.reuse_flags(), false)?;
    // argv[0] is the program name, as a shell would pass it.
    let argv = std::iter::once(file.clone()).chain(args.args).collect();
    let options = serial_options(&setup);
    // A command's output is the command's output, whatever the log format.
    let guest = args
        .instances
        .guest
        .environment(argv, true, GuestOutput::Inherit);
    let manager = Arc::new(setup.manager(guest)?);
    let code = runtime()?.block_on(run_repeatedly(manager, args.repeat, options, &file))?;
    // Exit statuses are one byte; a code that does not fit still fails.
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
