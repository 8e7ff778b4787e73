//! `reprise hint show|set|clear`.

use crate::cli::HintCommand;
use anyhow::Context as _;
use reprise_hint::ReuseHint;
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
