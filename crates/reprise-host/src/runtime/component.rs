//! Loading a component: reading, classifying and compiling the binary.
//!
//! Users hand Reprise arbitrary files. Each way a file can be wrong gets its
//! own [`LoadError`] so the CLI can print one precise line instead of a
//! compiler backtrace.

use crate::runtime::engine::{Allocator, EngineHandle, EngineOptions};
use crate::runtime::failure::wasmtime48_texts;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where component bytes come from, kept for messages.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file named on the command line.
    File(PathBuf),
    /// Bytes compiled into the binary (the bundled example).
    Embedded {
        name: &'static str,
        bytes: &'static [u8],
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Embedded { name, .. } => write!(f, "<bundled {name}>"),
        }
    }
}

/// Why a file could not be loaded as a component.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    // Not a `source`: the message already says it, and a chained source
    // would print it twice.
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{0} is not a WebAssembly binary (it does not start with the `\\0asm` magic bytes)")]
    NotWasm(String),
    #[error(
        "{0} is a core WebAssembly module, not a component; \
         wrap it with `wasm-tools component new` or build for wasm32-wasip2"
    )]
    CoreModule(String),
    #[error("{path} is not a regular file (it is {kind})")]
    NotAFile { path: String, kind: &'static str },
    #[error(
        "{path} is too large to load: {size} bytes, more than the limit of {limit} bytes \
         (512 MiB)"
    )]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{0} is truncated: too short to be a WebAssembly binary")]
    Truncated(String),
    #[error("{source_name} is not a valid component: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
    #[error(
        "{source_name} needs more linear memory from the start than the per-instance memory cap \
         (--max-memory) allows: {detail}"
    )]
    MemoryAboveCap { source_name: String, detail: String },
}

/// The kind of binary, read from the 8-byte preamble.
#[derive(Debug, PartialEq, Eq)]
pub enum BinaryKind {
    Component,
    CoreModule,
}

/// Classifies a binary by its preamble without parsing the rest.
///
/// The preamble is `\0asm`, a 16-bit version and a 16-bit layer; layer 1 is
/// the component model, layer 0 a core module.
pub fn classify(bytes: &[u8], name: &str) -> Result<BinaryKind, LoadError> {
    if bytes.len() < 4 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm(name.to_string()));
    }
    if bytes.len() < 8 {
        return Err(LoadError::Truncated(name.to_string()));
    }
    match u16::from_le_bytes([bytes[6], bytes[7]]) {
        0 => Ok(BinaryKind::CoreModule),
        _ => Ok(BinaryKind::Component),
    }
}

/// Reads the bytes of `source`.
pub fn read(source: &Source) -> Result<Cow<'static, [u8]>, LoadError> {
    match source {
        Source::File(path) => read_file(path).map(Cow::Owned),
        Source::Embedded { bytes, .. } => Ok(Cow::Borrowed(bytes)),
    }
}

/// The largest file read as a component: larger than any real component
/// (interpreters bundled with their runtime take tens of MB), small enough
/// that a wrong file cannot exhaust memory.
pub const MAX_FILE_BYTES: u64 = 512 << 20;

