//! `inspect` on hand-written component trees: the composition rule, the
//! report, and every error a binary can cause.

use reprise_hint::{HintError, MAX_NESTING_DEPTH, PayloadError, Report, Source, inspect};
use serde_json::json;
use wasm_encoder::{Component, NestedComponentSection};

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("test WAT parses")
}

fn report(text: &str) -> Report {
    inspect(&wat(text)).expect("inspect succeeds")
}

fn effective(report: &Report) -> Option<String> {
    report.effective.map(|hint| hint.to_string())
}

fn source(path: &str, hint: &str) -> Source {
    Source {
        path: path.into(),
        hint: hint.into(),
        overridden_by: None,
        warning: None,
    }
}

fn error(wasm: &[u8]) -> HintError {
    inspect(wasm).expect_err("inspect fails")
}

#[test]
fn own_hint_at_top_overrides_children() {
    let report = report(
        r#"(component
            (core module (@custom "instance-reuse-hint" "v1 fresh"))
            (@custom "instance-reuse-hint" "v1 reuse max-calls=10")
            (component (@custom "instance-reuse-hint" "v1 reuse max-calls=2"))
        )"#,
    );
    assert_eq!(effective(&report).as_deref(), Some("v1 reuse max-calls=10"));
    let shadowed = |path: &str, hint: &str| Source {
        overridden_by: Some("component".into()),
        ..source(path, hint)
    };
    assert_eq!(
        report.sources,
        [
            source("component", "v1 reuse max-calls=10"),
            shadowed("component/module[0]", "v1 fresh"),
            shadowed("component/component[0]", "v1 reuse max-calls=2"),
        ]
    );
    // The children disagree, but the top-level hint settled that on purpose.
    assert!(report.conflicts.is_empty());
    assert!(report.warnings.is_empty());
}

#[test]
fn fresh_child_beats_reuse_child_and_is_reported_as_a_conflict() {
    let report = report(
        r#"(component
            (core module (@custom "instance-reuse-hint" "v1 fresh"))
            (component (@custom "instance-reuse-hint" "v1 reuse max-calls=3"))
        )"#,
    );
    assert_eq!(effective(&report).as_deref(), Some("v1 fresh"));
    assert_eq!(
        report.conflicts,
        [
            "component: fresh from component/module[0] overrides reuse from \
          component/component[0] (v1 reuse max-calls=3)"
        ]
    );
}

#[test]
fn reuse_children_combine_to_the_tightest_bounds() {
    let report = report(
        r#"(component
            (core module (@custom "instance-reuse-hint" "v1 reuse max-calls=100 max-concurrency=8"))
            (core module (@custom "instance-reuse-hint" "v1 reuse max-concurrency=4"))
            (core module)
            (component (@custom "instance-reuse-hint" "v1 reuse max-calls=50"))
        )"#,
    );
    assert_eq!(
        effective(&report).as_deref(),
        Some("v1 reuse max-calls=50 max-concurrency=4")
    );
    assert_eq!(
        report.sources,
        [
            source(
                "component/module[0]",
                "v1 reuse max-calls=100 max-concurrency=8"
            ),
            source("component/module[1]", "v1 reuse max-concurrency=4"),
            source("component/component[0]", "v1 reuse max-calls=50"),
        ]
    );
    assert!(report.conflicts.is_empty());
}

#[test]
fn hint_of_a_core_module_inside_a_nested_component_reaches_the_top() {
    let report = report(
        r#"(component
            (core module $first)
            (component
                (core module $a)
                (core module $b (@custom "instance-reuse-hint" "v1 reuse max-concurrency=2")
                    (func (export "f")))
            )
        )"#,
    );
    assert_eq!(
        effective(&report).as_deref(),
        Some("v1 reuse max-concurrency=2")
    );
    assert_eq!(
        report.sources,
        [source(
            "component/component[0]/module[1]",
            "v1 reuse max-concurrency=2"
        )]
    );
}

#[test]
fn a_conflict_deep_in_the_tree_is_reported_with_its_node() {
    let report = report(
        r#"(component
            (component
                (core module (@custom "instance-reuse-hint" "v1 reuse"))
                (core module (@custom "instance-reuse-hint" "v1 fresh"))
            )
            (core module (@custom "instance-reuse-hint" "v1 reuse max-calls=5"))
        )"#,
    );
    assert_eq!(effective(&report).as_deref(), Some("v1 fresh"));
    assert_eq!(
        report.conflicts,
        [
            "component: fresh from component/component[0] overrides reuse from \
             component/module[0] (v1 reuse max-calls=5)",
            "component/component[0]: fresh from component/component[0]/module[1] overrides \
             reuse from component/component[0]/module[0] (v1 reuse)",
        ]
    );
}

