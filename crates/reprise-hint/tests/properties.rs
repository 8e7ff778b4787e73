//! Property tests over random hints, random payload text and random
//! component trees (encoded with wasm-encoder).

use std::num::{NonZeroU32, NonZeroU64};

use proptest::prelude::*;
use reprise_hint::{Mode, ReuseHint, SECTION_NAME, clear_hint, inspect, set_hint};
use wasm_encoder::{Component, CustomSection, Module, ModuleSection, NestedComponentSection};

fn hint() -> impl Strategy<Value = ReuseHint> {
    prop_oneof![
        Just(ReuseHint::fresh()),
        (
            proptest::option::of(prop_oneof![1..=3u64, 1..=u64::MAX]),
            proptest::option::of(prop_oneof![1..=3u32, 1..=u32::MAX]),
        )
            .prop_map(|(calls, conc)| ReuseHint::reuse(
                calls.and_then(NonZeroU64::new),
                conc.and_then(NonZeroU32::new),
            )),
    ]
}

/// A component tree to encode. `hint_last` puts a node's own section after
/// its children instead of before, since position must not matter.
#[derive(Debug, Clone)]
enum Spec {
    Module {
        own: Option<ReuseHint>,
    },
    Component {
        own: Option<ReuseHint>,
        hint_last: bool,
        children: Vec<Spec>,
    },
}

fn spec() -> impl Strategy<Value = Spec> {
    let leaf = prop_oneof![
        proptest::option::of(hint()).prop_map(|own| Spec::Module { own }),
        (proptest::option::of(hint()), any::<bool>()).prop_map(|(own, hint_last)| {
            Spec::Component {
                own,
                hint_last,
                children: Vec::new(),
            }
        }),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        (
            proptest::option::weighted(0.3, hint()),
            any::<bool>(),
            proptest::collection::vec(inner, 0..4),
        )
            .prop_map(|(own, hint_last, children)| Spec::Component {
                own,
                hint_last,
                children,
            })
    })
}

fn hint_section(hint: &ReuseHint) -> CustomSection<'static> {
    CustomSection {
        name: SECTION_NAME.into(),
        data: hint.to_string().into_bytes().into(),
    }
}

fn encode_component(own: Option<&ReuseHint>, hint_last: bool, children: &[Spec]) -> Component {
    let mut component = Component::new();
    let own = own.map(hint_section);
    if let (Some(section), false) = (&own, hint_last) {
        component.section(section);
    }
    for child in children {
        match child {
            Spec::Module { own } => {
                let mut module = Module::new();
                if let Some(hint) = own {
                    module.section(&hint_section(hint));
                }
                component.section(&ModuleSection(&module));
            }
            Spec::Component {
                own,
                hint_last,
                children,
            } => {
                let nested = encode_component(own.as_ref(), *hint_last, children);
                component.section(&NestedComponentSection(&nested));
            }
        }
    }
    if let (Some(section), true) = (&own, hint_last) {
        component.section(section);
    }
    component
}

/// Encodes `spec` as a top-level component (a module is wrapped in one).
fn encode(spec: &Spec) -> Vec<u8> {
    match spec {
        Spec::Module { .. } => encode_component(None, false, std::slice::from_ref(spec)),
        Spec::Component {
            own,
            hint_last,
            children,
        } => encode_component(own.as_ref(), *hint_last, children),
    }
    .finish()
}

/// The rule of docs/reuse-hint.md, written out independently.
fn model(spec: &Spec) -> Option<ReuseHint> {
    match spec {
        Spec::Module { own } => *own,
        Spec::Component { own: Some(own), .. } => Some(*own),
        Spec::Component { children, .. } => {
            let hints: Vec<ReuseHint> = children.iter().filter_map(model).collect();
            if hints.iter().any(|h| h.mode() == Mode::Fresh) {
                Some(ReuseHint::fresh())
            } else if hints.is_empty() {
                None
            } else {
                Some(ReuseHint::reuse(
                    hints.iter().filter_map(ReuseHint::max_calls).min(),
                    hints.iter().filter_map(ReuseHint::max_concurrency).min(),
                ))
            }
        }
    }
}

