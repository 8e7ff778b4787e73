//! Feeds arbitrary text to the WAVE argument path of `reprise call` and of
//! call scripts (`reprise check --script`), against one compiled fixture
//! component: the `values` fixture (records, lists, options, results,
//! strings, integers), or the component at `$REPRISE_FUZZ_COMPONENT`.
//! Nothing may panic, and a call script reads back what `--repro` writes.
//!
//! Build the fixture first: `cargo build -p reprise-test-programs` in the
//! main workspace puts it in `target/guest/wasm32-wasip2/release/`.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use reprise_host::check::script::Script;
use reprise_host::front::serial::invoke::{parse_invocation, split_call};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;
use wasmtime::{Config, Engine};

const DEFAULT_COMPONENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../target/guest/wasm32-wasip2/release/values.wasm"
);

struct Fixture {
    engine: Engine,
    component: Component,
    /// The component's top-level function exports.
    functions: Vec<String>,
}

/// The component, compiled once per process.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let path = std::env::var("REPRISE_FUZZ_COMPONENT")
            .unwrap_or_else(|_| DEFAULT_COMPONENT.to_string());
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).expect("a component-model engine");
        let component = match Component::from_file(&engine, &path) {
            Ok(component) => component,
            Err(e) => {
                // Not a finding: exit instead of panicking, so that libFuzzer
                // records no crash input.
                eprintln!(
                    "wave_args: cannot load {path}: {e:#}\n\
                     build it with `cargo build -p reprise-test-programs` or set \
                     REPRISE_FUZZ_COMPONENT"
                );
                std::process::exit(2);
            }
        };
        let functions = component
            .component_type()
            .exports(&engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
            .map(|(name, _)| name.to_string())
            .collect();
        Fixture {
            engine,
            component,
            functions,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fixture = fixture();

    // 1. The text as a whole invocation (`name(args)`).
    invoke(fixture, text);

    // 2. The text as the arguments of an export its first character picks,
    //    so that most inputs get past the name to the typed WAVE parsing.
    if let Some(first) = text.chars().next()
        && !fixture.functions.is_empty()
    {
        let name = &fixture.functions[first as usize % fixture.functions.len()];
        invoke(fixture, &format!("{name}({})", &text[first.len_utf8()..]));
    }

    // 3. The text as a check script: calls, one per line, or requests.
    if let Ok(script) = Script::parse(text, &fixture.component, &fixture.engine)
        && let Script::Calls(calls) = &script
    {
        let written = script.to_file_text();
        match Script::parse(&written, &fixture.component, &fixture.engine) {
            Ok(Script::Calls(again)) => {
                assert_eq!(again.len(), calls.len(), "{written:?}");
                for (before, after) in calls.iter().zip(&again) {
                    assert_eq!(before.text, after.text, "{written:?}");
                    assert_eq!(before.invocation.name, after.invocation.name);
                }
            }
            Ok(Script::Http(_)) => panic!("{written:?} reads back as requests"),
            Err(e) => panic!("{written:?} does not read back: {e}"),
        }
    }
});

/// Parses one invocation; when it parses, it names what `split_call` split
/// off, and an error always says something.
fn invoke(fixture: &Fixture, text: &str) {
    match parse_invocation(&fixture.component, &fixture.engine, text) {
        Ok(invocation) => {
            let (name, _) = split_call(text).expect("a parsed call splits");
            assert_eq!(invocation.name, name);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
