use super::*;

fn answer(status: u16, body: &str) -> Answer {
    Answer::Http {
        status,
        content_type: Some("text/plain".into()),
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

fn kind(label: &str) -> RunKind {
    match label {
        l if l.starts_with("fresh") => RunKind::Fresh,
        l if l.starts_with("long") => RunKind::Long,
        l if l.starts_with("chaos") => RunKind::Chaos,
        l if l.starts_with("concurrent") => RunKind::Concurrent,
        _ => RunKind::Reuse,
    }
}

fn run(label: &str, calls: &[(u16, &str, u64, u64)]) -> Run {
    let calls = calls
        .iter()
        .enumerate()
        .map(|(position, &(status, body, instance, memory))| Observed {
            instance: Some(instance),
            memory: Some(memory),
            ..Observed::serial(position, position, answer(status, body))
        })
        .collect();
    Run::new(label, kind(label), false, calls)
}

#[test]
fn a_call_that_traps_only_when_reused_breaks() {
    let call = |position, result: Result<&str, &str>, instance| Observed {
        instance: Some(instance),
        ..Observed::serial(
            position,
            position,
            Answer::Call {
                result: result.map(str::to_string).map_err(str::to_string),
                printed: String::new(),
            },
        )
    };
    let fresh = Run::new(
        "fresh",
        RunKind::Fresh,
        false,
        vec![call(0, Ok("()"), 1), call(1, Ok("()"), 2)],
    );
    let reuse = Run::new(
        "reuse",
        RunKind::Reuse,
        false,
        vec![call(0, Ok("()"), 1), call(1, Err("wasm trap"), 1)],
    );
    let report = judge(&[fresh, reuse]);
    assert_eq!(report.verdict, Verdict::BreaksUnderReuse);
    assert_eq!(
        report.divergence.unwrap().actual.to_string(),
        "failed: wasm trap"
    );
}

#[test]
fn identical_runs_are_reuse_safe() {
    let fresh = run("fresh", &[(200, "hi", 1, 65536), (200, "hi", 2, 65536)]);
    let reuse = run("reuse", &[(200, "hi", 1, 65536), (200, "hi", 1, 65536)]);
    let report = judge(&[fresh, reuse]);
    assert_eq!(report.verdict, Verdict::ReuseSafe);
    assert_eq!(report.divergence, None);
    assert_eq!(report.recommended_hint, "v1 reuse");
    assert!(report.masked.is_empty());
}

#[test]
fn changed_successful_answers_depend_on_reuse() {
    let fresh = run(
        "fresh",
        &[(200, "1", 1, 0), (200, "1", 2, 0), (200, "1", 3, 0)],
    );
    let reuse = run(
        "reuse",
        &[(200, "1", 1, 0), (200, "2", 1, 0), (200, "3", 1, 0)],
    );
    let report = judge(&[fresh, reuse]);
    assert_eq!(report.verdict, Verdict::DependsOnReuse);
    let divergence = report.divergence.unwrap();
    assert_eq!(divergence.call, 2);
    assert_eq!(divergence.run, "reuse");
    assert_eq!(divergence.actual, answer(200, "2"));
}

#[test]
fn failures_under_reuse_break() {
    let fresh = run("fresh", &[(200, "ok", 1, 0), (200, "ok", 2, 0)]);
    let reuse = run("reuse", &[(200, "ok", 1, 0), (200, "ok", 1, 0)]);
    let chaos = run("chaos seed 3", &[(200, "ok", 1, 0), (500, "failed", 1, 0)]);
    let report = judge(&[fresh, reuse, chaos]);
    assert_eq!(report.verdict, Verdict::BreaksUnderReuse);
    assert_eq!(report.divergence.unwrap().run, "chaos seed 3");
    assert_eq!(report.recommended_hint, "v1 fresh");
}

#[test]
fn the_earliest_divergence_is_reported() {
    let fresh = run(
        "fresh",
        &[(200, "a", 1, 0), (200, "a", 2, 0), (200, "a", 3, 0)],
    );
    let reuse = run(
        "reuse",
        &[(200, "a", 1, 0), (200, "a", 1, 0), (200, "b", 1, 0)],
    );
    let chaos = run(
        "chaos seed 1",
        &[(200, "a", 1, 0), (200, "c", 1, 0), (200, "a", 1, 0)],
    );
    let report = judge(&[fresh, reuse, chaos]);
    let divergence = report.divergence.clone().unwrap();
    assert_eq!(
        (divergence.call, divergence.run.as_str()),
        (2, "chaos seed 1")
    );
    assert_eq!(report.divergences.len(), 2);
    assert!(report.finding_in("reuse").unwrap().starts_with("call 3"));
}

#[test]
fn a_steady_leak_is_measured_and_bounded() {
    let page = 65536;
    let fresh = run("fresh", &[(200, "ok", 1, page); 5]);
    let calls: Vec<(u16, &str, u64, u64)> = (0..5)
        .map(|i| (200, "ok", 1, page + i * 4 * page))
        .collect();
    let reuse = run("reuse", &calls);
    let report = judge(&[fresh, reuse]);
    assert_eq!(report.verdict, Verdict::ReuseSafe);
    let memory = report.memory.unwrap();
    assert_eq!(memory.calls, 5);
    assert_eq!(memory.bytes_per_call, (4 * page) as f64);
    assert!(memory.still_growing);
    // 64 MiB, less the 64 KiB the instance starts with, at 256 KiB a call.
    assert_eq!(report.recommended_hint, "v1 reuse max-calls=255");
}

#[test]
fn one_off_growth_is_not_a_leak() {
    let fresh = run("fresh", &[(200, "ok", 1, 0); 6]);
    let mut calls = vec![(200, "ok", 1, 131072); 6];
    calls[0].3 = 65536;
    let report = judge(&[fresh, run("reuse", &calls)]);
    assert!(!report.memory.unwrap().still_growing);
    assert_eq!(report.recommended_hint, "v1 reuse");
}

#[test]
fn noise_between_fresh_instances_is_masked_not_a_finding() {
    let fresh = run(
        "fresh",
        &[(200, "id=123 t=5", 1, 0), (200, "id=77 t=6", 2, 0)],
    );
    let again = run(
        "fresh again",
        &[(200, "id=9 t=1", 3, 0), (200, "id=4 t=2", 4, 0)],
    );
    let reuse = run(
        "reuse",
        &[(200, "id=55 t=8", 1, 0), (200, "id=56 t=9", 1, 0)],
    );
    let report = judge(&[fresh, again, reuse]);
    assert_eq!(report.verdict, Verdict::ReuseSafe, "{report:?}");
    assert_eq!(
        report.masked,
        ["body of calls 1-2 (differs between fresh instances): \"id=<noise> t=<noise>\""]
    );
    // Beyond the noise, a difference still counts.
    let fresh = run("fresh", &[(200, "id=1 n=1", 1, 0), (200, "id=2 n=1", 2, 0)]);
    let again = run(
        "fresh again",
        &[(200, "id=3 n=1", 3, 0), (200, "id=4 n=1", 4, 0)],
    );
    let reuse = run("reuse", &[(200, "id=5 n=1", 1, 0), (200, "id=6 n=2", 1, 0)]);
    assert_eq!(
        judge(&[fresh, again, reuse]).verdict,
        Verdict::DependsOnReuse
    );
}

#[test]
fn a_value_of_one_call_in_anothers_answer_leaks() {
    let sent = |value: &str| {
        vec![Sent {
            place: "header x-user".into(),
            value: value.into(),
        }]
    };
    let make = |label: &str, bodies: [&str; 3]| {
        let calls = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| Observed {
                sent: sent(["rpra1", "rprb2", "rprc3"][i]),
                instance: Some(1),
                ..Observed::serial(i, i, answer(200, body))
            })
            .collect();
        Run::new(label, kind(label), true, calls)
    };
    let fresh = make(
        "fresh, varied",
        ["hello, rpra1", "hello, rprb2", "hello, rprc3"],
    );
    let reuse = make(
        "reuse, varied",
        ["hello, rpra1", "hello, rpra1", "hello, rpra1"],
    );
    let report = judge(&[fresh, reuse]);
    assert_eq!(report.verdict, Verdict::LeaksBetweenCalls);
    assert_eq!(report.leaks.len(), 2);
    assert!(
        report.leaks[1].to_string().starts_with(
            "the value of header x-user sent in call 1 appeared in the body of call 3"
        ),
        "{}",
        report.leaks[1]
    );
    assert_eq!(report.recommended_hint, "v1 fresh");
}

#[test]
fn breaking_after_many_calls_bounds_max_calls() {
    let fresh = run("fresh", &[(200, "ok", 1, 0), (200, "ok", 2, 0)]);
    let reuse = run("reuse", &[(200, "ok", 1, 0), (200, "ok", 1, 0)]);
    let mut long: Vec<(u16, &str, u64, u64)> = vec![(200, "ok", 1, 0); 40];
    long.push((500, "failed", 1, 0));
    let mut long = run("long reuse", &long);
    for (i, call) in long.calls.iter_mut().enumerate() {
        call.entry = i % 2;
    }
    let report = judge(&[fresh, reuse, long]);
    assert_eq!(report.verdict, Verdict::BreaksUnderReuse);
    let divergence = report.divergence.unwrap();
    assert_eq!((divergence.call, divergence.succeeded_before), (41, 40));
    assert_eq!(report.breaking_point, Some(40));
    assert_eq!(report.recommended_hint, "v1 reuse max-calls=40");
}

#[test]
fn calls_in_flight_together_are_named() {
    let mut concurrent = run("concurrent seed 1", &[(200, "a", 1, 0); 3]);
    // Call 1 runs over calls 2 and 3, which follow each other.
    let order = [(0, 5), (1, 2), (3, 4)];
    for (call, (started, ended)) in concurrent.calls.iter_mut().zip(order) {
        (call.started, call.ended) = (started, ended);
    }
    assert_eq!(concurrent.in_flight_with(0), [2, 3]);
    assert_eq!(concurrent.in_flight_with(1), [1]);
}

#[test]
fn answers_any_fresh_sample_gave_are_not_divergences() {
    // Two fresh samples agreed by chance; more, taken once reuse answered
    // differently, show the choice is random. Every sample counts, not
    // just the last that differs.
    let fresh = run("fresh", &[(200, "served by alpha", 1, 0)]);
    let again = run("fresh again", &[(200, "served by alpha", 2, 0)]);
    let reuse = run("reuse", &[(200, "served by beta", 3, 0)]);
    let diverging = judge(&[fresh.clone(), again.clone(), reuse.clone()]);
    assert_eq!(diverging.verdict, Verdict::DependsOnReuse);
    let samples = run(
        "fresh samples of call 1",
        &[
            (200, "served by gamma", 4, 0),
            (200, "served by beta", 5, 0),
            (200, "served by alpha", 6, 0),
            (200, "queued at alpha", 7, 0),
        ],
    );
    let mut samples = samples;
    for call in &mut samples.calls {
        call.entry = 0;
    }
    let report = judge(&[fresh, again, reuse, samples.clone()]);
    assert_eq!(report.verdict, Verdict::ReuseSafe, "{report:?}");
    assert_eq!(
        report.masked,
        ["body of calls 1 (differs between fresh instances): \"<noise> <noise> <noise>\""]
    );
    // A counter stays a finding however many samples say `1`.
    let fresh = run("fresh", &[(200, "1", 1, 0), (200, "1", 2, 0)]);
    let reuse = run("reuse", &[(200, "1", 3, 0), (200, "2", 3, 0)]);
    let mut samples = run("fresh samples of call 2", &[(200, "1", 4, 0); 4]);
    for call in &mut samples.calls {
        call.entry = 1;
    }
    assert_eq!(
        judge(&[fresh, reuse, samples]).verdict,
        Verdict::DependsOnReuse
    );
}

#[test]
fn a_reuse_run_that_breaks_after_many_calls_bounds_max_calls() {
    let fresh = run("fresh", &[(200, "ok", 1, 0); 41]);
    let mut calls: Vec<(u16, &str, u64, u64)> = vec![(200, "ok", 1, 0); 40];
    calls.push((500, "failed", 1, 0));
    let report = judge(&[
        fresh.clone(),
        run("reuse", &calls),
        run("long reuse", &calls),
    ]);
    assert_eq!(report.verdict, Verdict::BreaksUnderReuse);
    assert_eq!(report.breaking_point, Some(40));
    assert_eq!(report.recommended_hint, "v1 reuse max-calls=40");
    // Breaking at the second call leaves one call per instance: fresh.
    let report = judge(&[
        fresh,
        run("reuse", &[(200, "ok", 1, 0), (500, "failed", 1, 0)]),
    ]);
    assert_eq!(report.breaking_point, Some(1));
    assert_eq!(report.recommended_hint, "v1 fresh");
}

#[test]
fn a_long_run_is_judged_in_each_repetitions_own_tokens() {
    let sent = |value: String| {
        vec![Sent {
            place: "header x-user".into(),
            value,
        }]
    };
    let token = |i: usize| format!("rpr{i:010}");
    let fresh = Run::new(
        "fresh, varied",
        RunKind::Fresh,
        true,
        (0..2)
            .map(|i| Observed {
                sent: sent(token(i)),
                ..Observed::serial(i, i, answer(200, &format!("hello, {}", token(i))))
            })
            .collect(),
    );
    let again = Run {
        label: "fresh again, varied".into(),
        ..fresh.clone()
    };
    // Four repetitions of the two calls, each with tokens of its own.
    let long = |answer_of: &dyn Fn(usize) -> String| {
        let calls = (0..8)
            .map(|i| Observed {
                sent: sent(token(i)),
                instance: Some(1),
                ..Observed::serial(i, i % 2, answer(200, &answer_of(i)))
            })
            .collect();
        Run::new("long reuse", RunKind::Long, true, calls)
    };
    let echoing = long(&|i| format!("hello, {}", token(i)));
    let report = judge(&[fresh.clone(), again.clone(), echoing]);
    assert_eq!(report.verdict, Verdict::ReuseSafe, "{report:?}");
    // Greeting everyone with the first caller's name is a leak, even where
    // the first repetition's token is what the baseline expects.
    let first_caller = long(&|_| format!("hello, {}", token(0)));
    let report = judge(&[fresh, again, first_caller]);
    assert_eq!(report.verdict, Verdict::LeaksBetweenCalls, "{report:?}");
    assert_eq!((report.leaks[0].from_call, report.leaks[0].to_call), (1, 2));
    assert!(report.leaks.iter().any(|l| l.to_call == 3));
}
