//! The canonical payload, encoded at compile time.
//!
//! `const` and `core` only, so the guest crate (`reprise-guest`, `no_std`)
//! builds its `#[link_section]` static with the same encoder that
//! [`ReuseHint`](crate::ReuseHint)'s `Display` and `reprise hint set` use:
//! there is one writer of the format.

/// The longest canonical payload:
/// `v1 reuse max-calls=18446744073709551615 max-concurrency=4294967295`.
pub const MAX_CANONICAL_LEN: usize = 66;

/// A hint's canonical payload: `v1 MODE`, then `max-calls`, then
/// `max-concurrency`, each only when set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Canonical {
    buf: [u8; MAX_CANONICAL_LEN],
    len: usize,
}

impl Canonical {
    /// Encodes a `reuse` hint (`reuse` true) or a `fresh` one. Bounds of
    /// 0 and bounds on a `fresh` hint are not hints at all: in a `const`
    /// they fail compilation.
    pub const fn new(reuse: bool, max_calls: Option<u64>, max_concurrency: Option<u32>) -> Self {
        assert!(
            reuse || (max_calls.is_none() && max_concurrency.is_none()),
            "a `fresh` hint has no bounds"
        );
        let mut out = Canonical {
            buf: [0; MAX_CANONICAL_LEN],
            len: 0,
        };
        out = out.push(if reuse { "v1 reuse" } else { "v1 fresh" });
        if let Some(n) = max_calls {
            assert!(n >= 1, "max-calls is at least 1");
            out = out.push(" max-calls=").push_decimal(n);
        }
        if let Some(n) = max_concurrency {
            assert!(n >= 1, "max-concurrency is at least 1");
            out = out.push(" max-concurrency=").push_decimal(n as u64);
        }
        out
    }

    /// The payload's length in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Always false: every payload has a version and a mode.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The payload's bytes.
    pub const fn as_bytes(&self) -> &[u8] {
        self.buf.split_at(self.len).0
    }

    /// The payload as text.
    pub const fn as_str(&self) -> &str {
        match core::str::from_utf8(self.as_bytes()) {
            Ok(text) => text,
            Err(_) => panic!("the payload is ASCII"),
        }
    }

    /// The payload as an array of exactly its length, for a `static`:
    /// `static HINT: [u8; P.len()] = P.to_array();`.
    pub const fn to_array<const N: usize>(&self) -> [u8; N] {
        assert!(N == self.len, "the array must be as long as the payload");
        let mut out = [0; N];
        let mut i = 0;
        while i < N {
            out[i] = self.buf[i];
            i += 1;
        }
        out
    }

    const fn push(mut self, text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            self.buf[self.len] = bytes[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    const fn push_decimal(mut self, n: u64) -> Self {
        let mut digits = 1;
        let mut rest = n / 10;
        while rest > 0 {
            digits += 1;
            rest /= 10;
        }
        let mut rest = n;
        let mut i = digits;
        while i > 0 {
            i -= 1;
            self.buf[self.len + i] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        self.len += digits;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_canonical() {
        assert_eq!(Canonical::new(false, None, None).as_str(), "v1 fresh");
        assert_eq!(Canonical::new(true, None, None).as_str(), "v1 reuse");
        assert_eq!(
            Canonical::new(true, Some(100), Some(8)).as_str(),
            "v1 reuse max-calls=100 max-concurrency=8"
        );
        assert_eq!(
            Canonical::new(true, None, Some(1)).as_str(),
            "v1 reuse max-concurrency=1"
        );
        let longest = Canonical::new(true, Some(u64::MAX), Some(u32::MAX));
        assert_eq!(
            longest.as_str(),
            "v1 reuse max-calls=18446744073709551615 max-concurrency=4294967295"
        );
        assert_eq!(longest.len(), MAX_CANONICAL_LEN);
    }

    #[test]
    fn the_array_form_holds_the_payload() {
        const HINT: Canonical = Canonical::new(true, Some(5_000_000_000), None);
        static SECTION: [u8; HINT.len()] = HINT.to_array();
        assert_eq!(&SECTION, b"v1 reuse max-calls=5000000000");
    }
}
