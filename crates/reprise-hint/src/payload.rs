//! The hint value and its one-line text payload, `v1 MODE [KEY=VALUE ...]`.
//!
//! The grammar is deliberately strict (single spaces, no terminator, no
//! signs): the payload is written by tools, not people, and a strict reader
//! turns a producer bug (a trailing `\n` from `echo`, a NUL from a C string)
//! into a precise error instead of a silently different hint on another host.

use std::fmt;
use std::num::{IntErrorKind, NonZeroU32, NonZeroU64, ParseIntError};
use std::str::FromStr;

use crate::encode::Canonical;
use crate::error::PayloadError;

/// Name of the custom section that carries the hint.
pub const SECTION_NAME: &str = "instance-reuse-hint";

/// Largest accepted payload, in bytes. A real hint is a few dozen bytes; the
/// limit keeps a hostile binary from making readers copy and report
/// megabytes.
pub const MAX_PAYLOAD_LEN: usize = 4096;

/// Longest field quoted back in an error message, in characters, so that one
/// bad 4 KiB field still yields a readable one-line message.
const MAX_QUOTED_CHARS: usize = 64;

/// What a component says about being called more than once per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Designed to be reused: initialization is worth amortizing over calls.
    Reuse,
    /// Not designed to be reused: every call should get a new instance.
    Fresh,
}

impl Mode {
    /// The mode's keyword in the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Reuse => "reuse",
            Mode::Fresh => "fresh",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed `v1` reuse hint.
///
/// The fields are private so that bounds can only exist together with
/// [`Mode::Reuse`]: a `fresh` hint with a `max-calls` is unrepresentable, just
/// as it is unparsable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReuseHint {
    mode: Mode,
    max_calls: Option<NonZeroU64>,
    max_concurrency: Option<NonZeroU32>,
}

impl ReuseHint {
    /// `v1 fresh`.
    pub const fn fresh() -> Self {
        ReuseHint {
            mode: Mode::Fresh,
            max_calls: None,
            max_concurrency: None,
        }
    }

    /// `v1 reuse` with optional bounds; `None` means "no bound from the
    /// component" (the host's own limit applies).
    pub const fn reuse(max_calls: Option<NonZeroU64>, max_concurrency: Option<NonZeroU32>) -> Self {
        ReuseHint {
            mode: Mode::Reuse,
            max_calls,
            max_concurrency,
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Calls one instance should serve at most (`max-calls`); always `None`
    /// for `fresh`.
    pub fn max_calls(&self) -> Option<NonZeroU64> {
        self.max_calls
    }

    /// Concurrent calls one instance accepts at most (`max-concurrency`);
    /// always `None` for `fresh`.
    pub fn max_concurrency(&self) -> Option<NonZeroU32> {
        self.max_concurrency
    }

    /// Parses the raw data of an `instance-reuse-hint` section.
    ///
    /// Checks, in order: size ([`MAX_PAYLOAD_LEN`]), UTF-8, then the version
    /// field, and only for `v1` the rest of the grammar. The version is looked
    /// at before anything else about the text so that a future version is
    /// free to change everything after its version field.
    pub fn from_payload(payload: &[u8]) -> Result<Self, PayloadError> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(PayloadError::TooLarge { len: payload.len() });
        }
        let text = std::str::from_utf8(payload).map_err(|e| PayloadError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        parse_text(text)
    }
}

/// Parses payload text; same rules as [`ReuseHint::from_payload`].
impl FromStr for ReuseHint {
    type Err = PayloadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReuseHint::from_payload(s.as_bytes())
    }
}

/// The canonical payload: `v1 MODE`, then `max-calls`, then
/// `max-concurrency`, each only when set. Parsing it gives back the same hint.
impl fmt::Display for ReuseHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical().as_str())
    }
}

impl ReuseHint {
    /// The canonical payload, from the one encoder the guest crate uses too.
    pub const fn canonical(&self) -> Canonical {
        let max_calls = match self.max_calls {
            Some(n) => Some(n.get()),
            None => None,
        };
        let max_concurrency = match self.max_concurrency {
            Some(n) => Some(n.get()),
            None => None,
        };
        Canonical::new(matches!(self.mode, Mode::Reuse), max_calls, max_concurrency)
    }
}

#[derive(Clone, Copy)]
enum Key {
    MaxCalls,
    MaxConcurrency,
}

impl Key {
    fn as_str(self) -> &'static str {
        match self {
            Key::MaxCalls => "max-calls",
            Key::MaxConcurrency => "max-concurrency",
        }
    }
}

