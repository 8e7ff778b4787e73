//! `reprise run`: components exporting `wasi:cli/run` (commands), run N
//! times on policy-chosen instances.
//!
//! Both `wasi:cli/run@0.2.x` (p2) and `wasi:cli/run@0.3.x` (p3, an async
//! export run in the store's event loop) are commands; a component exporting
//! both is run through 0.3, as `wasmtime run` does.
//!
//! A command built with a standard toolchain (Rust's `fn main`, C's `main`
//! through wasi-libc) traps when `run` is called a second time on the same
//! instance: wasi-libc's command entry point refuses to run twice, since
//! static constructors and destructors ran already. Reuse therefore breaks
//! such commands, and the second run's trap is explained in those terms.

use crate::front::serial::invoke::function_list;
use crate::front::serial::{Serial, SerialOptions};
use crate::pool::InstanceManager;
use crate::runtime::failure::CallError;
use crate::runtime::instance::InstanceId;
use std::sync::Arc;
use wasmtime_wasi::p2::bindings::{Command, CommandIndices};
use wasmtime_wasi::p3::bindings::{Command as CommandP3, CommandIndices as CommandIndicesP3};

/// A command's `wasi:cli/run`, located once per component.
#[derive(Clone)]
pub enum RunIndices {
    P2(CommandIndices),
    P3(CommandIndicesP3),
}

/// A command's `wasi:cli/run`, bound to one instance.
pub enum RunExport {
    P2(Command),
    P3(CommandP3),
}

impl RunExport {
    /// Calls `run` once: `Ok(Err(()))` when it returned `err`.
    pub async fn call_run(
        &self,
        store: &mut wasmtime::Store<crate::runtime::instance::InstanceState>,
    ) -> wasmtime::Result<Result<(), ()>> {
        match self {
            RunExport::P2(command) => command.wasi_cli_run().call_run(store).await,
            RunExport::P3(command) => store
                .run_concurrent(async move |accessor| {
                    command.wasi_cli_run().call_run(accessor).await
                })
                .await
                .and_then(|result| result),
        }
    }
}

/// Why `reprise run` stopped before running every repetition.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "the component does not export wasi:cli/run (0.2.x or 0.3.x), so it is not a command; \
         its functions: {functions} (use `reprise call` for those)"
    )]
    NotACommand { functions: String },
    #[error(
        "run {run} trapped on instance {instance}, which had run before: a command built with a \
         standard toolchain (Rust's `fn main`, C's `main`) can run only once per instance, and its \
         entry point traps when called again. Give every run a new instance: declare the `fresh` \
         hint (`reprise hint set {file} 'v1 fresh' -o OUT`) or run with `--policy fresh` \
         ({trap})"
    )]
    RunsOnlyOnce {
        run: u64,
        instance: InstanceId,
        file: String,
        trap: String,
    },
    #[error("run {run} (instance {instance}) {what}")]
    Failed {
        run: u64,
        instance: InstanceId,
        what: String,
    },
}

impl RunError {
    /// Whether a run began but did not finish (it trapped, ran out of time
    /// or memory), so it has no exit code.
    pub fn did_not_finish(&self) -> bool {
        matches!(
            self,
            RunError::RunsOnlyOnce { .. } | RunError::Failed { .. }
        )
    }
}

/// Prepares `wasi:cli/run` for the component of `manager`: 0.3 when it is
/// exported (and the engine can run it), else 0.2.
pub fn command_indices(manager: &InstanceManager) -> Result<RunIndices, RunError> {
    if manager.engine().engine.get_concurrency_support()
        && let Ok(indices) = CommandIndicesP3::new(manager.instance_pre())
    {
        return Ok(RunIndices::P3(indices));
    }
    CommandIndices::new(manager.instance_pre())
        .map(RunIndices::P2)
        .map_err(|_| RunError::NotACommand {
            functions: function_list(manager.component(), &manager.engine().engine),
        })
}

/// Runs the command `repeat` times and returns the exit code of the first
/// run that failed (a `run` returning `err` is 1, `exit(n)` is n), else 0.
/// A trap stops the repetitions: the command did not finish, so it has no
/// exit code. `file` names the component in advice to the user.
pub async fn run_repeatedly(
    manager: Arc<InstanceManager>,
    repeat: u64,
    options: SerialOptions,
    file: &str,
) -> anyhow::Result<i32> {
    let indices = command_indices(&manager)?;
    let bind = Arc::new(move |store: &mut _, instance: &_| match &indices {
        RunIndices::P2(indices) => indices.load(store, instance).map(RunExport::P2),
        RunIndices::P3(indices) => indices.load(store, instance).map(RunExport::P3),
    });
    let mut serial = Serial::<RunExport>::new(manager, bind, options);
    let result = async {
        serial.warm_up().await?;
        let mut first_failure = 0;
        for run in 1..=repeat {
            let served = serial
                .call(async |store, command| command.call_run(store).await)
                .await?;
            let code = match served.result {
                Ok(Ok(())) => 0,
                Ok(Err(())) => 1,
                Err(failure) => match failure.exit_code() {
                    Some(code) => code,
                    None => {
                        let reused = served.earlier_calls > 0;
                        return Err(explain(run, served.instance, reused, file, &failure).into());
                    }
                },
            };
            if first_failure == 0 {
                first_failure = code;
            }
        }
        Ok(first_failure)
    }
    .await;
    serial.finish().await;
    result
}

/// Turns a failed run into what the user should know: a trap on an
/// instance that already ran is the run-once rule of commands.
fn explain(
    run: u64,
    instance: InstanceId,
    reused: bool,
    file: &str,
    failure: &CallError,
) -> RunError {
    match failure.trap() {
        Some(trap) if reused => RunError::RunsOnlyOnce {
            run,
            instance,
            file: file.to_string(),
            trap,
        },
        _ => RunError::Failed {
            run,
            instance,
            what: failure.to_string(),
        },
    }
}
