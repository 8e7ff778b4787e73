//! `reprise check --html`: the page the real binary writes, loaded in real
//! headless Chromium (Debian's `chromium`; `.ci/run` installs it). Without
//! Chromium these tests fail, saying so: they are never skipped.

mod support;

use reprise_test_programs::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Chromium to load pages in: `$CHROMIUM`, else `chromium` or
/// `chromium-browser` on `PATH`.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            if dir.join(name).is_file() {
                return dir.join(name);
            }
        }
    }
    panic!(
        "headless Chromium is not installed, and the `reprise check --html` tests load the page \
         in it: install it (Debian/Ubuntu: `apt-get install -y chromium`, as .ci/run does) or \
         point $CHROMIUM at a Chromium binary"
    );
}

/// Loads `page` in headless Chromium with a fresh profile and no network:
/// (the DOM after loading, serialized; Chromium's log, console included).
fn load_in_chromium(page: &Path, name: &str) -> (String, String) {
    let chromium = chromium();
    let profile = support::scratch_path(&format!("{name}-chromium-profile"));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let dom_path = support::scratch_path(&format!("{name}-dom.html"));
    let log_path = support::scratch_path(&format!("{name}-chromium.log"));
    let mut child = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom_path).unwrap())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", chromium.display()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Chromium did not finish loading {} in 120 s; its log:\n{}",
                page.display(),
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = std::fs::read_to_string(&dom_path).unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        status.success(),
        "Chromium failed ({status}); its log:\n{log}"
    );
    assert!(
        dom.contains("</html>"),
        "Chromium dumped no page; its log:\n{log}"
    );
    (dom, log)
}

/// What a page must never do: run script, load anything, or trip its own
/// Content-Security-Policy.
fn assert_loads_cleanly(html: &str, log: &str) {
    for tag in ["<script", "<link", "<img", "<iframe", "<object", "<embed"] {
        assert!(!html.contains(tag), "the page has a `{tag}` element");
    }
    assert!(!html.contains(" src=\""), "the page loads a resource");
    assert!(!html.contains("href=\"http"), "the page links out");
    // The page has no script, so its console stays silent: any message
    // there (an uncaught error, a blocked load) is a fault.
    for sign in [
        "CONSOLE",
        "Uncaught",
        "Refused to",
        "Content Security Policy",
        "net::ERR_",
    ] {
        assert!(!log.contains(sign), "Chromium logged `{sign}`:\n{log}");
    }
}

/// Runs `reprise check ARGS --html FILE`: (exit code, stdout, the page).
fn check_html(args: &[&str], name: &str) -> (i32, String, PathBuf) {
    let page = support::scratch_path(name);
    let _ = std::fs::remove_file(&page);
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    all.extend(["--html", page.to_str().unwrap()]);
    let output = support::run(&all);
    let stdout = String::from_utf8(output.stdout).unwrap();
    (output.status.code().unwrap_or(-1), stdout, page)
}

#[test]
fn the_html_report_shows_the_leak_and_the_divergence_in_chromium() {
    let (code, out, page) = check_html(&[CHECK_FIRST_CALLER, "--seed", "1"], "first-caller.html");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("verdict: leaks between calls"), "{out}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.len() < 400_000, "the page is {} bytes", html.len());
    let (dom, log) = load_in_chromium(&page, "first-caller");
    assert_loads_cleanly(&dom, &log);

    // The header: verdict, hint, seed, the replay command.
    assert!(
        dom.contains("<span class=\"verdict bad\">leaks between calls</span>"),
        "{dom}"
    );
    assert!(
        dom.contains("<dd id=\"recommended-hint\"><code>v1 fresh</code></dd>"),
        "{dom}"
    );
    assert!(dom.contains("<dd id=\"seed\">1</dd>"), "{dom}");
    assert!(dom.contains("--seed 1</code></dd>"), "{dom}");
    // The divergence, fresh's answer against reuse's, the difference marked.
    assert!(
        dom.contains("first divergence: <a href=\"#run-5-call-2\">call 2 under reuse, varied</a>"),
        "{dom}"
    );
    assert!(dom.contains("<del>") && dom.contains("<ins>"), "{dom}");
    // The leak: its source call and the calls it reached.
    assert!(
        dom.contains("the value of header x-user sent in <a class=\"source\" href=\"#run-5-call-1\">call 1</a> appeared in the body of calls"),
        "{dom}"
    );
    assert!(
        dom.contains("<tr id=\"run-5-call-1\" class=\"ok source\">"),
        "{dom}"
    );
    assert!(
        dom.contains("<tr id=\"run-5-call-2\" class=\"bad sink first\">"),
        "{dom}"
    );
    assert!(dom.contains("<mark class=\"leak\">rpr"), "{dom}");
    // Every run has its timeline; the long run is summarized; memory is drawn.
    for run in [
        "fresh",
        "fresh again",
        "reuse",
        "reuse, varied",
        "long reuse",
        "chaos seed 1",
    ] {
        assert!(
            dom.contains(&format!("<h2>{run}</h2>")),
            "no section for {run}"
        );
    }
    assert_eq!(dom.matches("<svg class=\"timeline\"").count(), 10, "{dom}");
    assert!(dom.contains("calls elided (calls 51-"), "{dom}");
    assert!(dom.contains("<polyline class=\"curve\" points=\""), "{dom}");
}

#[test]
fn guest_text_renders_as_text_in_chromium() {
    // The first caller's name, kept by the instance, is markup: reused, the
    // component greets the second caller with it.
    let script = support::scratch_path("markup-user.http");
    std::fs::write(
        &script,
        "GET /greet\nX-User: <script>alert(1)</script><img src=x onerror=alert(2)>\n\n###\n\
         GET /greet\nX-User: bob\n\n",
    )
    .unwrap();
    let (code, out, page) = check_html(
        &[
            CHECK_FIRST_CALLER,
            "--script",
            script.to_str().unwrap(),
            "--seed",
            "1",
        ],
        "markup.html",
    );
    assert_eq!(code, 1, "{out}");
    let (dom, log) = load_in_chromium(&page, "markup");
    assert_loads_cleanly(&dom, &log);
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "{dom}"
    );
    assert!(
        dom.contains("<tr id=\"run-4-call-2\" class=\"bad sink first\">"),
        "{dom}"
    );
}