fn parse_text(text: &str) -> Result<ReuseHint, PayloadError> {
    if text.is_empty() {
        return Err(PayloadError::Empty);
    }
    let version = text.split(' ').next().unwrap_or_default();
    if is_version(version) && version != "v1" {
        return Err(PayloadError::UnsupportedVersion {
            version: quote(version),
        });
    }
    check_separators(text)?;

    let mut fields = text.split(' ');
    match fields.next() {
        Some("v1") => {}
        other => {
            return Err(PayloadError::MissingVersion {
                found: quote(other.unwrap_or_default()),
            });
        }
    }
    let mode = match fields.next() {
        None => return Err(PayloadError::MissingMode),
        Some("reuse") => Mode::Reuse,
        Some("fresh") => Mode::Fresh,
        Some(other) => {
            return Err(PayloadError::UnknownMode {
                found: quote(other),
            });
        }
    };
    if mode == Mode::Fresh {
        return match fields.next() {
            None => Ok(ReuseHint::fresh()),
            Some(field) => Err(PayloadError::FieldWithFresh {
                field: quote(field),
            }),
        };
    }

    let mut max_calls = None;
    let mut max_concurrency = None;
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            return Err(PayloadError::NotKeyValue {
                field: quote(field),
            });
        };
        match key {
            "max-calls" => {
                set_once(&mut max_calls, Key::MaxCalls, value, u64::MAX)?;
            }
            "max-concurrency" => {
                set_once(
                    &mut max_concurrency,
                    Key::MaxConcurrency,
                    value,
                    u32::MAX.into(),
                )?;
            }
            _ => return Err(PayloadError::UnknownKey { key: quote(key) }),
        }
    }
    Ok(ReuseHint::reuse(max_calls, max_concurrency))
}

/// `v` followed by one or more ASCII digits: the shape every version of the
/// format starts with.
fn is_version(field: &str) -> bool {
    field
        .strip_prefix('v')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Enforces "one line, fields separated by single spaces".
fn check_separators(text: &str) -> Result<(), PayloadError> {
    if let Some((offset, found)) = text
        .char_indices()
        .find(|&(_, c)| c != ' ' && (c.is_whitespace() || c.is_control()))
    {
        return Err(PayloadError::UnexpectedCharacter { found, offset });
    }
    if text.starts_with(' ') {
        return Err(PayloadError::LeadingSpace);
    }
    if text.ends_with(' ') {
        return Err(PayloadError::TrailingSpace);
    }
    if let Some(offset) = text.find("  ") {
        return Err(PayloadError::RepeatedSpace { offset: offset + 1 });
    }
    Ok(())
}

fn set_once<T: FromStr<Err = ParseIntError>>(
    slot: &mut Option<T>,
    key: Key,
    value: &str,
    max: u64,
) -> Result<(), PayloadError> {
    if slot.is_some() {
        return Err(PayloadError::DuplicateKey { key: key.as_str() });
    }
    *slot = Some(parse_bound(key, value, max)?);
    Ok(())
}

/// Parses a bound: ASCII digits only (so no `+`, which Rust's integer parser
/// would otherwise accept), at least 1, at most `max`.
fn parse_bound<T: FromStr<Err = ParseIntError>>(
    key: Key,
    value: &str,
    max: u64,
) -> Result<T, PayloadError> {
    let key = key.as_str();
    if value.is_empty() {
        return Err(PayloadError::EmptyValue { key });
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PayloadError::NotANumber {
            key,
            value: quote(value),
        });
    }
    value.parse::<T>().map_err(|e| match e.kind() {
        IntErrorKind::Zero => PayloadError::Zero {
            key,
            value: quote(value),
        },
        IntErrorKind::PosOverflow => PayloadError::OutOfRange {
            key,
            value: quote(value),
            max,
        },
        _ => PayloadError::NotANumber {
            key,
            value: quote(value),
        },
    })
}