#[test]
fn no_hint_anywhere_means_none() {
    let report = report(
        r#"(component
            (core module (@custom "other" "v1 fresh") (func))
            (component (core module))
        )"#,
    );
    assert_eq!(report.effective, None);
    assert!(report.sources.is_empty() && report.conflicts.is_empty());
    assert_eq!(report.to_string(), "none");
    assert_eq!(
        report.to_json(),
        json!({"effective": null, "sources": [], "conflicts": [], "warnings": []})
    );
}

#[test]
fn unsupported_version_is_ignored_with_a_warning() {
    let report = report(
        r#"(component
            (@custom "instance-reuse-hint" "v2 fresh for=ever")
            (core module (@custom "instance-reuse-hint" "v2 reuse"))
            (core module (@custom "instance-reuse-hint" "v1 reuse max-calls=3"))
        )"#,
    );
    // The top-level v2 section does not shadow the children: it counts as absent.
    assert_eq!(effective(&report).as_deref(), Some("v1 reuse max-calls=3"));
    let ignored = |path: &str, hint: &str| Source {
        warning: Some(
            "unsupported hint version `v2` (this reader understands `v1`); section ignored".into(),
        ),
        ..source(path, hint)
    };
    assert_eq!(
        report.sources,
        [
            ignored("component", "v2 fresh for=ever"),
            ignored("component/module[0]", "v2 reuse"),
            source("component/module[1]", "v1 reuse max-calls=3"),
        ]
    );
    assert_eq!(
        report.warnings,
        [
            "component: unsupported hint version `v2` (this reader understands `v1`); \
             section ignored",
            "component/module[0]: unsupported hint version `v2` (this reader understands `v1`); \
             section ignored",
        ]
    );
}

#[test]
fn report_renders_as_text_and_json() {
    let report = report(
        r#"(component
            (core module (@custom "instance-reuse-hint" "v1 fresh"))
            (core module (@custom "instance-reuse-hint" "v1 reuse max-concurrency=2 max-calls=9"))
            (component
                (@custom "instance-reuse-hint" "v3 reuse")
                (core module (@custom "instance-reuse-hint" "v1 reuse")))
        )"#,
    );
    assert_eq!(
        report.to_string(),
        "v1 fresh\n\
         from component/module[0]: v1 fresh\n\
         from component/module[1]: v1 reuse max-calls=9 max-concurrency=2\n\
         from component/component[0]: v3 reuse (ignored)\n\
         from component/component[0]/module[0]: v1 reuse\n\
         conflict: component: fresh from component/module[0] overrides reuse from \
         component/module[1] (v1 reuse max-calls=9 max-concurrency=2), \
         component/component[0] (v1 reuse)\n\
         warning: component/component[0]: unsupported hint version `v3` \
         (this reader understands `v1`); section ignored"
    );
    assert_eq!(
        report.to_json(),
        json!({
            "effective": "v1 fresh",
            "sources": [
                {"path": "component/module[0]", "hint": "v1 fresh"},
                {"path": "component/module[1]", "hint": "v1 reuse max-calls=9 max-concurrency=2"},
                {
                    "path": "component/component[0]",
                    "hint": "v3 reuse",
                    "warning": "unsupported hint version `v3` (this reader understands `v1`); section ignored"
                },
                {"path": "component/component[0]/module[0]", "hint": "v1 reuse"},
            ],
            "conflicts": [
                "component: fresh from component/module[0] overrides reuse from component/module[1] \
                 (v1 reuse max-calls=9 max-concurrency=2), component/component[0] (v1 reuse)"
            ],
            "warnings": [
                "component/component[0]: unsupported hint version `v3` (this reader understands `v1`); section ignored"
            ],
        })
    );
}

#[test]
fn shadowed_sources_say_by_whom() {
    let report = report(
        r#"(component
            (component
                (@custom "instance-reuse-hint" "v1 reuse max-calls=7")
                (component (core module (@custom "instance-reuse-hint" "v1 fresh"))))
        )"#,
    );
    assert_eq!(effective(&report).as_deref(), Some("v1 reuse max-calls=7"));
    assert_eq!(
        report.to_json()["sources"][1],
        json!({
            "path": "component/component[0]/component[0]/module[0]",
            "hint": "v1 fresh",
            "overridden_by": "component/component[0]",
        })
    );
    assert!(
        report
            .to_string()
            .contains("from component/component[0]/component[0]/module[0]: v1 fresh (overridden by component/component[0])")
    );
}

