//! What the soak's clients are told, by kind, and the one kind each of the
//! `soak` fixture's paths should get.
//!
//! A host's answer is recognized by its status and body exactly as Reprise
//! writes them ([`CallError::http_answer`]), so a 500 for a trap is told
//! apart from a 500 for the memory cap. (Also compiled into the fixture's
//! test, `tests/soak_fixture.rs`, which checks the classification against
//! Reprise's front end.)

use reprise_host::runtime::failure::CallError;
use std::fmt;

/// One kind of answer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// 200 `ok\n`: the fixture's own answer.
    Ok,
    /// The call trapped (Reprise: 500).
    Trap,
    /// The call ran past `--timeout` (Reprise: 504).
    Timeout,
    /// The instance grew past `--max-memory` (Reprise: 500).
    Memory,
    /// Any other answer: its status and the first line of its body.
    Other { status: u16, body: String },
    /// No answer at all, and why: the connection failed or closed, nothing
    /// came in time, or the answer was not HTTP.
    NoAnswer(String),
}

/// The soak fixture's well-behaved path.
pub const OK_PATH: &str = "/ok";

/// The misbehaving paths, one client each: (client, path, the answer it
/// should get, every time).
pub const MISBEHAVING: [(&str, &str, Kind); 3] = [
    ("trap", "/trap", Kind::Trap),
    ("loop", "/loop", Kind::Timeout),
    ("bomb", "/bomb", Kind::Memory),
];

/// The answer Reprise gives for `kind` of failure: status and body.
fn host_answer(kind: &Kind) -> Option<(u16, String)> {
    let error = match kind {
        Kind::Trap => CallError::Trap(anyhow::anyhow!("trapped")),
        Kind::Timeout => CallError::Timeout,
        Kind::Memory => CallError::Memory(None),
        _ => return None,
    };
    let (status, body) = error.http_answer();
    Some((status.as_u16(), body))
}

/// The kind of an HTTP answer.
pub fn classify(status: u16, body: &str) -> Kind {
    if status == 200 && body == "ok\n" {
        return Kind::Ok;
    }
    for kind in [Kind::Trap, Kind::Timeout, Kind::Memory] {
        if host_answer(&kind).is_some_and(|(s, b)| s == status && b == body) {
            return kind;
        }
    }
    let first_line = body.lines().next().unwrap_or_default();
    Kind::Other {
        status,
        body: first_line.chars().take(80).collect(),
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = |kind| host_answer(kind).map_or(0, |(status, _)| status);
        match self {
            Kind::Ok => f.write_str("200 ok"),
            Kind::Trap => write!(f, "{} trap", status(self)),
            Kind::Timeout => write!(f, "{} timeout", status(self)),
            Kind::Memory => write!(f, "{} memory limit", status(self)),
            Kind::Other { status, body } => write!(f, "{status} `{body}`"),
            Kind::NoAnswer(why) => write!(f, "no answer: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_failures_are_told_apart_by_status_and_body() {
        let trap = host_answer(&Kind::Trap).unwrap();
        let memory = host_answer(&Kind::Memory).unwrap();
        let timeout = host_answer(&Kind::Timeout).unwrap();
        // Two of them share a status: only the body tells them apart.
        assert_eq!(trap.0, 500);
        assert_eq!(memory.0, 500);
        assert_eq!(timeout.0, 504);
        assert_eq!(classify(trap.0, &trap.1), Kind::Trap);
        assert_eq!(classify(memory.0, &memory.1), Kind::Memory);
        assert_eq!(classify(timeout.0, &timeout.1), Kind::Timeout);
        assert_eq!(classify(200, "ok\n"), Kind::Ok);
    }

    #[test]
    fn anything_else_keeps_its_status_and_first_line() {
        assert_eq!(
            classify(503, "the server is shutting down: now\nmore\n"),
            Kind::Other {
                status: 503,
                body: "the server is shutting down: now".into()
            }
        );
        // A 200 with another body is not the fixture's answer.
        assert!(matches!(
            classify(200, "hello\n"),
            Kind::Other { status: 200, .. }
        ));
        assert_eq!(
            classify(500, "the component exceeded its memory limit\n").to_string(),
            "500 memory limit"
        );
        assert_eq!(
            Kind::NoAnswer("closed before answering".into()).to_string(),
            "no answer: closed before answering"
        );
        assert_eq!(Kind::Timeout.to_string(), "504 timeout");
    }
}
