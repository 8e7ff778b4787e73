//! Shrinking: the fewest calls that still show a finding.
//!
//! Delta debugging (as Hypothesis and proptest shrink a failing case):
//! drop chunks of calls, then single calls, keeping each removal after
//! which the finding still shows, for as long as the caller's budget lasts.

/// The smallest sublist of `items` (order kept) for which `shows` still
/// holds, never dropping the items `keep` says must stay. `shows` answers
/// `None` once its budget is spent (replays, time); shrinking then stops.
/// Also says whether it finished (the result is then minimal: dropping any
/// one more item loses the finding).
pub async fn shrink<T: Clone>(
    items: Vec<T>,
    keep: impl Fn(&T) -> bool,
    mut shows: impl AsyncFnMut(&[T]) -> Option<bool>,
) -> (Vec<T>, bool) {
    let mut current = items;
    let mut chunk = current.len().div_ceil(2).max(1);
    loop {
        let mut removed_any = false;
        let mut start = 0;
        while start < current.len() {
            let end = (start + chunk).min(current.len());
            if current[start..end].iter().any(&keep) {
                start = end;
                continue;
            }
            let candidate: Vec<T> = current[..start]
                .iter()
                .chain(&current[end..])
                .cloned()
                .collect();
            let shown = match candidate.is_empty() {
                true => false,
                false => match shows(&candidate).await {
                    Some(shown) => shown,
                    None => return (current, false),
                },
            };
            if shown {
                current = candidate;
                removed_any = true;
            } else {
                start = end;
            }
        }
        if chunk == 1 && !removed_any {
            return (current, true);
        }
        if !removed_any {
            chunk = chunk.div_ceil(2).max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn a_leak_shrinks_to_its_source_and_sink() {
        // Calls 1..=12; the finding needs call 3 (the source) before call 9.
        let items: Vec<usize> = (1..=12).collect();
        let (shrunk, done) = block_on(shrink(
            items,
            |&i| i == 9,
            async |calls: &[usize]| Some(calls.contains(&3) && calls.ends_with(&[9])),
        ));
        assert_eq!((shrunk, done), (vec![3, 9], true));
    }

    #[test]
    fn a_count_dependent_failure_keeps_its_count() {
        // Fails once at least 5 calls precede the last.
        let items: Vec<usize> = (1..=8).collect();
        let (shrunk, done) = block_on(shrink(
            items,
            |&i| i == 8,
            async |calls: &[usize]| Some(calls.len() >= 6 && calls.ends_with(&[8])),
        ));
        assert_eq!(shrunk.len(), 6);
        assert!(done);
    }

    #[test]
    fn the_budget_bounds_the_attempts() {
        let items: Vec<usize> = (1..=50).collect();
        let mut count = 0;
        let (shrunk, done) = block_on(shrink(
            items,
            |_| false,
            async |_: &[usize]| {
                count += 1;
                (count <= 7).then_some(false)
            },
        ));
        assert_eq!((shrunk.len(), done, count), (50, false, 8));
    }
}
