//! Setting or removing the top-level component's own hint.
//!
//! Only that one section changes; every other byte of the input is copied
//! from its original range, so signatures over other sections, producer
//! metadata and nested modules (including their own hints) survive exactly.
//! Nested components and modules are never re-encoded: their whole byte range
//! is copied as one piece.

use std::ops::Range;

use wasm_encoder::{ComponentSection, CustomSection};
use wasmparser::Payload;

use crate::error::HintError;
use crate::payload::{ReuseHint, SECTION_NAME};
use crate::walk::component_payloads;

/// Returns `wasm` with the top-level component's hint set to `hint`.
///
/// The first top-level `instance-reuse-hint` section is replaced in place and
/// any further ones are dropped (so this also repairs a duplicate or a
/// malformed top-level hint); without one, the section is appended at the
/// end. Hints of nested components and modules are left alone: the
/// top-level hint overrides them anyway.
pub fn set_hint(wasm: &[u8], hint: &ReuseHint) -> Result<Vec<u8>, HintError> {
    let mut section = Vec::new();
    CustomSection {
        name: SECTION_NAME.into(),
        data: hint.to_string().into_bytes().into(),
    }
    .append_to_component(&mut section);
    rewrite(wasm, Some(&section))
}

/// Returns `wasm` without any top-level `instance-reuse-hint` section, so the
/// effective hint falls back to the composition of the nested ones.
pub fn clear_hint(wasm: &[u8]) -> Result<Vec<u8>, HintError> {
    rewrite(wasm, None)
}

enum Piece<'a> {
    /// A byte range of the input, copied as is.
    Original(Range<usize>),
    /// The new hint section.
    New(&'a [u8]),
}

/// Replaces the first top-level hint section by `section` (or appends it),
/// drops the other top-level hint sections, and copies everything else.
fn rewrite(wasm: &[u8], section: Option<&[u8]>) -> Result<Vec<u8>, HintError> {
    // Plan first, copy after: a nested section's range is only known to be in
    // bounds once the parser has gone through it without error.
    let mut pieces = Vec::new();
    let mut pending = section;
    // Sections are contiguous, so a section starts where the previous one
    // (or the header) ended; wasmparser's ranges exclude the section header.
    let mut next_start = 0;
    for item in component_payloads(wasm)? {
        let (depth, payload) = item?;
        if depth != 0 {
            continue;
        }
        let end = match &payload {
            Payload::Version { range, .. } => range.end,
            Payload::End(_) => break,
            other => match other.as_section() {
                Some((_, range)) => range.end,
                None => continue,
            },
        };
        match &payload {
            Payload::CustomSection(custom) if custom.name() == SECTION_NAME => {
                pieces.extend(pending.take().map(Piece::New));
            }
            _ => pieces.push(Piece::Original(next_start..end)),
        }
        next_start = end;
    }
    pieces.extend(pending.map(Piece::New));

    let mut out = Vec::with_capacity(wasm.len() + section.map_or(0, <[u8]>::len));
    for piece in pieces {
        match piece {
            Piece::Original(range) => {
                let start = range.start;
                let bytes = wasm.get(range).ok_or_else(|| HintError::InvalidWasm {
                    message: format!(
                        "section at offset {start:#x} extends past the end of the input"
                    ),
                })?;
                out.extend_from_slice(bytes);
            }
            Piece::New(bytes) => out.extend_from_slice(bytes),
        }
    }
    Ok(out)
}
