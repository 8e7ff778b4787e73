//! What [`crate::inspect`] returns, and its two renderings: human text
//! (`reprise hint show`) and JSON (`reprise hint show --json`).

use std::fmt;

use serde_json::{Map, Value, json};

use crate::payload::ReuseHint;

/// The effective hint of a component and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The hint of the top-level component after composition; `None` when no
    /// node carries a supported hint.
    pub effective: Option<ReuseHint>,
    /// Every node with its own `instance-reuse-hint` section, in tree order:
    /// a node before its children, siblings in file order.
    pub sources: Vec<Source>,
    /// One line per node whose children disagree (`fresh` beside `reuse`).
    pub conflicts: Vec<String>,
    /// One line per ignored section (unsupported version).
    pub warnings: Vec<String>,
}

/// One node's own hint section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The node, e.g. `component/component[0]/module[1]`.
    pub path: String,
    /// The canonical form of the hint, or for an unsupported version the
    /// payload exactly as written.
    pub hint: String,
    /// Path of the nearest ancestor whose own hint takes precedence, making
    /// this one irrelevant to the effective hint.
    pub overridden_by: Option<String>,
    /// Set when the section was ignored (unsupported version).
    pub warning: Option<String>,
}

impl Report {
    /// The JSON form: `{"effective": "v1 …" | null, "sources": [{"path": …,
    /// "hint": …}], "conflicts": [...], "warnings": [...]}`. A source also has
    /// `"overridden_by"` and `"warning"` keys when those are set.
    pub fn to_json(&self) -> Value {
        let sources: Vec<Value> = self
            .sources
            .iter()
            .map(|source| {
                let mut entry = Map::new();
                entry.insert("path".into(), source.path.clone().into());
                entry.insert("hint".into(), source.hint.clone().into());
                if let Some(ancestor) = &source.overridden_by {
                    entry.insert("overridden_by".into(), ancestor.clone().into());
                }
                if let Some(warning) = &source.warning {
                    entry.insert("warning".into(), warning.clone().into());
                }
                Value::Object(entry)
            })
            .collect();
        json!({
            "effective": self.effective.map(|hint| hint.to_string()),
            "sources": sources,
            "conflicts": self.conflicts,
            "warnings": self.warnings,
        })
    }
}

/// The text form: the effective hint in canonical form (or `none`) on the
/// first line, so scripts can take line one; then one `from PATH: HINT` line
/// per source, then `conflict: …` and `warning: …` lines.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.effective {
            Some(hint) => write!(f, "{hint}")?,
            None => f.write_str("none")?,
        }
        for source in &self.sources {
            // An unsupported payload may hold anything; keep it on one line.
            write!(f, "\nfrom {}: {}", source.path, source.hint.escape_debug())?;
            if let Some(ancestor) = &source.overridden_by {
                write!(f, " (overridden by {ancestor})")?;
            }
            if source.warning.is_some() {
                f.write_str(" (ignored)")?;
            }
        }
        for conflict in &self.conflicts {
            write!(f, "\nconflict: {conflict}")?;
        }
        for warning in &self.warnings {
            write!(f, "\nwarning: {warning}")?;
        }
        Ok(())
    }
}
