//! Feeds arbitrary bytes to the payload parser, the binary walker and the
//! rewriter. None of them may panic, and the invariants the rest of Reprise
//! relies on must hold whenever they succeed.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use reprise_hint::{ReuseHint, SECTION_NAME, clear_hint, inspect, set_hint};
use wasm_encoder::{Component, CustomSection};

fuzz_target!(|data: &[u8]| {
    // 1. The bytes as a payload: a hint that parses prints canonically and
    //    parses back to itself.
    let parsed = ReuseHint::from_payload(data);
    if let Ok(hint) = parsed {
        assert_eq!(hint.to_string().parse::<ReuseHint>(), Ok(hint));
    }

    // 2. The same payload inside a component: the walker agrees with the
    //    parser (an unsupported version is ignored, not an error).
    let mut component = Component::new();
    component.section(&CustomSection {
        name: Cow::Borrowed(SECTION_NAME),
        data: Cow::Borrowed(data),
    });
    let report = inspect(&component.finish());
    match &parsed {
        Ok(hint) => assert_eq!(report.map(|r| r.effective), Ok(Some(*hint))),
        Err(e) if e.is_unsupported_version() => {
            assert_eq!(report.map(|r| r.effective), Ok(None));
        }
        Err(_) => assert!(report.is_err()),
    }

    // 3. The bytes as a binary: walking never panics, and rewriting a
    //    binary that walks cleanly gives one that walks to the new hint.
    let walked = inspect(data);
    let hint = ReuseHint::fresh();
    if let Ok(output) = set_hint(data, &hint)
        && walked.is_ok()
    {
        assert_eq!(inspect(&output).map(|r| r.effective), Ok(Some(hint)));
    }
    if let Ok(output) = clear_hint(data)
        && walked.is_ok()
    {
        assert!(inspect(&output).is_ok());
    }
});