/// Reads a file that should hold a WebAssembly binary, checking it before
/// reading it: it must be a regular file (not a directory, a device such as
/// `/dev/zero`, or a FIFO, which could block or never end), at most
/// [`MAX_FILE_BYTES`], and start with the `\0asm` magic bytes, which are
/// checked before the rest is read.
pub fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    use std::io::Read as _;
    let name = path.display().to_string();
    let failed = |error| LoadError::Read {
        path: name.clone(),
        error,
    };
    // Checked before opening: opening a FIFO blocks until a writer comes.
    regular(path, &std::fs::metadata(path).map_err(failed)?)?;
    let file = std::fs::File::open(path).map_err(failed)?;
    // Checked again on what was opened, in case the path changed between.
    let metadata = file.metadata().map_err(failed)?;
    regular(path, &metadata)?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge {
            path: name,
            size: metadata.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    let mut reader = file.take(MAX_FILE_BYTES + 1);
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0).min(8));
    (&mut reader)
        .take(4)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.as_slice() != b"\0asm" {
        return Err(LoadError::NotWasm(name));
    }
    bytes.reserve(usize::try_from(metadata.len()).unwrap_or(0));
    reader.read_to_end(&mut bytes).map_err(failed)?;
    // A file that grew while being read.
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge {
            path: name,
            size: bytes.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

/// Refuses anything but a regular file, naming what it is.
fn regular(path: &Path, metadata: &std::fs::Metadata) -> Result<(), LoadError> {
    let kind = metadata.file_type();
    if kind.is_file() {
        return Ok(());
    }
    #[cfg(unix)]
    let special = {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_char_device() {
            Some("a character device")
        } else if kind.is_block_device() {
            Some("a block device")
        } else if kind.is_fifo() {
            Some("a FIFO")
        } else if kind.is_socket() {
            Some("a socket")
        } else {
            None
        }
    };
    #[cfg(not(unix))]
    let special = None;
    Err(LoadError::NotAFile {
        path: path.display().to_string(),
        kind: match special {
            Some(kind) => kind,
            None if kind.is_dir() => "a directory",
            None => "not a regular file",
        },
    })
}

/// Compiles `bytes` after checking they are a component.
pub fn compile(engine: &Engine, bytes: &[u8], source: &Source) -> Result<Component, LoadError> {
    let name = source.to_string();
    if classify(bytes, &name)? == BinaryKind::CoreModule {
        return Err(LoadError::CoreModule(name));
    }
    let compiled = with_slow_notice(&name, bytes.len(), || Component::new(engine, bytes));
    compiled.map_err(|e| LoadError::Invalid {
        source_name: name,
        message: one_line(&anyhow::Error::from(e)),
    })
}

/// How long compiling may take before the user is told what is going on.
const SLOW_COMPILE: Duration = Duration::from_secs(1);

/// Runs `compile`, saying so if it takes longer than [`SLOW_COMPILE`]:
/// components from interpreted-language toolchains take seconds to compile
/// the first time, which would otherwise look like a hang.
fn with_slow_notice<T>(name: &str, size: usize, compile: impl FnOnce() -> T) -> T {
    std::thread::scope(|scope| {
        let (done, finished) = std::sync::mpsc::channel::<()>();
        scope.spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(SLOW_COMPILE) {
                tracing::info!(
                    "compiling {name} ({:.1} MB); large components take a few seconds the first \
                     time, later runs load them from the compilation cache",
                    size as f64 / 1e6
                );
            }
        });
        let compiled = compile();
        drop(done);
        compiled
    })
}

/// Builds an engine for `bytes` and compiles them on it.
///
/// A component that uses none of the component model's async features (any
/// p2 component) gets an engine without concurrency support, on which each
/// guest-to-host call skips wasmtime's task bookkeeping (`wasi:http` p2
/// requests are about a tenth cheaper). Whether it needs them is what
/// validation on that engine says; those that do compile on the full one.
pub fn load(
    options: &EngineOptions,
    bytes: &[u8],
    source: &Source,
) -> anyhow::Result<(EngineHandle, Component)> {
    if options.concurrency {
        let serial = EngineOptions {
            concurrency: false,
            ..options.clone()
        };
        match load_on(&serial, bytes, source) {
            Err(e) if matches!(e.downcast_ref(), Some(LoadError::Invalid { .. })) => {
                tracing::debug!("compiling with concurrency support: {e:#}");
            }
            loaded => return loaded,
        }
    }
    load_on(options, bytes, source)
}

/// Builds the engine `options` describe and compiles `bytes` on it.
///
/// The pooling allocator's slots have fixed limits (memory size, table
/// elements, instance size); a component that exceeds one cannot run in the
/// pool at all. Rather than refuse it, Reprise then allocates its instances
/// on demand, which is slower to instantiate but has no such limits, and
/// says so. The exception is a component whose memory starts above the
/// operator's `--max-memory`: no allocator can run it within that cap.
fn load_on(
    options: &EngineOptions,
    bytes: &[u8],
    source: &Source,
) -> anyhow::Result<(EngineHandle, Component)> {
    let engine = EngineHandle::new(options)?;
    match compile(&engine.engine, bytes, source) {
        Err(LoadError::Invalid {
            source_name,
            message,
        }) if engine.allocator == Allocator::Pooling
            && wasmtime48_texts::exceeds_pool(&message) =>
        {
            if options.max_memory.is_some() && wasmtime48_texts::memory_starts_above_slot(&message)
            {
                let detail = message.rsplit(": ").next().unwrap_or(&message).to_string();
                return Err(LoadError::MemoryAboveCap {
                    source_name,
                    detail,
                }
                .into());
            }
            tracing::warn!(
                "{source_name} does not fit the pooling allocator's slots ({message}); \
                 its instances are allocated on demand, which makes each one slower to create"
            );
            let engine = EngineHandle::on_demand(options)?;
            let component = compile(&engine.engine, bytes, source)?;
            Ok((engine, component))
        }
        compiled => Ok((engine, compiled?)),
    }
}