/// `a` allows no more than `b`.
fn at_most(a: ReuseHint, b: ReuseHint) -> bool {
    fn le<T: Ord>(a: Option<T>, b: Option<T>) -> bool {
        b.is_none() || (a.is_some() && a <= b)
    }
    a.mode() == Mode::Fresh
        || (b.mode() == Mode::Reuse
            && le(a.max_calls(), b.max_calls())
            && le(a.max_concurrency(), b.max_concurrency()))
}

/// Renders `hint` the non-canonical ways a producer may: keys in either
/// order, values with leading zeros.
fn loose_text(hint: ReuseHint, swap: bool, zeros: usize) -> String {
    let mut fields = vec!["v1".to_owned(), hint.mode().to_string()];
    let pad = "0".repeat(zeros);
    let mut keys = Vec::new();
    if let Some(n) = hint.max_calls() {
        keys.push(format!("max-calls={pad}{n}"));
    }
    if let Some(n) = hint.max_concurrency() {
        keys.push(format!("max-concurrency={pad}{n}"));
    }
    if swap {
        keys.reverse();
    }
    fields.extend(keys);
    fields.join(" ")
}

proptest! {
    #[test]
    fn print_then_parse_is_identity(hint in hint()) {
        let text = hint.to_string();
        prop_assert_eq!(text.parse::<ReuseHint>(), Ok(hint));
        prop_assert_eq!(ReuseHint::from_payload(text.as_bytes()), Ok(hint));
    }

    #[test]
    fn any_key_order_parses_to_the_same_hint(hint in hint(), swap in any::<bool>(), zeros in 0..3usize) {
        let text = loose_text(hint, swap, zeros);
        prop_assert_eq!(text.parse::<ReuseHint>(), Ok(hint));
    }

    #[test]
    fn arbitrary_payload_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(hint) = ReuseHint::from_payload(&bytes) {
            prop_assert_eq!(hint.to_string().parse::<ReuseHint>(), Ok(hint));
        }
    }

    #[test]
    fn payload_like_text_never_panics(text in "(v1|v2|v|V1)?( {0,2}(reuse|fresh|max-calls|max-concurrency|=|[0-9]{1,21}|x|\n|\t)){0,6} ?") {
        if let Ok(hint) = text.parse::<ReuseHint>() {
            prop_assert_eq!(hint.to_string().parse::<ReuseHint>(), Ok(hint));
        }
    }

    #[test]
    fn inspect_follows_the_composition_rule(spec in spec()) {
        let report = inspect(&encode(&spec)).expect("generated trees are well-formed");
        prop_assert_eq!(report.effective, model(&spec));
    }

    #[test]
    fn composed_hint_is_never_more_permissive_than_a_child(
        children in proptest::collection::vec(spec(), 1..4)
    ) {
        let parent = inspect(&encode_component(None, false, &children).finish())
            .expect("well-formed")
            .effective;
        for child in &children {
            // A component whose only child is `child` has `child`'s hint.
            let alone = inspect(&encode_component(None, false, std::slice::from_ref(child)).finish())
                .expect("well-formed")
                .effective;
            if let Some(child_hint) = alone {
                let parent = parent.expect("a hinted child makes a hinted parent");
                prop_assert!(at_most(parent, child_hint), "{} vs {}", parent, child_hint);
            }
        }
    }

    #[test]
    fn set_then_show_returns_the_hint(spec in spec(), hint in hint()) {
        let output = set_hint(&encode(&spec), &hint).expect("component");
        let report = inspect(&output).expect("still well-formed");
        prop_assert_eq!(report.effective, Some(hint));
    }

    #[test]
    fn clear_then_show_composes_the_children(spec in spec()) {
        let output = clear_hint(&encode(&spec)).expect("component");
        let report = inspect(&output).expect("still well-formed");
        let without_own = match spec {
            Spec::Component { hint_last, children, .. } => Spec::Component { own: None, hint_last, children },
            module => module,
        };
        prop_assert_eq!(report.effective, model(&without_own));
        prop_assert!(report.sources.iter().all(|s| s.path != "component"));
    }
}