#[test]
fn two_sections_in_one_node_is_an_error_naming_the_node() {
    let got = error(&wat(r#"(component
            (core module
                (@custom "instance-reuse-hint" "v1 reuse")
                (@custom "instance-reuse-hint" "v1 reuse"))
        )"#));
    let HintError::DuplicateSection { path, offset } = &got else {
        panic!("unexpected {got:?}");
    };
    assert_eq!(path, "component/module[0]");
    assert_eq!(
        got.to_string(),
        format!(
            "component/module[0]: more than one `instance-reuse-hint` section \
             (the second at offset {offset:#x})"
        )
    );

    let top = error(&wat(r#"(component
            (@custom "instance-reuse-hint" "v1 fresh")
            (@custom "instance-reuse-hint" "v2 reuse"))"#));
    assert!(matches!(top, HintError::DuplicateSection { path, .. } if path == "component"));
}

#[test]
fn malformed_payload_is_an_error_naming_node_and_problem() {
    let got = error(&wat(r#"(component
            (core module)
            (component
                (core module (@custom "instance-reuse-hint" "v1 sometimes")))
        )"#));
    assert_eq!(
        got,
        HintError::MalformedPayload {
            path: "component/component[0]/module[0]".into(),
            problem: PayloadError::UnknownMode {
                found: "sometimes".into()
            },
        }
    );
    assert_eq!(
        got.to_string(),
        "component/component[0]/module[0]: malformed `instance-reuse-hint` payload: \
         unknown mode `sometimes`; expected `reuse` or `fresh`"
    );
}

#[test]
fn malformed_payload_is_an_error_even_when_shadowed() {
    // A broken section is a producer bug wherever it sits.
    let got = error(&wat(r#"(component
            (@custom "instance-reuse-hint" "v1 reuse")
            (core module (@custom "instance-reuse-hint" "v1 fresh\n")))"#));
    assert_eq!(
        got.to_string(),
        "component/module[0]: malformed `instance-reuse-hint` payload: unexpected '\\n' at \
         byte 8; the payload is one line of fields separated by single spaces, with no terminator"
    );
}

#[test]
fn non_utf8_payload_is_malformed() {
    let got = error(&wat(
        r#"(component (@custom "instance-reuse-hint" "v1 reuse\ff"))"#,
    ));
    assert_eq!(
        got,
        HintError::MalformedPayload {
            path: "component".into(),
            problem: PayloadError::NotUtf8 { offset: 8 },
        }
    );
}

#[test]
fn oversized_payload_is_malformed() {
    let payload = format!("v1 reuse max-calls={}", "9".repeat(5000));
    let got = error(&wat(&format!(
        r#"(component (component (@custom "instance-reuse-hint" "{payload}")))"#
    )));
    assert_eq!(
        got.to_string(),
        "component/component[0]: malformed `instance-reuse-hint` payload: \
         payload is 5019 bytes, over the 4096-byte limit"
    );
}

#[test]
fn not_a_wasm_binary() {
    for input in [&b""[..], b"\0as", b"hello world", b"(component)"] {
        let got = error(input);
        assert_eq!(got, HintError::NotWasm);
        assert_eq!(
            got.to_string(),
            "not a WebAssembly binary (missing the `\\0asm` header)"
        );
    }
}

#[test]
fn core_module_is_not_a_component() {
    let got = error(&wat(
        r#"(module (@custom "instance-reuse-hint" "v1 reuse"))"#,
    ));
    assert_eq!(got, HintError::NotAComponent);
    assert_eq!(
        got.to_string(),
        "this is a core WebAssembly module, not a component"
    );
}

#[test]
fn truncated_binary_reports_wasmparser_message() {
    let full = wat(r#"(component
        (core module (@custom "instance-reuse-hint" "v1 reuse") (func))
        (@custom "instance-reuse-hint" "v1 fresh"))"#);
    for cut in [5, 9, full.len() / 2, full.len() - 1] {
        let got = error(&full[..cut]);
        let HintError::InvalidWasm { message } = &got else {
            panic!("cut at {cut}: unexpected {got:?}");
        };
        assert!(message.contains("(at offset 0x"), "{message}");
        assert_eq!(
            got.to_string(),
            format!("invalid WebAssembly binary: {message}")
        );
    }
}

#[test]
fn nesting_is_capped() {
    let nest = |levels: usize| {
        let mut component = Component::new();
        for _ in 1..levels {
            let mut outer = Component::new();
            outer.section(&NestedComponentSection(&component));
            component = outer;
        }
        component.finish()
    };
    let deepest = inspect(&nest(MAX_NESTING_DEPTH)).expect("the limit itself is accepted");
    assert_eq!(deepest.effective, None);

    let got = error(&nest(MAX_NESTING_DEPTH + 1));
    assert!(matches!(got, HintError::TooDeep { .. }), "{got:?}");
    assert!(
        got.to_string().starts_with(
            "components and modules are nested more than 100 levels deep (at offset 0x"
        ),
        "{got}"
    );
}
