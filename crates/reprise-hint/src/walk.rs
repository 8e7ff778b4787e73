//! Finding every `instance-reuse-hint` section in a component tree.
//!
//! The tree is kept flat (a `Vec` in pre-order with parent links) rather than
//! as nested boxes: a hostile binary can nest components thousands of levels
//! deep, and flat storage means no recursion when composing or dropping it.
//! Depth is also capped ([`MAX_NESTING_DEPTH`]) so that node paths, which
//! grow with depth, stay short.

use wasmparser::{Encoding, Parser, Payload};

use crate::error::HintError;
use crate::payload::{ReuseHint, SECTION_NAME};

/// Deepest accepted nesting of components and core modules, counting the
/// top-level component as 1. Real toolchains nest a handful of levels.
pub const MAX_NESTING_DEPTH: usize = 100;

/// Iterates the payloads of a component with their depth (0 = sections of the
/// top-level component, 1 = sections of its direct children, ...).
///
/// A `ModuleSection`/`ComponentSection` payload is reported at the depth of
/// the component that contains it; the nested node's own payloads, including
/// its `Version` and `End`, one level deeper. Shared by the walker and the
/// rewriter so both agree on what "top level" and "not a component" mean.
pub(crate) fn component_payloads(
    wasm: &[u8],
) -> Result<impl Iterator<Item = Result<(usize, Payload<'_>), HintError>>, HintError> {
    if !wasm.starts_with(b"\0asm") {
        return Err(HintError::NotWasm);
    }
    let mut depth = 0;
    let mut seen_header = false;
    Ok(Parser::new(0).parse_all(wasm).map(move |payload| {
        let payload = payload.map_err(HintError::invalid_wasm)?;
        let at = depth;
        match &payload {
            Payload::Version { encoding, .. } if !seen_header => {
                seen_header = true;
                if *encoding != Encoding::Component {
                    return Err(HintError::NotAComponent);
                }
            }
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                // `at` is 0-based; the nested node sits at 1-based level at + 2.
                if at + 2 > MAX_NESTING_DEPTH {
                    return Err(HintError::TooDeep {
                        offset: unchecked_range.start,
                    });
                }
                depth += 1;
            }
            // The top-level `End` is the last payload, so saturating keeps
            // `depth` at 0 there instead of needing a special case.
            Payload::End(_) => depth = at.saturating_sub(1),
            _ => {}
        }
        Ok((at, payload))
    }))
}

/// What a node of the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Component,
    Module,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Component => "component",
            Kind::Module => "module",
        }
    }
}

/// A node's own `instance-reuse-hint` section, when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Own {
    /// A valid `v1` hint.
    Hint(ReuseHint),
    /// A payload of another version: reported, otherwise treated as absent.
    Unsupported { payload: String, warning: String },
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) parent: Option<usize>,
    pub(crate) children: Vec<usize>,
    pub(crate) own: Option<Own>,
    kind: Kind,
    /// Position among the parent's children of the same kind.
    index: usize,
    /// How many children of each kind so far, to number the next one.
    modules: usize,
    components: usize,
}

/// A component tree in pre-order: `nodes[0]` is the top-level component and
/// every child has a larger index than its parent.
#[derive(Debug)]
pub(crate) struct Tree {
    pub(crate) nodes: Vec<Node>,
}

impl Tree {
    /// The node's path for messages: `component`, `component/module[1]`,
    /// `component/component[0]/module[0]`, ... Indices, not names, because
    /// names are optional, need not be unique, and come in a section that
    /// usually follows the hint.
    pub(crate) fn path(&self, id: usize) -> String {
        let mut segments = Vec::new();
        let mut current = Some(id);
        while let Some(i) = current {
            let node = &self.nodes[i];
            segments.push(match node.parent {
                None => node.kind.as_str().to_owned(),
                Some(_) => format!("{}[{}]", node.kind.as_str(), node.index),
            });
            current = node.parent;
        }
        segments.reverse();
        segments.join("/")
    }

    fn open(&mut self, parent: usize, kind: Kind) -> usize {
        let counter = match kind {
            Kind::Module => &mut self.nodes[parent].modules,
            Kind::Component => &mut self.nodes[parent].components,
        };
        let index = *counter;
        *counter += 1;
        let id = self.nodes.len();
        self.nodes.push(Node::new(Some(parent), kind, index));
        self.nodes[parent].children.push(id);
        id
    }

    fn record(&mut self, id: usize, data: &[u8], offset: usize) -> Result<(), HintError> {
        if self.nodes[id].own.is_some() {
            return Err(HintError::DuplicateSection {
                path: self.path(id),
                offset,
            });
        }
        let own = match ReuseHint::from_payload(data) {
            Ok(hint) => Own::Hint(hint),
            Err(e) if e.is_unsupported_version() => Own::Unsupported {
                // Already checked to be UTF-8, so this is lossless.
                payload: String::from_utf8_lossy(data).into_owned(),
                warning: format!("{e}; section ignored"),
            },
            Err(problem) => {
                return Err(HintError::MalformedPayload {
                    path: self.path(id),
                    problem,
                });
            }
        };
        self.nodes[id].own = Some(own);
        Ok(())
    }
}

impl Node {
    fn new(parent: Option<usize>, kind: Kind, index: usize) -> Self {
        Node {
            parent,
            children: Vec::new(),
            own: None,
            kind,
            index,
            modules: 0,
            components: 0,
        }
    }
}

/// Parses a component and collects every node with its own hint section.
///
/// Fails on the first problem in file order: a bad binary, a module instead of
/// a component, two hint sections in one node, or a malformed payload.
pub(crate) fn walk(wasm: &[u8]) -> Result<Tree, HintError> {
    let mut tree = Tree {
        nodes: vec![Node::new(None, Kind::Component, 0)],
    };
    let mut current = 0;
    for item in component_payloads(wasm)? {
        let (_, payload) = item?;
        match payload {
            Payload::ModuleSection { .. } => current = tree.open(current, Kind::Module),
            Payload::ComponentSection { .. } => current = tree.open(current, Kind::Component),
            Payload::CustomSection(section) if section.name() == SECTION_NAME => {
                tree.record(current, section.data(), section.range().start)?;
            }
            Payload::End(_) => current = tree.nodes[current].parent.unwrap_or(current),
            _ => {}
        }
    }
    Ok(tree)
}
