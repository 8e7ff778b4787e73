//! `reprise run`: run a command component N times, on fresh or reused
//! instances as the policy decides; exit with the first failing run's code.

use crate::cli::RunArgs;
use crate::instances::{prepare, runtime, serial_options};
use reprise_host::front::serial::command::{RunError, run_repeatedly};
use reprise_host::runtime::component::Source;
use reprise_host::runtime::guest_output::GuestOutput;
use std::process::ExitCode;
use std::sync::Arc;

/// The exit code of a run that trapped, as `wasmtime run` exits on a trap
/// (128 + SIGABRT).
const TRAP_EXIT_CODE: u8 = 134;

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let file = args.component.display().to_string();
    let source = Source::File(args.component.clone());
    let setup = prepare(source, &args.instances, args.instances.reuse_flags(), false)?;
    // argv[0] is the component's file name, as `wasmtime run` passes it
    // (the base name only, so no host path leaks to the guest).
    let program = args
        .component
        .file_name()
        .map_or_else(|| file.clone(), |name| name.to_string_lossy().into_owned());
    let argv = std::iter::once(program).chain(args.args).collect();
    let options = serial_options(&setup);
    // A command's output is the command's output, whatever the log format.
    let guest = args
        .instances
        .guest
        .environment(argv, true, GuestOutput::Inherit);
    let manager = Arc::new(setup.manager(guest)?);
    let code = match runtime()?.block_on(run_repeatedly(manager, args.repeat, options, &file)) {
        Ok(code) => code,
        // A run that did not finish (a trap, a timeout, the memory cap) has
        // no exit code of its own: exit with wasmtime's code for an abort,
        // which a guest's `exit(err)` (1) never gives.
        Err(error)
            if error
                .downcast_ref::<RunError>()
                .is_some_and(RunError::did_not_finish) =>
        {
            eprintln!(
                "error: {}",
                reprise_host::runtime::component::one_line(&error)
            );
            return Ok(ExitCode::from(TRAP_EXIT_CODE));
        }
        Err(error) => return Err(error),
    };
    // Exit statuses are one byte; a code that does not fit still fails.
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
