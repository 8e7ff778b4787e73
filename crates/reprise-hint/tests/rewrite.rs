//! `set_hint` / `clear_hint`: only the top-level hint changes, the rest is
//! byte-for-byte, and the output still validates.

use std::borrow::Cow;

use reprise_hint::{HintError, ReuseHint, SECTION_NAME, clear_hint, inspect, set_hint};
use wasm_encoder::{
    Component, ComponentSection, CustomSection, Module, ModuleSection, NestedComponentSection,
};
use wasmparser::{Validator, WasmFeatures};

fn validate(wasm: &[u8]) {
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(wasm)
        .expect("output validates");
}

fn custom(name: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    CustomSection {
        name: Cow::Borrowed(name),
        data: Cow::Borrowed(data),
    }
    .append_to_component(&mut bytes);
    bytes
}

fn hint_section(payload: &str) -> Vec<u8> {
    custom(SECTION_NAME, payload.as_bytes())
}

/// The encoded sections of a component, kept apart so tests can state the
/// exact expected output as a concatenation.
struct Parts {
    header: Vec<u8>,
    module: Vec<u8>,
    nested: Vec<u8>,
    keep_first: Vec<u8>,
    keep_last: Vec<u8>,
}

fn parts() -> Parts {
    let mut module = Module::new();
    module.section(&CustomSection {
        name: SECTION_NAME.into(),
        data: b"v1 fresh".into(),
    });
    module.section(&CustomSection {
        name: "producers-ish".into(),
        data: (0..=255u8).collect::<Vec<u8>>().into(),
    });
    let mut module_bytes = Vec::new();
    ModuleSection(&module).append_to_component(&mut module_bytes);

    let mut inner = Component::new();
    inner.section(&CustomSection {
        name: SECTION_NAME.into(),
        data: b"v1 reuse max-calls=4".into(),
    });
    let mut nested = Vec::new();
    NestedComponentSection(&inner).append_to_component(&mut nested);

    Parts {
        header: Component::new().finish(),
        module: module_bytes,
        nested,
        keep_first: custom("keep-me", b"\x00\x01 first \xff"),
        keep_last: custom("component-name-ish", b"last"),
    }
}

fn concat(pieces: &[&[u8]]) -> Vec<u8> {
    pieces.concat()
}

#[test]
fn set_replaces_the_top_level_section_in_place() {
    let p = parts();
    let input = concat(&[
        &p.header,
        &p.keep_first,
        &p.module,
        &hint_section("v1 reuse"),
        &p.nested,
        &p.keep_last,
    ]);
    validate(&input);
    let hint: ReuseHint = "v1 reuse max-concurrency=3 max-calls=100".parse().unwrap();

    let output = set_hint(&input, &hint).unwrap();

    let expected = concat(&[
        &p.header,
        &p.keep_first,
        &p.module,
        &hint_section("v1 reuse max-calls=100 max-concurrency=3"),
        &p.nested,
        &p.keep_last,
    ]);
    assert_eq!(output, expected);
    validate(&output);
    assert_eq!(inspect(&output).unwrap().effective, Some(hint));
}

#[test]
fn set_appends_when_there_is_no_top_level_section() {
    let p = parts();
    let input = concat(&[&p.header, &p.module, &p.keep_first, &p.nested]);
    let output = set_hint(&input, &ReuseHint::fresh()).unwrap();
    assert_eq!(output, concat(&[&input, &hint_section("v1 fresh")]));
    validate(&output);

    let report = inspect(&output).unwrap();
    assert_eq!(report.effective, Some(ReuseHint::fresh()));
    // The nested hints are still there, now shadowed.
    let paths: Vec<&str> = report.sources.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        ["component", "component/module[0]", "component/component[0]"]
    );
}

#[test]
fn set_keeps_the_first_of_duplicate_top_level_sections_and_drops_the_rest() {
    let p = parts();
    let input = concat(&[
        &p.header,
        &hint_section("v1 reuse"),
        &p.module,
        &hint_section("v1 garbage"),
        &p.keep_last,
        &hint_section("v9"),
    ]);
    assert!(matches!(
        inspect(&input),
        Err(HintError::DuplicateSection { .. })
    ));

    let output = set_hint(&input, &ReuseHint::reuse(None, None)).unwrap();
    assert_eq!(
        output,
        concat(&[
            &p.header,
            &hint_section("v1 reuse"),
            &p.module,
            &p.keep_last
        ])
    );
    validate(&output);
}

#[test]
fn set_is_idempotent() {
    let p = parts();
    let input = concat(&[&p.header, &p.module, &p.nested]);
    let hint = "v1 reuse max-calls=1".parse().unwrap();
    let once = set_hint(&input, &hint).unwrap();
    assert_eq!(set_hint(&once, &hint).unwrap(), once);
}

#[test]
fn clear_removes_every_top_level_section_and_nothing_else() {
    let p = parts();
    let input = concat(&[
        &p.header,
        &hint_section("v1 reuse"),
        &p.keep_first,
        &p.module,
        &hint_section("v1 reuse"),
        &p.nested,
    ]);
    let output = clear_hint(&input).unwrap();
    assert_eq!(
        output,
        concat(&[&p.header, &p.keep_first, &p.module, &p.nested])
    );
    validate(&output);
    // Back to the composition of the nested hints: fresh beats reuse.
    let report = inspect(&output).unwrap();
    assert_eq!(report.effective, Some(ReuseHint::fresh()));
    assert_eq!(report.conflicts.len(), 1);
}

#[test]
fn clear_then_show_is_none_without_nested_hints() {
    let p = parts();
    let input = concat(&[&p.header, &p.keep_first, &hint_section("v1 fresh")]);
    let output = clear_hint(&input).unwrap();
    assert_eq!(output, concat(&[&p.header, &p.keep_first]));
    assert_eq!(inspect(&output).unwrap().effective, None);
    // Clearing what is not there changes nothing.
    assert_eq!(clear_hint(&output).unwrap(), output);
}

#[test]
fn rewriting_a_real_component_keeps_it_valid() {
    let input = wat::parse_str(
        r#"(component $app
            (core module $m
                (@custom "instance-reuse-hint" "v1 reuse max-calls=8")
                (func (export "run") (result i32) i32.const 42))
            (core instance $i (instantiate $m))
            (func (export "run") (result s32) (canon lift (core func $i "run")))
        )"#,
    )
    .unwrap();
    validate(&input);
    for hint in [
        "v1 fresh",
        "v1 reuse",
        "v1 reuse max-calls=2 max-concurrency=1",
    ] {
        let hint: ReuseHint = hint.parse().unwrap();
        let output = set_hint(&input, &hint).unwrap();
        validate(&output);
        assert_eq!(inspect(&output).unwrap().effective, Some(hint));
        let cleared = clear_hint(&output).unwrap();
        assert_eq!(cleared, input);
    }
}

#[test]
fn rewriting_refuses_what_is_not_a_component() {
    let module = wat::parse_str("(module)").unwrap();
    let hint = ReuseHint::fresh();
    assert_eq!(set_hint(&module, &hint), Err(HintError::NotAComponent));
    assert_eq!(clear_hint(&module), Err(HintError::NotAComponent));
    assert_eq!(set_hint(b"not wasm", &hint), Err(HintError::NotWasm));

    let p = parts();
    let truncated = concat(&[&p.header, &p.module]);
    let truncated = &truncated[..truncated.len() - 2];
    assert!(matches!(
        clear_hint(truncated),
        Err(HintError::InvalidWasm { .. })
    ));
}
