//! Adopting a component's reuse hint: what every command that runs a
//! component does with the hint before resolving its policy.
//!
//! The hint is advisory, so a bad one never stops a component from
//! running: it is reported and the host default applies. Files that are
//! not components are left for the loader to reject with its own message.

use reprise_hint::{HintError, Mode, ReuseHint};
use std::fmt::Display;

/// The effective hint of the component in `bytes`, with what was found
/// logged: where the hint came from, warnings, conflicts, or why a
/// malformed one is ignored.
pub fn effective_hint(bytes: &[u8], source: &impl Display) -> Option<ReuseHint> {
    let report = match reprise_hint::inspect(bytes) {
        Ok(report) => report,
        // Not a component at all: the loader says so in its own words.
        Err(HintError::NotWasm | HintError::NotAComponent) => return None,
        Err(e) => {
            tracing::warn!("ignoring the reuse hint of {source}: {e}; the host default applies");
            return None;
        }
    };
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
    for conflict in &report.conflicts {
        tracing::warn!("reuse hint conflict: {conflict}");
    }
    match &report.effective {
        Some(hint) => {
            let origins: Vec<&str> = report
                .sources
                .iter()
                .filter(|s| s.overridden_by.is_none() && s.warning.is_none())
                .map(|s| s.path.as_str())
                .collect();
            let kind = match hint.mode() {
                Mode::Reuse => "asks to be reused",
                Mode::Fresh => "asks for a fresh instance per call",
            };
            tracing::info!(
                "component {kind}: reuse hint `{hint}` (from {})",
                origins.join(", ")
            );
        }
        None => tracing::info!("component declares no reuse hint"),
    }
    report.effective
}
