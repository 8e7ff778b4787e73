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
    Ok(reprise_host::runtime::component::read_file(path)?)
}

/// Writes through a temporary file and a rename, so a failure never leaves a
/// half-written component (or clobbers the input when OUT is FILE). The
/// temporary file is created exclusively (never through a planted link) in
/// OUT's directory, gets OUT's permissions when OUT exists, and is synced
/// before it replaces OUT. A symlink OUT has its target updated, as `cp`
/// does; an OUT that exists but is no regular file (a directory, a device
/// such as `/dev/full`) is refused.
fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let cannot = || format!("cannot write {}", path.display());
    let target = follow_links(path).with_context(cannot)?;
    let existing = match std::fs::metadata(&target) {
        Ok(metadata) => Some(metadata),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(cannot),
    };
    if let Some(metadata) = &existing
        && !metadata.is_file()
    {
        anyhow::bail!(
            "cannot write {}: it exists and is not a regular file (write to a file path instead)",
            path.display()
        );
    }
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".reprise-tmp");
    // What a newly created file would get (the umask applies).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut temporary = builder.tempfile_in(dir).with_context(cannot)?;
    if let Some(metadata) = &existing {
        temporary
            .as_file()
            .set_permissions(metadata.permissions())
            .with_context(cannot)?;
    }
    temporary.write_all(bytes).with_context(cannot)?;
    temporary.as_file().sync_all().with_context(cannot)?;
    temporary
        .persist(&target)
        .map_err(|e| e.error)
        .with_context(cannot)?;
    // The rename itself reaches the disk with the directory.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// `path` with every symbolic link along its last component followed (a
/// dangling link gives the path it points to, which is then created).
fn follow_links(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let link = std::fs::read_link(&path)?;
                path = match path.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}
