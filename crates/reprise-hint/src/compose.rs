//! The composition rule: how the hints of nested components and modules
//! combine into the one hint of the top-level component.
//!
//! A component tree is instantiated and destroyed as a whole, so a parent
//! inherits its children's constraints: `effective(node) = own(node)` when the
//! node has its own (supported) section, otherwise the combination of its
//! children, where any `fresh` wins and bounds take the minimum. The result is
//! therefore never more permissive than any contributing child.

use crate::payload::{Mode, ReuseHint};
use crate::report::{Report, Source};
use crate::walk::{Own, Tree};

/// Combines the effective hints of a node's children.
pub(crate) fn combine(children: impl IntoIterator<Item = Option<ReuseHint>>) -> Option<ReuseHint> {
    let mut reuse: Option<ReuseHint> = None;
    for hint in children.into_iter().flatten() {
        match hint.mode() {
            Mode::Fresh => return Some(ReuseHint::fresh()),
            Mode::Reuse => {
                reuse = Some(match reuse {
                    None => hint,
                    Some(acc) => ReuseHint::reuse(
                        min_bound(acc.max_calls(), hint.max_calls()),
                        min_bound(acc.max_concurrency(), hint.max_concurrency()),
                    ),
                });
            }
        }
    }
    reuse
}

/// The tighter of two optional bounds; `None` means unbounded.
fn min_bound<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn own_hint(own: Option<&Own>) -> Option<ReuseHint> {
    match own {
        Some(Own::Hint(hint)) => Some(*hint),
        Some(Own::Unsupported { .. }) | None => None,
    }
}

/// Applies the rule to a walked tree and explains the result.
pub(crate) fn compose(tree: &Tree) -> Report {
    let nodes = &tree.nodes;

    // Top-down (parents come first in pre-order): the nearest ancestor whose
    // own hint shadows this node, if any.
    let mut overridden_by: Vec<Option<usize>> = Vec::with_capacity(nodes.len());
    for node in nodes {
        overridden_by.push(node.parent.and_then(|p| {
            own_hint(nodes[p].own.as_ref())
                .map(|_| p)
                .or(overridden_by[p])
        }));
    }

    // Bottom-up (children have larger indices): each node's effective hint.
    let mut effective: Vec<Option<ReuseHint>> = vec![None; nodes.len()];
    for id in (0..nodes.len()).rev() {
        let node = &nodes[id];
        effective[id] = own_hint(node.own.as_ref())
            .or_else(|| combine(node.children.iter().map(|&c| effective[c])));
    }

    let mut report = Report {
        effective: effective.first().copied().flatten(),
        sources: Vec::new(),
        conflicts: Vec::new(),
        warnings: Vec::new(),
    };
    for (id, node) in nodes.iter().enumerate() {
        let path = tree.path(id);
        let shadowed = overridden_by[id].map(|p| tree.path(p));
        match &node.own {
            Some(Own::Hint(hint)) => report.sources.push(Source {
                path,
                hint: hint.to_string(),
                overridden_by: shadowed,
                warning: None,
            }),
            Some(Own::Unsupported { payload, warning }) => {
                report.warnings.push(format!("{path}: {warning}"));
                report.sources.push(Source {
                    path: path.clone(),
                    hint: payload.clone(),
                    overridden_by: shadowed.clone(),
                    warning: Some(warning.clone()),
                });
                conflict(tree, &effective, id, shadowed, &mut report.conflicts);
            }
            None => conflict(tree, &effective, id, shadowed, &mut report.conflicts),
        }
    }
    report
}

/// Records a conflict at `id` when its children disagree (some `fresh`, some
/// `reuse`). Conflicts inside a subtree shadowed by an ancestor's own hint are
/// not reported: the ancestor already settled them.
fn conflict(
    tree: &Tree,
    effective: &[Option<ReuseHint>],
    id: usize,
    shadowed: Option<String>,
    conflicts: &mut Vec<String>,
) {
    if shadowed.is_some() {
        return;
    }
    let mut fresh = Vec::new();
    let mut reuse = Vec::new();
    for &child in &tree.nodes[id].children {
        match effective[child] {
            Some(hint) if hint.mode() == Mode::Fresh => fresh.push(tree.path(child)),
            Some(hint) => reuse.push(format!("{} ({hint})", tree.path(child))),
            None => {}
        }
    }
    if !fresh.is_empty() && !reuse.is_empty() {
        conflicts.push(format!(
            "{}: fresh from {} overrides reuse from {}",
            tree.path(id),
            fresh.join(", "),
            reuse.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::num::{NonZeroU32, NonZeroU64};

    use proptest::prelude::*;

    use super::*;

    fn hint_strategy() -> impl Strategy<Value = Option<ReuseHint>> {
        prop_oneof![
            Just(None),
            Just(Some(ReuseHint::fresh())),
            (
                proptest::option::of(1..=u64::MAX),
                proptest::option::of(1..=u32::MAX)
            )
                .prop_map(|(calls, conc)| Some(ReuseHint::reuse(
                    calls.and_then(NonZeroU64::new),
                    conc.and_then(NonZeroU32::new),
                ))),
        ]
    }

    /// `a` allows no more than `b`: fresh is below every reuse, and a bound
    /// is below "unbounded" and below every larger bound.
    fn at_most(a: ReuseHint, b: ReuseHint) -> bool {
        fn le<T: Ord>(a: Option<T>, b: Option<T>) -> bool {
            match (a, b) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => a <= b,
            }
        }
        a.mode() == Mode::Fresh
            || (b.mode() == Mode::Reuse
                && le(a.max_calls(), b.max_calls())
                && le(a.max_concurrency(), b.max_concurrency()))
    }

    proptest! {
        #[test]
        fn combined_is_never_more_permissive_than_a_child(
            children in proptest::collection::vec(hint_strategy(), 0..6)
        ) {
            let combined = combine(children.iter().copied());
            for child in children.iter().flatten() {
                let combined = combined.expect("a hinted child yields a hint");
                prop_assert!(at_most(combined, *child), "{combined} vs {child}");
            }
            prop_assert_eq!(combined.is_none(), children.iter().all(Option::is_none));
        }

        #[test]
        fn combined_bounds_come_from_some_child(
            children in proptest::collection::vec(hint_strategy(), 0..6)
        ) {
            // Minimum, not something smaller: each bound equals a child's.
            if let Some(hint) = combine(children.iter().copied()) {
                let hints: Vec<ReuseHint> = children.iter().flatten().copied().collect();
                if let Some(calls) = hint.max_calls() {
                    prop_assert!(hints.iter().any(|h| h.max_calls() == Some(calls)));
                }
                if let Some(conc) = hint.max_concurrency() {
                    prop_assert!(hints.iter().any(|h| h.max_concurrency() == Some(conc)));
                }
            }
        }
    }
}
