//! Noise: parts of answers that differ between fresh instances.
//!
//! Fresh instances agree on everything the component computes from its
//! input; where their answers differ (random ids, base64 session keys,
//! timestamps), the answer is noise. A [`Pattern`] keeps what every fresh
//! sample agrees on and puts `<noise>` where they differ; another answer
//! matches when it has the same literal parts in the same order, anything
//! at all in place of the noise.
//!
//! Two samples can agree by chance (two timestamps taken within the same
//! second, a random choice among three words), so a pattern is only as
//! good as its samples: `check` takes more fresh samples of a call before
//! it reports that a reused answer differs (see `runs.rs`).

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

/// Whether `c` belongs to a word: letters, digits and the rest of the
/// base64 alphabets (`+`, `/`, `_`), so that a random base64 or hex run is
/// one token however its characters fall, and differs as a whole.
fn in_word(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '+' | '/' | '_')
}

/// Splits `text` into words and single other characters.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (index, c) in text.char_indices() {
        if in_word(c) {
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

/// Token pairs past which aligning two samples token by token costs too
/// much; the part between their common prefix and suffix is then noise.
const MAX_ALIGNMENT: usize = 1 << 20;

/// Where, in the first sample's tokens, another sample differs: `noisy[i]`
/// when token `i` is not in the other, `gap[i]` when the other has tokens
/// the first lacks right before token `i` (`gap[len]`: at the end).
struct Mask {
    noisy: Vec<bool>,
    gap: Vec<bool>,
}

impl Mask {
    fn new(len: usize) -> Self {
        Mask {
            noisy: vec![false; len],
            gap: vec![false; len + 1],
        }
    }

    /// Marks where `other` differs from `base`: token by token when they
    /// have as many tokens, else along their longest common subsequence.
    fn add<'t>(&mut self, base: &[&'t str], other: &[&'t str]) {
        if base.len() == other.len() {
            for (index, (x, y)) in base.iter().zip(other).enumerate() {
                self.noisy[index] |= x != y;
            }
            return;
        }
        let prefix = base.iter().zip(other).take_while(|(x, y)| x == y).count();
        let rest = base.len().min(other.len()) - prefix;
        let suffix = base
            .iter()
            .rev()
            .zip(other.iter().rev())
            .take(rest)
            .take_while(|(x, y)| x == y)
            .count();
        let (a, b) = (
            &base[prefix..base.len() - suffix],
            &other[prefix..other.len() - suffix],
        );
        let mut unmatched = std::collections::HashSet::new();
        if a.len().saturating_mul(b.len()) > MAX_ALIGNMENT || a.is_empty() || b.is_empty() {
            self.noisy[prefix..base.len() - suffix].fill(true);
            self.gap[prefix] |= !b.is_empty();
            unmatched.extend(a.iter().chain(b));
        } else {
            self.align(a, b, prefix, &mut unmatched);
        }
        // A run repeated a random number of times (`x,x,x`) lines up with
        // its shortest sample only in part: the tokens next to the noise
        // that the other sample has in more or fewer copies are noise too.
        loop {
            let mut changed = false;
            for index in 0..base.len() {
                let next_to_noise = self.gap[index]
                    || self.gap[index + 1]
                    || (index > 0 && self.noisy[index - 1])
                    || self.noisy.get(index + 1) == Some(&true);
                if !self.noisy[index] && next_to_noise && unmatched.contains(base[index]) {
                    self.noisy[index] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Marks where `b` differs from `a`, which starts at token `prefix` of
    /// the base, along their longest common subsequence; the tokens either
    /// lacks go to `unmatched`.
    fn align<'t>(
        &mut self,
        a: &[&'t str],
        b: &[&'t str],
        prefix: usize,
        unmatched: &mut std::collections::HashSet<&'t str>,
    ) {
        // lengths[i][j]: the longest common subsequence of a[i..], b[j..].
        let width = b.len() + 1;
        let mut lengths = vec![0u32; (a.len() + 1) * width];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lengths[i * width + j] = match a[i] == b[j] {
                    true => lengths[(i + 1) * width + j + 1] + 1,
                    false => lengths[(i + 1) * width + j].max(lengths[i * width + j + 1]),
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            if i < a.len() && j < b.len() && a[i] == b[j] {
                (i, j) = (i + 1, j + 1);
            } else if j == b.len()
                || (i < a.len() && lengths[(i + 1) * width + j] >= lengths[i * width + j + 1])
            {
                self.noisy[prefix + i] = true;
                unmatched.insert(a[i]);
                i += 1;
            } else {
                self.gap[prefix + i] = true;
                unmatched.insert(b[j]);
                j += 1;
            }
        }
    }

    /// A number joined by one punctuation mark to a number that differs is
    /// part of the same reading (`seconds.nanos`, `12:30:05`,
    /// `2024-01-01T12:30:05Z`): samples taken within the same second agree
    /// on its seconds, later ones will not.
    fn spread_over_readings(&mut self, base: &[&str]) {
        let numeric = |t: &str| t.bytes().any(|b| b.is_ascii_digit());
        let joins = |t: &str| matches!(t, "." | ":" | "-");
        loop {
            let mut changed = false;
            for i in 0..base.len() {
                if self.noisy[i] || !numeric(base[i]) {
                    continue;
                }
                let near = |joint: Option<usize>, other: Option<usize>| {
                    joint.zip(other).is_some_and(|(joint, other)| {
                        other < base.len()
                            && self.noisy[other]
                            && numeric(base[other])
                            && joins(base[joint])
                    })
                };
                if near(i.checked_sub(1), i.checked_sub(2)) || near(Some(i + 1), Some(i + 2)) {
                    self.noisy[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }
}

impl Pattern {
    /// A pattern that matches exactly `text`.
    pub fn exact(text: &str) -> Pattern {
        Pattern(vec![Segment::Literal(text.to_string())])
    }

    /// What two fresh answers `a` and `b` agree on.
    pub fn between(a: &str, b: &str) -> Pattern {
        Pattern::of(&[a, b])
    }

    /// What all fresh answers `samples` agree on: the first sample's
    /// tokens, each kept where every other sample has it too. Matches
    /// every sample.
    pub fn of(samples: &[&str]) -> Pattern {
        let Some((first, others)) = samples.split_first() else {
            return Pattern(Vec::new());
        };
        if others.iter().all(|other| other == first) {
            return Pattern::exact(first);
        }
        let base = tokens(first);
        let mut mask = Mask::new(base.len());
        for other in others.iter().filter(|other| *other != first) {
            mask.add(&base, &tokens(other));
        }
        mask.spread_over_readings(&base);
        let mut segments = Vec::new();
        let mut push = |segment: Segment| match (segments.last_mut(), segment) {
            (Some(Segment::Literal(last)), Segment::Literal(more)) => last.push_str(&more),
            (Some(Segment::Noise), Segment::Noise) => {}
            (_, segment) => segments.push(segment),
        };
        for index in 0..=base.len() {
            if mask.gap[index] {
                push(Segment::Noise);
            }
            if let Some(token) = base.get(index) {
                push(match mask.noisy[index] {
                    false => Segment::Literal(token.to_string()),
                    true => Segment::Noise,
                });
            }
        }
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
    fn base64_runs_are_masked_whole() {
        // `+` and `/` fall anywhere in random base64; each sample splits on
        // them differently.
        let samples = [
            "session 3q2+7w/Ab9kx0PzQ1rT+uVwX\n",
            "session Zm9vYmFyYmF6cXV4cXV1eGNvcnRl\n",
            "session a/b+c/d+e/f+g/h+i/j+k/l+\n",
        ];
        let pattern = Pattern::between(samples[0], samples[1]);
        assert_eq!(pattern.to_string(), "session <noise>\n");
        assert!(samples.iter().all(|s| pattern.matches(s)));
        assert!(!pattern.matches("count=2\n"));
    }

    #[test]
    fn every_sample_shapes_the_pattern() {
        // Two samples that happen to agree, then one that does not.
        let samples = [
            "served by alpha items=x,x\n",
            "served by alpha items=x,x\n",
            "served by gamma items=x,x,x\n",
            "served by beta items=x,x,x,x\n",
        ];
        let pattern = Pattern::of(&samples);
        assert!(pattern.is_masked());
        assert!(samples.iter().all(|s| pattern.matches(s)), "{pattern}");
        assert!(pattern.matches("served by beta items=x,x,x\n"), "{pattern}");
        // No sample had a single item; the count is random all the same.
        assert!(pattern.matches("served by beta items=x\n"), "{pattern}");
        let fewer = Pattern::of(&[
            "served by alpha items=x,x,x,x\n",
            "served by alpha items=x,x,x\n",
            "served by alpha items=x,x\n",
        ]);
        assert!(fewer.matches("served by alpha items=x\n"), "{fewer}");
        assert!(!fewer.matches("served by beta items=x\n"), "{fewer}");
        assert!(!pattern.matches("count=2\n"), "{pattern}");
        assert!(
            pattern.to_string().starts_with("served by <noise>"),
            "{pattern}"
        );
    }

    #[test]
    fn a_timestamp_is_masked_as_one_reading() {
        let a = "{\"served_at\": \"2024-05-01T12:30:05Z\"}\n";
        let b = "{\"served_at\": \"2024-05-01T12:30:06Z\"}\n";
        let pattern = Pattern::of(&[a, a, b]);
        assert_eq!(
            pattern.to_string(),
            "{\"served_at\": \"<noise>-<noise>-<noise>:<noise>:<noise>\"}\n"
        );
        assert!(pattern.matches("{\"served_at\": \"2024-05-02T00:00:00Z\"}\n"));
    }

    #[test]
    fn a_uuid_differs_as_a_whole() {
        let a = "id=550e8400-e29b-41d4-a716-446655440000\n";
        let b = "id=123e4567-e89b-12d3-a456-426614174000\n";
        let pattern = Pattern::between(a, b);
        assert_eq!(
            pattern.to_string(),
            "id=<noise>-<noise>-<noise>-<noise>-<noise>\n"
        );
        assert!(pattern.matches("id=00000000-0000-4000-8000-000000000000\n"));
    }

    #[test]
    fn number_ranges_are_compact() {
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
        assert_eq!(ranges(&[4]), "4");
        assert_eq!(ranges(&[]), "");
    }
}