/// Joins an error chain into one line, the form the CLI prints.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for (i, cause) in error.chain().enumerate() {
        if i > 0 {
            out.push_str(": ");
        }
        out.push_str(&cause.to_string().replace('\n', " "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_file_is_not_wasm() {
        assert!(matches!(
            classify(b"hello world", "x"),
            Err(LoadError::NotWasm(_))
        ));
    }

    #[test]
    fn empty_file_is_not_wasm() {
        assert!(matches!(classify(b"", "x"), Err(LoadError::NotWasm(_))));
    }

    #[test]
    fn magic_without_version_is_truncated() {
        assert!(matches!(
            classify(b"\0asm\x01", "x"),
            Err(LoadError::Truncated(_))
        ));
    }

    #[test]
    fn layer_zero_is_a_core_module() {
        assert_eq!(
            classify(b"\0asm\x01\0\0\0", "x").unwrap(),
            BinaryKind::CoreModule
        );
    }

    #[test]
    fn layer_one_is_a_component() {
        assert_eq!(
            classify(b"\0asm\x0d\0\x01\0", "x").unwrap(),
            BinaryKind::Component
        );
    }

    /// A component whose one core module has a memory of `pages` 64 KiB
    /// pages and a table of `elements` entries.
    fn component_with(pages: u32, elements: u32) -> Vec<u8> {
        wat::parse_str(format!(
            "(component (core module (memory {pages}) (table {elements} funcref)))"
        ))
        .unwrap()
    }

    fn source() -> Source {
        Source::File("test.wasm".into())
    }

    #[test]
    fn a_component_too_big_for_the_pool_runs_on_demand() {
        // 200 000 table elements: more than a pool slot holds.
        let bytes = component_with(1, 200_000);
        let (engine, _) = load(&EngineOptions::default(), &bytes, &source()).unwrap();
        assert_eq!(engine.allocator, Allocator::OnDemand);
        let (engine, _) =
            load(&EngineOptions::default(), &component_with(1, 10), &source()).unwrap();
        assert_eq!(engine.allocator, Allocator::Pooling);
    }

    #[test]
    fn only_components_that_use_async_features_get_concurrency_support() {
        let (engine, _) =
            load(&EngineOptions::default(), &component_with(1, 1), &source()).unwrap();
        assert!(!engine.engine.get_concurrency_support());
        let streams = wat::parse_str("(component (type (stream u8)))").unwrap();
        let (engine, _) = load(&EngineOptions::default(), &streams, &source()).unwrap();
        assert!(engine.engine.get_concurrency_support());
    }

    #[test]
    fn memory_starting_above_the_cap_is_refused_by_name() {
        let options = EngineOptions {
            max_memory: Some(64 * 1024),
            ..EngineOptions::default()
        };
        let Err(error) = load(&options, &component_with(4, 1), &source()) else {
            panic!("a memory of 4 pages loaded under a 1-page cap");
        };
        let message = error.to_string();
        assert!(message.contains("--max-memory"), "{message}");
        assert!(message.contains("test.wasm"), "{message}");
        assert!(load(&options, &component_with(1, 1), &source()).is_ok());
    }

    /// The pool's refusals, made by wasmtime 48's compiler on a pooling
    /// engine: a table too big for a slot, and (under `--max-memory`) a
    /// memory that starts above the slot's size. Pins the words
    /// [`wasmtime48_texts`] matches.
    #[test]
    fn wasmtime48s_pool_refusals_are_recognized_by_their_words() {
        let refusal = |options: &EngineOptions, bytes: &[u8]| {
            let engine = EngineHandle::new(options).unwrap();
            assert_eq!(engine.allocator, Allocator::Pooling);
            match compile(&engine.engine, bytes, &source()) {
                Err(LoadError::Invalid { message, .. }) => message,
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("the pool took the component"),
            }
        };
        let table = refusal(&EngineOptions::default(), &component_with(1, 200_000));
        assert!(wasmtime48_texts::exceeds_pool(&table), "{table}");
        assert!(
            !wasmtime48_texts::memory_starts_above_slot(&table),
            "{table}"
        );
        let capped = EngineOptions {
            max_memory: Some(64 * 1024),
            ..EngineOptions::default()
        };
        let memory = refusal(&capped, &component_with(4, 1));
        assert!(wasmtime48_texts::exceeds_pool(&memory), "{memory}");
        assert!(
            wasmtime48_texts::memory_starts_above_slot(&memory),
            "{memory}"
        );
    }

    #[test]
    fn error_chain_becomes_one_line() {
        let e = anyhow::anyhow!("inner\ndetail").context("outer");
        assert_eq!(one_line(&e), "outer: inner detail");
    }
}
