//! The built fixtures are components of the expected kind, and the reuse hints declared with
//! `reprise_guest::reuse_hint!` survive into them with their exact canonical payload.

use wasmparser::{Parser, Payload};

const HINT_SECTION: &str = "instance-reuse-hint";

struct Summary {
    /// Names the top-level component exports.
    exports: Vec<String>,
    /// Payloads of every `instance-reuse-hint` custom section, at any depth.
    hints: Vec<String>,
}

fn summarize(path: &str) -> Summary {
    let bytes = std::fs::read(path).unwrap();
    assert!(Parser::is_component(&bytes), "{path} is not a component");
    let mut summary = Summary {
        exports: Vec::new(),
        hints: Vec::new(),
    };
    let mut depth = 0;
    for payload in Parser::new(0).parse_all(&bytes) {
        match payload.unwrap() {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ComponentExportSection(exports) if depth == 0 => {
                for export in exports {
                    summary.exports.push(export.unwrap().name.name.to_owned());
                }
            }
            Payload::CustomSection(section) if section.name() == HINT_SECTION => {
                summary
                    .hints
                    .push(String::from_utf8(section.data().to_vec()).unwrap());
            }
            _ => {}
        }
    }
    summary
}

#[test]
fn fixtures_export_what_their_front_end_calls() {
    for (name, path) in reprise_test_programs::ALL {
        let exports = summarize(path).exports;
        let expected = match *name {
            // `reprise run` and `reprise call` fixtures.
            "command" => "wasi:cli/run@0.2.",
            "command-p3" => "wasi:cli/run@0.3.",
            "call-counter" => "reprise:test/counter",
            "values" => "describe",
            "check-greeter" => "greet",
            _ if name.ends_with("-p3") || name.contains("-p3-") => "wasi:http/handler@0.3.",
            _ => "wasi:http/incoming-handler@0.2.",
        };
        assert!(
            exports.iter().any(|export| export.starts_with(expected)),
            "{name} exports {exports:?}, expected {expected}*"
        );
    }
}

#[test]
fn declared_hints_reach_the_component_verbatim() {
    for (name, path) in reprise_test_programs::ALL {
        let expected: &[&str] = match *name {
            "example" => &["v1 reuse max-calls=1000"],
            "hinted-fresh" => &["v1 fresh"],
            "hinted-reuse" => &["v1 reuse max-calls=3"],
            "redis-counter" => &["v1 reuse"],
            _ => &[],
        };
        assert_eq!(summarize(path).hints, expected, "hint sections of {name}");
    }
}

#[test]
fn example_bytes_are_the_example_fixture() {
    assert_eq!(
        reprise_test_programs::EXAMPLE_BYTES,
        std::fs::read(reprise_test_programs::EXAMPLE).unwrap()
    );
}
