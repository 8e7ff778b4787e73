//! `reprise hint show|set|clear`, and the hint reading every command that
//! runs a component does at start.

use crate::cli::HintCommand;
use anyhow::Context as _;
use reprise_hint::{Mode, ReuseHint};
use reprise_host::component::{BinaryKind, Source, classify};
use std::path::Path;
use std::process::ExitCode;

pub fn run(command: HintCommand) -> anyhow::Result<ExitCode> {
    match command {
        HintCommand::Show { file, json } => {
            let bytes = read(&file)?;
            let report =
                reprise_hint::inspect(&bytes).with_context(|| file.display().to_string())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                println!("{report}");
            }
        }
        HintCommand::Set {
            file,
            payload,
            output,
        } => {
            let hint = ReuseHint::from_payload(payload.as_bytes())
                .with_context(|| format!("invalid hint `{payload}`"))?;
            let bytes = read(&file)?;
            let rewritten = reprise_hint::set_hint(&bytes, &hint)
                .with_context(|| file.display().to_string())?;
            write(&output, &rewritten)?;
            eprintln!("wrote {} with hint `{hint}`", output.display());
        }
        HintCommand::Clear { file, output } => {
            let bytes = read(&file)?;
            let rewritten =
                reprise_hint::clear_hint(&bytes).with_context(|| file.display().to_string())?;
            write(&output, &rewritten)?;
            eprintln!("wrote {} without a top-level hint", output.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes through a temporary file and a rename, so a failure never leaves a
/// half-written component (or clobbers the input when OUT is FILE).
fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".reprise-tmp");
    let temporary = std::path::PathBuf::from(temporary);
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The effective hint a command that runs a component (`serve`, `run`,
/// `call`) applies. A bad hint never stops a component from running: it is
/// reported and the host default applies, since the hint is advisory. Files
/// that are not components are left for the loader to reject with its own
/// message.
pub fn effective_hint(bytes: &[u8], source: &Source) -> Option<ReuseHint> {
    if !matches!(
        classify(bytes, &source.to_string()),
        Ok(BinaryKind::Component)
    ) {
        return None;
    }
    let report = match reprise_hint::inspect(bytes) {
        Ok(report) => report,
        Err(e) => {
            tracing::warn!("ignoring the reuse hint of {source}: {e}; the host default applies");
            return None;
        }
    };
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
    for conflict in &report.conflicts {
        tracing::warn!("reuse hint conflict: {conflict}");
    }
    match &report.effective {
        Some(hint) => {
            let origins: Vec<&str> = report
                .sources
                .iter()
                .filter(|s| s.overridden_by.is_none() && s.warning.is_none())
                .map(|s| s.path.as_str())
                .collect();
            let kind = match hint.mode() {
                Mode::Reuse => "asks to be reused",
                Mode::Fresh => "asks for a fresh instance per call",
            };
            tracing::info!(
                "component {kind}: reuse hint `{hint}` (from {})",
                origins.join(", ")
            );
        }
        None => tracing::info!("component declares no reuse hint"),
    }
    report.effective
}
