//! Feeds arbitrary text to the parsers of flag values: `--timeout` and the
//! other durations, the byte sizes (`--max-memory`, ...) and `--allow-net`
//! targets. None may panic; a size prints as a number that parses back to
//! itself, and a network target that parses prints as text that parses back
//! to the same target.

#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_host::runtime::net::NetTarget;

// The duration and size parsers live in the `reprise` CLI binary crate,
// which no library exposes; `units.rs` is self-contained (it needs only
// humantime), so it is compiled into this target as is.
#[allow(dead_code)]
#[path = "../../../reprise/src/units.rs"]
mod units;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let duration = units::duration(text);
    match units::call_timeout(text) {
        Ok(units::CallTimeout(None)) => assert_eq!(text, "none"),
        Ok(units::CallTimeout(Some(limit))) => {
            assert_eq!(duration, Ok(limit));
            assert!(!limit.is_zero());
        }
        Err(_) => assert!(text != "none" && duration.map_or(true, |d| d.is_zero())),
    }

    if let Ok(bytes) = units::size(text) {
        assert!(bytes > 0);
        assert_eq!(units::size(&bytes.to_string()), Ok(bytes), "{text:?}");
    }

    if let Ok(target) = text.parse::<NetTarget>() {
        let printed = target.to_string();
        assert_eq!(
            printed.parse::<NetTarget>(),
            Ok(target.clone()),
            "{text:?} parses to {target:?}, printed as {printed:?}"
        );
    }
});
