//! JUnit XML for CI: one test case per run of the check.

use super::{Report, Run};

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// The report as a JUnit test suite named after `component`: a test case
/// per run, failing when that run showed a leak or a divergence.
pub fn junit(component: &str, runs: &[Run], report: &Report) -> String {
    let failures = runs
        .iter()
        .filter(|r| report.finding_in(&r.label).is_some())
        .count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites name=\"reprise check\" tests=\"{}\" failures=\"{failures}\">\n",
        runs.len()
    ));
    xml.push_str(&format!(
        "  <testsuite name=\"reprise check {}\" tests=\"{}\" failures=\"{failures}\">\n",
        escape(component),
        runs.len()
    ));
    xml.push_str(&format!(
        "    <properties><property name=\"verdict\" value=\"{}\"/><property \
         name=\"recommended_hint\" value=\"{}\"/></properties>\n",
        report.verdict.as_str(),
        escape(&report.recommended_hint)
    ));
    for run in runs {
        xml.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\">",
            escape(component),
            escape(&run.label)
        ));
        if let Some(finding) = report.finding_in(&run.label) {
            xml.push_str(&format!(
                "\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    ",
                escape(&finding),
                report.verdict.as_str(),
                escape(&finding)
            ));
        } else if let Some(why) = &run.stopped {
            xml.push_str(&format!(
                "\n      <system-out>{} calls; {}</system-out>\n    ",
                run.calls.len(),
                escape(why)
            ));
        }
        xml.push_str("</testcase>\n");
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Answer, Observed, RunKind, judge};

    #[test]
    fn one_test_case_per_run_and_failures_escaped() {
        let answer = |body: &str| Answer::Http {
            status: 200,
            content_type: None,
            body: body.to_string().into(),
        };
        let run = |label: &str, kind, bodies: &[&str]| {
            let calls = bodies
                .iter()
                .enumerate()
                .map(|(i, b)| Observed::serial(i, i, answer(b)))
                .collect();
            Run::new(label, kind, false, calls)
        };
        let runs = [
            run("fresh", RunKind::Fresh, &["1", "1"]),
            run("reuse", RunKind::Reuse, &["1", "<2>"]),
        ];
        let report = judge(&runs);
        let xml = junit("a&b.wasm", &runs, &report);
        assert_eq!(xml.matches("<testcase ").count(), 2);
        assert_eq!(xml.matches("<failure ").count(), 1);
        assert!(xml.contains("a&amp;b.wasm"));
        assert!(xml.contains("&lt;2&gt;"));
        assert!(!xml.contains("<2>"));
    }
}
