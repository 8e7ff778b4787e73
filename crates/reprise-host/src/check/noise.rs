//! Noise: parts of answers that differ between two fresh instances.
//!
//! Two fresh baselines of the same call agree on everything the component
//! computes from its input; where they differ (random ids, timestamps),
//! the answer is noise. A [`Pattern`] keeps what both agree on and puts
//! `<noise>` where they differ; another answer matches when it has the same
//! literal parts in the same order, anything at all in place of the noise.

/// What the text of an answer must look like: literal parts, and noise
/// that matches anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern(Vec<Segment>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Noise,
}

/// The placeholder shown where an answer is masked.
pub const NOISE: &str = "<noise>";

/// Splits `text` into runs of alphanumeric characters and single other
/// characters.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (index, c) in text.char_indices() {
        if c.is_alphanumeric() {
            start.get_or_insert(index);
        } else {
            if let Some(s) = start.take() {
                out.push(&text[s..index]);
            }
            out.push(&text[index..index + c.len_utf8()]);
        }
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

impl Pattern {
    /// A pattern that matches exactly `text`.
    pub fn exact(text: &str) -> Pattern {
        Pattern(vec![Segment::Literal(text.to_string())])
    }

    /// What two fresh answers `a` and `b` agree on: token by token when
    /// they have as many tokens, else their common prefix and suffix.
    pub fn between(a: &str, b: &str) -> Pattern {
        if a == b {
            return Pattern::exact(a);
        }
        let (ta, tb) = (tokens(a), tokens(b));
        let mut segments = Vec::new();
        let mut push = |segment: Segment| match (segments.last_mut(), segment) {
            (Some(Segment::Literal(last)), Segment::Literal(more)) => last.push_str(&more),
            (Some(Segment::Noise), Segment::Noise) => {}
            (_, segment) => segments.push(segment),
        };
        if ta.len() == tb.len() {
            let numeric = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
            let mut noisy: Vec<bool> = ta.iter().zip(&tb).map(|(x, y)| x != y).collect();
            // A number joined by one punctuation mark to a number that
            // differs is part of the same reading (`seconds.nanos`,
            // `12:30:05`): two samples taken within the same second agree on
            // its seconds, later ones will not.
            loop {
                let mut changed = false;
                for i in 0..ta.len() {
                    if noisy[i] || !numeric(ta[i]) {
                        continue;
                    }
                    let near = |j: Option<usize>, k: Option<usize>| {
                        j.zip(k).is_some_and(|(j, k)| {
                            k < ta.len()
                                && noisy[k]
                                && numeric(ta[k])
                                && matches!(ta[j], "." | ":" | "-" | "T")
                        })
                    };
                    if near(i.checked_sub(1), i.checked_sub(2)) || near(Some(i + 1), Some(i + 2)) {
                        noisy[i] = true;
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
            }
            for (x, noisy) in ta.iter().zip(noisy) {
                push(match noisy {
                    false => Segment::Literal(x.to_string()),
                    true => Segment::Noise,
                });
            }
        } else {
            let prefix = ta.iter().zip(&tb).take_while(|(x, y)| x == y).count();
            let rest = ta.len().min(tb.len()) - prefix;
            let suffix = ta
                .iter()
                .rev()
                .zip(tb.iter().rev())
                .take(rest)
                .take_while(|(x, y)| x == y)
                .count();
            push(Segment::Literal(ta[..prefix].concat()));
            push(Segment::Noise);
            push(Segment::Literal(ta[ta.len() - suffix..].concat()));
        }
        segments.retain(|s| !matches!(s, Segment::Literal(l) if l.is_empty()));
        Pattern(segments)
    }

    /// Whether any part is noise.
    pub fn is_masked(&self) -> bool {
        self.0.contains(&Segment::Noise)
    }

    /// Whether `text` has this pattern's literal parts, in order, with
    /// anything in place of its noise.
    pub fn matches(&self, text: &str) -> bool {
        let mut rest = text;
        let mut anchored = true;
        for (index, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Noise => anchored = false,
                Segment::Literal(literal) => {
                    let last = index == self.0.len() - 1;
                    if anchored {
                        let Some(after) = rest.strip_prefix(literal.as_str()) else {
                            return false;
                        };
                        rest = after;
                    } else if last {
                        return rest.ends_with(literal.as_str());
                    } else {
                        let Some(at) = rest.find(literal.as_str()) else {
                            return false;
                        };
                        rest = &rest[at + literal.len()..];
                    }
                    anchored = true;
                }
            }
        }
        !anchored || rest.is_empty()
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for segment in &self.0 {
            match segment {
                Segment::Literal(text) => f.write_str(text)?,
                Segment::Noise => f.write_str(NOISE)?,
            }
        }
        Ok(())
    }
}

/// `1-3, 5, 7-8` for the 1-based numbers `numbers` (sorted).
pub fn ranges(numbers: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut index = 0;
    while index < numbers.len() {
        let start = numbers[index];
        let mut end = start;
        while index + 1 < numbers.len() && numbers[index + 1] == end + 1 {
            index += 1;
            end = numbers[index];
        }
        parts.push(match start == end {
            true => start.to_string(),
            false => format!("{start}-{end}"),
        });
        index += 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_answers_must_match_exactly() {
        let pattern = Pattern::between("1\n", "1\n");
        assert!(!pattern.is_masked());
        assert!(pattern.matches("1\n"));
        assert!(!pattern.matches("2\n"));
        assert!(!pattern.matches("1\n1\n"));
    }

    #[test]
    fn random_tokens_and_timestamps_are_masked() {
        // Both taken within the same second: the seconds still count as noise.
        let a = "token=0a1b2c at=1700000000.000000012 request-id=42\n";
        let b = "token=99ffee at=1700000000.123456789 request-id=1234567\n";
        let pattern = Pattern::between(a, b);
        assert!(pattern.is_masked());
        assert_eq!(
            pattern.to_string(),
            "token=<noise> at=<noise>.<noise> request-id=<noise>\n"
        );
        assert!(pattern.matches("token=ffff at=1.2 request-id=7\n"));
        assert!(!pattern.matches("token=ffff at=1.2 request-id=7\nextra"));
        assert!(!pattern.matches("hello"));
    }

    #[test]
    fn answers_of_different_shapes_keep_prefix_and_suffix() {
        let pattern = Pattern::between("id: 1-2-3 end", "id: 7 end");
        assert_eq!(pattern.to_string(), "id: <noise> end");
        assert!(pattern.matches("id: anything at all end"));
        assert!(!pattern.matches("id: x"));
    }

    #[test]
    fn number_ranges_are_compact() {
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
        assert_eq!(ranges(&[4]), "4");
        assert_eq!(ranges(&[]), "");
    }
}
