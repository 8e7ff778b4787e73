//! Feeds arbitrary text to both check script parsers: the one-line format
//! (`parse_script`) and the `.http` format (`parse_http_file`). Neither may
//! panic, every request they accept must be sendable (`to_http` fails only
//! for values the parser would have refused), and a `.http` script reads
//! back what `--repro` writes of it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_host::check::script::{Script, ScriptedRequest, parse_http_file, parse_script};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Script::sends_requests(text);
    let _ = Script::file_sends_requests("script.http", text);

    if let Ok(requests) = parse_script(text) {
        requests.iter().for_each(sendable);
    }

    if let Ok(requests) = parse_http_file(text) {
        requests.iter().for_each(sendable);
        // What `reprise check --repro` writes reads back as the same
        // requests. (Headers are not compared: a URL's host is written as a
        // `Host` header. A body's bare `\r` before a line end is not kept by
        // the line splitting, so such bodies are not compared either.)
        let written = Script::Http(requests.clone()).to_file_text();
        let again = parse_http_file(&written)
            .unwrap_or_else(|e| panic!("{written:?} does not read back: {e}"));
        assert_eq!(again.len(), requests.len(), "{written:?}");
        for (before, after) in requests.iter().zip(&again) {
            assert_eq!(before.method, after.method, "{written:?}");
            assert_eq!(before.path, after.path, "{written:?}");
            assert_eq!(before.host, after.host, "{written:?}");
            if !before.body.contains(&b'\r') {
                assert_eq!(before.body, after.body, "{written:?}");
            }
        }
    }
});

/// A parsed request builds an `http::Request`, and its summaries print.
fn sendable(request: &ScriptedRequest) {
    if let Err(e) = request.to_http(()) {
        panic!("{request:?} was accepted but cannot be sent: {e}");
    }
    assert!(request.path.starts_with('/'), "{request:?}");
    let _ = request.summary();
    let _ = request.to_http_text();
}