/// A field as quoted in an error message, cut to [`MAX_QUOTED_CHARS`].
fn quote(field: &str) -> String {
    match field.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}...", &field[..cut]),
        None => field.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(payload: &str) -> PayloadError {
        payload
            .parse::<ReuseHint>()
            .expect_err(&format!("{payload:?} should be rejected"))
    }

    fn nz64(n: u64) -> Option<NonZeroU64> {
        NonZeroU64::new(n)
    }

    fn nz32(n: u32) -> Option<NonZeroU32> {
        NonZeroU32::new(n)
    }

    #[test]
    fn parses_every_valid_shape() {
        let cases = [
            ("v1 fresh", ReuseHint::fresh()),
            ("v1 reuse", ReuseHint::reuse(None, None)),
            ("v1 reuse max-calls=1", ReuseHint::reuse(nz64(1), None)),
            (
                "v1 reuse max-concurrency=16",
                ReuseHint::reuse(None, nz32(16)),
            ),
            (
                "v1 reuse max-calls=100 max-concurrency=4",
                ReuseHint::reuse(nz64(100), nz32(4)),
            ),
            (
                "v1 reuse max-concurrency=4 max-calls=100",
                ReuseHint::reuse(nz64(100), nz32(4)),
            ),
            (
                "v1 reuse max-calls=18446744073709551615 max-concurrency=4294967295",
                ReuseHint::reuse(nz64(u64::MAX), nz32(u32::MAX)),
            ),
            ("v1 reuse max-calls=007", ReuseHint::reuse(nz64(7), None)),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<ReuseHint>(), Ok(want), "{text}");
        }
    }

    #[test]
    fn display_is_canonical() {
        let hint: ReuseHint = "v1 reuse max-concurrency=4 max-calls=0100".parse().unwrap();
        assert_eq!(hint.to_string(), "v1 reuse max-calls=100 max-concurrency=4");
        assert_eq!(ReuseHint::fresh().to_string(), "v1 fresh");
        assert_eq!(ReuseHint::reuse(None, None).to_string(), "v1 reuse");
    }

    /// Every malformed class: (payload, expected error, expected message).
    #[test]
    fn rejects_each_malformed_payload_precisely() {
        use PayloadError::*;
        let cases: Vec<(&str, PayloadError, &str)> = vec![
            (
                "",
                Empty,
                "payload is empty; expected `v1 reuse|fresh [KEY=VALUE ...]`",
            ),
            (
                "v1 reuse\n",
                UnexpectedCharacter {
                    found: '\n',
                    offset: 8,
                },
                "unexpected '\\n' at byte 8; the payload is one line of fields separated \
                 by single spaces, with no terminator",
            ),
            (
                "v1\treuse",
                UnexpectedCharacter {
                    found: '\t',
                    offset: 2,
                },
                "unexpected '\\t' at byte 2; the payload is one line of fields separated \
                 by single spaces, with no terminator",
            ),
            (
                "v1 reuse\0",
                UnexpectedCharacter {
                    found: '\0',
                    offset: 8,
                },
                "unexpected '\\0' at byte 8; the payload is one line of fields separated \
                 by single spaces, with no terminator",
            ),
            (" v1 reuse", LeadingSpace, "payload starts with a space"),
            ("v1 reuse ", TrailingSpace, "payload ends with a space"),
            (
                "v1  reuse",
                RepeatedSpace { offset: 3 },
                "two consecutive spaces at byte 3; fields are separated by single spaces",
            ),
            (
                "reuse",
                MissingVersion {
                    found: "reuse".into(),
                },
                "expected version `v1` as the first field, found `reuse`",
            ),
            (
                "V1 reuse",
                MissingVersion { found: "V1".into() },
                "expected version `v1` as the first field, found `V1`",
            ),
            (
                "v1",
                MissingMode,
                "missing mode after `v1`; expected `reuse` or `fresh`",
            ),
            (
                "v1 sometimes",
                UnknownMode {
                    found: "sometimes".into(),
                },
                "unknown mode `sometimes`; expected `reuse` or `fresh`",
            ),
            (
                "v1 fresh max-calls=3",
                FieldWithFresh {
                    field: "max-calls=3".into(),
                },
                "mode `fresh` takes no keys, found `max-calls=3`",
            ),
            (
                "v1 reuse max-calls",
                NotKeyValue {
                    field: "max-calls".into(),
                },
                "field `max-calls` is not KEY=VALUE",
            ),
            (
                "v1 reuse max-idle=3",
                UnknownKey {
                    key: "max-idle".into(),
                },
                "unknown key `max-idle`; expected `max-calls` or `max-concurrency`",
            ),
            (
                "v1 reuse max-calls=3 max-calls=4",
                DuplicateKey { key: "max-calls" },
                "duplicate key `max-calls`",
            ),
            (
                "v1 reuse max-concurrency=1 max-calls=2 max-concurrency=1",
                DuplicateKey {
                    key: "max-concurrency",
                },
                "duplicate key `max-concurrency`",
            ),
            (
                "v1 reuse max-calls=",
                EmptyValue { key: "max-calls" },
                "`max-calls` has no value; expected a decimal integer >= 1",
            ),
            (
                "v1 reuse max-calls=0",
                Zero {
                    key: "max-calls",
                    value: "0".into(),
                },
                "`max-calls` must be at least 1, found `0`",
            ),
            (
                "v1 reuse max-concurrency=000",
                Zero {
                    key: "max-concurrency",
                    value: "000".into(),
                },
                "`max-concurrency` must be at least 1, found `000`",
            ),
            (
                "v1 reuse max-calls=ten",
                NotANumber {
                    key: "max-calls",
                    value: "ten".into(),
                },
                "`max-calls` value `ten` is not a decimal integer",
            ),
            (
                "v1 reuse max-calls=+5",
                NotANumber {
                    key: "max-calls",
                    value: "+5".into(),
                },
                "`max-calls` value `+5` is not a decimal integer",
            ),
            (
                "v1 reuse max-calls=-1",
                NotANumber {
                    key: "max-calls",
                    value: "-1".into(),
                },
                "`max-calls` value `-1` is not a decimal integer",
            ),
            (
                "v1 reuse max-calls=1.5",
                NotANumber {
                    key: "max-calls",
                    value: "1.5".into(),
                },
                "`max-calls` value `1.5` is not a decimal integer",
            ),
            (
                "v1 reuse max-calls=18446744073709551616",
                OutOfRange {
                    key: "max-calls",
                    value: "18446744073709551616".into(),
                    max: u64::MAX,
                },
                "`max-calls` value `18446744073709551616` is too large (maximum 18446744073709551615)",
            ),
            (
                "v1 reuse max-concurrency=4294967296",
                OutOfRange {
                    key: "max-concurrency",
                    value: "4294967296".into(),
                    max: u32::MAX.into(),
                },
                "`max-concurrency` value `4294967296` is too large (maximum 4294967295)",
            ),
        ];
        for (payload, want, message) in cases {
            let got = err(payload);
            assert_eq!(got, want, "{payload:?}");
            assert_eq!(got.to_string(), message, "{payload:?}");
            assert!(!got.is_unsupported_version(), "{payload:?}");
        }
    }

    #[test]
    fn rejects_non_utf8() {
        let got = ReuseHint::from_payload(b"v1 reuse max-calls=\xff").unwrap_err();
        assert_eq!(got, PayloadError::NotUtf8 { offset: 19 });
        assert_eq!(
            got.to_string(),
            "payload is not valid UTF-8 (first invalid byte at offset 19)"
        );
    }

    #[test]
    fn rejects_oversized_payload_but_accepts_the_limit() {
        let at_limit = format!(
            "v1 reuse max-calls={}",
            "0".repeat(MAX_PAYLOAD_LEN - 20) + "1"
        );
        assert_eq!(at_limit.len(), MAX_PAYLOAD_LEN);
        assert_eq!(at_limit.parse(), Ok(ReuseHint::reuse(nz64(1), None)));

        let over = format!("{at_limit}1");
        let got = err(&over);
        assert_eq!(got, PayloadError::TooLarge { len: 4097 });
        assert_eq!(
            got.to_string(),
            "payload is 4097 bytes, over the 4096-byte limit"
        );
    }

    #[test]
    fn other_versions_are_unsupported_not_malformed() {
        for (payload, version) in [
            ("v2 reuse", "v2"),
            ("v2", "v2"),
            ("v10 anything goes\there", "v10"),
            ("v0 fresh", "v0"),
            ("v01 fresh", "v01"),
        ] {
            let got = err(payload);
            assert_eq!(
                got,
                PayloadError::UnsupportedVersion {
                    version: version.into()
                }
            );
            assert!(got.is_unsupported_version());
            assert_eq!(
                got.to_string(),
                format!("unsupported hint version `{version}` (this reader understands `v1`)")
            );
        }
        // Not version-shaped: malformed, not "unsupported".
        assert!(matches!(
            err("v1.1 reuse"),
            PayloadError::MissingVersion { .. }
        ));
        assert!(matches!(
            err("v reuse"),
            PayloadError::MissingVersion { .. }
        ));
    }

    #[test]
    fn long_fields_are_cut_in_messages() {
        let key = "k".repeat(1000);
        let got = err(&format!("v1 reuse {key}=1"));
        let PayloadError::UnknownKey { key: quoted } = &got else {
            panic!("unexpected {got:?}");
        };
        assert_eq!(quoted, &format!("{}...", "k".repeat(MAX_QUOTED_CHARS)));
    }
}
