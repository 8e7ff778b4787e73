//! The two error types of this crate.
//!
//! They are split by *what* was wrong, because callers react differently:
//! [`PayloadError`] is about the text of one hint (a CLI argument, or the data
//! of one section), [`HintError`] is about a whole binary. Every `Display` is a
//! single line that says exactly what is wrong, so a CLI can print
//! `error: {e}` and a host can log it without further context.

use thiserror::Error;

use crate::payload::MAX_PAYLOAD_LEN;

/// Why a reuse-hint payload was rejected.
///
/// Every variant except [`PayloadError::UnsupportedVersion`] means the payload
/// is *malformed*: it claims to be `v1` (or claims nothing recognisable) and
/// does not follow the grammar. An unsupported version is a different class: a
/// newer producer wrote it, so readers ignore it with a warning rather than
/// fail (see [`PayloadError::is_unsupported_version`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The payload has no bytes at all.
    #[error("payload is empty; expected `v1 reuse|fresh [KEY=VALUE ...]`")]
    Empty,
    /// The payload is larger than [`MAX_PAYLOAD_LEN`].
    #[error("payload is {len} bytes, over the {MAX_PAYLOAD_LEN}-byte limit")]
    TooLarge {
        /// Size of the rejected payload in bytes.
        len: usize,
    },
    /// The payload is not UTF-8 text.
    #[error("payload is not valid UTF-8 (first invalid byte at offset {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The first field is a version other than `v1` (`v` followed by digits).
    #[error("unsupported hint version `{version}` (this reader understands `v1`)")]
    UnsupportedVersion {
        /// The version field as written, e.g. `v2`.
        version: String,
    },
    /// A character other than a printable one or a single space: a line
    /// break (often a trailing newline), a tab, a NUL terminator, ...
    #[error(
        "unexpected {found:?} at byte {offset}; the payload is one line of fields \
         separated by single spaces, with no terminator"
    )]
    UnexpectedCharacter {
        /// The offending character.
        found: char,
        /// Its byte offset in the payload.
        offset: usize,
    },
    /// The payload starts with a space.
    #[error("payload starts with a space")]
    LeadingSpace,
    /// The payload ends with a space.
    #[error("payload ends with a space")]
    TrailingSpace,
    /// Two spaces in a row, i.e. an empty field.
    #[error("two consecutive spaces at byte {offset}; fields are separated by single spaces")]
    RepeatedSpace {
        /// Byte offset of the second space.
        offset: usize,
    },
    /// The first field is not a version at all.
    #[error("expected version `v1` as the first field, found `{found}`")]
    MissingVersion {
        /// The first field as written.
        found: String,
    },
    /// `v1` with nothing after it.
    #[error("missing mode after `v1`; expected `reuse` or `fresh`")]
    MissingMode,
    /// The second field is not a known mode.
    #[error("unknown mode `{found}`; expected `reuse` or `fresh`")]
    UnknownMode {
        /// The mode field as written.
        found: String,
    },
    /// `fresh` followed by any field: bounds only make sense for reuse.
    #[error("mode `fresh` takes no keys, found `{field}`")]
    FieldWithFresh {
        /// The first field after `fresh`.
        field: String,
    },
    /// A field after the mode that has no `=`.
    #[error("field `{field}` is not KEY=VALUE")]
    NotKeyValue {
        /// The field as written.
        field: String,
    },
    /// A key other than `max-calls` or `max-concurrency`.
    #[error("unknown key `{key}`; expected `max-calls` or `max-concurrency`")]
    UnknownKey {
        /// The key as written.
        key: String,
    },
    /// The same key twice.
    #[error("duplicate key `{key}`")]
    DuplicateKey {
        /// The repeated key.
        key: &'static str,
    },
    /// `KEY=` with nothing after the `=`.
    #[error("`{key}` has no value; expected a decimal integer >= 1")]
    EmptyValue {
        /// The key.
        key: &'static str,
    },
    /// A value with something other than ASCII digits (signs included).
    #[error("`{key}` value `{value}` is not a decimal integer")]
    NotANumber {
        /// The key.
        key: &'static str,
        /// The value as written.
        value: String,
    },
    /// A value of zero: a bound of zero calls would forbid the instance.
    #[error("`{key}` must be at least 1, found `{value}`")]
    Zero {
        /// The key.
        key: &'static str,
        /// The value as written (`0`, `000`, ...).
        value: String,
    },
    /// A value that does not fit the key's integer type.
    #[error("`{key}` value `{value}` is too large (maximum {max})")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The value as written.
        value: String,
        /// The largest accepted value.
        max: u64,
    },
}

impl PayloadError {
    /// `true` when the payload is from a newer (or older) version of the
    /// format, which readers must ignore with a warning instead of failing.
    pub fn is_unsupported_version(&self) -> bool {
        matches!(self, PayloadError::UnsupportedVersion { .. })
    }
}

/// Why a binary could not be inspected or rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HintError {
    /// The input does not start with the `\0asm` magic.
    #[error("not a WebAssembly binary (missing the `\\0asm` header)")]
    NotWasm,
    /// The input has the magic but does not parse (truncated, bad section,
    /// ...). The message is wasmparser's, with its byte offset.
    #[error("invalid WebAssembly binary: {message}")]
    InvalidWasm {
        /// wasmparser's message, including `(at offset 0x..)`.
        message: String,
    },
    /// The input is a core module. The hint belongs to components; a module
    /// must first be wrapped into one (e.g. `wasm-tools component new`).
    #[error("this is a core WebAssembly module, not a component")]
    NotAComponent,
    /// Components nested deeper than [`crate::MAX_NESTING_DEPTH`].
    #[error(
        "components and modules are nested more than {max} levels deep (at offset {offset:#x})",
        max = crate::walk::MAX_NESTING_DEPTH
    )]
    TooDeep {
        /// Byte offset of the section that went one level too deep.
        offset: usize,
    },
    /// One node carries two or more `instance-reuse-hint` sections.
    #[error(
        "{path}: more than one `instance-reuse-hint` section (the second at offset {offset:#x})"
    )]
    DuplicateSection {
        /// Path of the node, e.g. `component/module[0]`.
        path: String,
        /// Byte offset of the second section.
        offset: usize,
    },
    /// A section's payload is malformed.
    #[error("{path}: malformed `instance-reuse-hint` payload: {problem}")]
    MalformedPayload {
        /// Path of the node, e.g. `component/module[0]`.
        path: String,
        /// What is wrong with the payload. Never
        /// [`PayloadError::UnsupportedVersion`]: that is a warning.
        problem: PayloadError,
    },
}

impl HintError {
    /// Wraps a wasmparser error. Kept crate-private (instead of a `From`
    /// impl) so wasmparser types stay out of the public API.
    pub(crate) fn invalid_wasm(e: wasmparser::BinaryReaderError) -> Self {
        HintError::InvalidWasm {
            message: e.to_string(),
        }
    }
}
