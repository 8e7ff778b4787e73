//! Parsers for the human-friendly values flags take: durations (`500ms`,
//! `30s`, `1m`) and byte sizes (`64MiB`, `512k`, `1048576`).

use std::time::Duration;

/// A duration that does not parse, with humantime's reason.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("invalid duration `{text}`: {reason} (write it with a unit, e.g. `500ms`, `30s`, `2m`)")]
pub struct DurationError {
    text: String,
    reason: humantime::DurationError,
}

/// Parses a duration such as `250ms`, `5s`, `1m 30s`. A bare number is
/// rejected: `--timeout 5` is ambiguous between seconds and milliseconds.
pub fn duration(text: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(text).map_err(|reason| DurationError {
        text: text.to_string(),
        reason,
    })
}

/// A per-call time limit as given to `--timeout`: a duration, or `none`
/// for no limit at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallTimeout(pub Option<Duration>);

/// Why a `--timeout` value was refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum TimeoutError {
    #[error(transparent)]
    Duration(#[from] DurationError),
    /// Zero, which would fail every call; "no limit" is spelled `none`.
    #[error("a timeout of `{0}` would stop every call at once; write `none` for no limit")]
    Zero(String),
}

/// Parses `--timeout`: a duration (`500ms`, `30s`), or `none`. Zero is
/// refused: it would fail every call, and "no limit" is spelled `none`.
pub fn call_timeout(text: &str) -> Result<CallTimeout, TimeoutError> {
    if text == "none" {
        return Ok(CallTimeout(None));
    }
    let limit = duration(text)?;
    if limit.is_zero() {
        return Err(TimeoutError::Zero(text.to_string()));
    }
    Ok(CallTimeout(Some(limit)))
}

/// Why a byte size was refused; each holds the text as written.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SizeError {
    /// Not a number with a known unit.
    #[error("invalid size `{0}` (write e.g. `64MiB`, `512k`, `1G` or a number of bytes)")]
    Invalid(String),
    /// More bytes than a `u64` holds.
    #[error("size `{0}` is too large")]
    TooLarge(String),
    #[error("size `{0}` must be greater than zero")]
    Zero(String),
}

/// Parses a byte size: a decimal number with an optional unit. `k`/`m`/`g`
/// (and `KB`/`MB`/`GB`) are decimal powers of 1000, `KiB`/`MiB`/`GiB` binary
/// powers of 1024, matching the units operators see in `free` and Kubernetes.
pub fn size(text: &str) -> Result<u64, SizeError> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let invalid = || SizeError::Invalid(text.to_string());
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        _ => return Err(invalid()),
    };
    let bytes = number
        .checked_mul(multiplier)
        .ok_or_else(|| SizeError::TooLarge(text.to_string()))?;
    if bytes == 0 {
        return Err(SizeError::Zero(text.to_string()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_durations_or_none() {
        assert_eq!(
            call_timeout("5s"),
            Ok(CallTimeout(Some(Duration::from_secs(5))))
        );
        assert_eq!(call_timeout("none"), Ok(CallTimeout(None)));
        assert!(
            call_timeout("0s")
                .unwrap_err()
                .to_string()
                .contains("`none`")
        );
        assert!(call_timeout("5").is_err());
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("2m").unwrap(), Duration::from_secs(120));
        assert!(
            duration("5")
                .unwrap_err()
                .to_string()
                .contains("with a unit")
        );
    }

    #[test]
    fn sizes_distinguish_decimal_and_binary_units() {
        assert_eq!(size("64MiB").unwrap(), 64 << 20);
        assert_eq!(size("64M").unwrap(), 64_000_000);
        assert_eq!(size("4096").unwrap(), 4096);
        assert_eq!(size("1 GiB").unwrap(), 1 << 30);
    }

    #[test]
    fn bad_sizes_are_named() {
        assert!(size("lots").unwrap_err().to_string().contains("`lots`"));
        assert!(
            size("12parsecs")
                .unwrap_err()
                .to_string()
                .contains("invalid size")
        );
        assert!(
            size("0")
                .unwrap_err()
                .to_string()
                .contains("greater than zero")
        );
        assert!(size("99999999999999999999G").is_err());
    }
}
