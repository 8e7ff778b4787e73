//! Check scripts: what a check sends, in order.
//!
//! Two formats hold HTTP requests: the `.http` format of REST Client and
//! the JetBrains HTTP client (requests separated by `###` lines, each a
//! request line, headers, a blank line and a body), for files whose name
//! ends in `.http`, and the one-line format (`METHOD /PATH [BODY]`) for
//! other names. A script of other names may instead hold function calls in
//! WAVE, one per line. Every malformed line is reported as
//! `script line N: ...`, never a panic.

use crate::front::serial::invoke::{Invocation, InvokeError, parse_invocation};
use bytes::Bytes;
use http::Method;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Why a script cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// One line is malformed; `line` counts from 1, as editors do.
    #[error("script line {line}: {kind}")]
    Line { line: usize, kind: LineError },
    #[error("the script has no requests")]
    NoRequests,
    #[error("the script has no calls")]
    NoCalls,
    /// The one call of `--call` does not parse.
    #[error(transparent)]
    Call(InvokeError),
}

/// What is wrong with one line of a script; each holds the words it is
/// about, as written.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("`{0}` is not an HTTP method (expected one of {methods})", methods = METHODS.join(", "))]
    UnknownMethod(String),
    /// A standard method that `http` still refuses.
    #[error("`{0}` is not an HTTP method")]
    InvalidMethod(String),
    /// A path or URL with characters a URI may not hold; `shown` is the
    /// first few of them.
    #[error(
        "`{target}` holds characters a URI may not{}; percent-encode them (`<` is `%3C`)",
        in_parentheses(.shown)
    )]
    UriCharacters { target: String, shown: String },
    #[error("`{0}` names no host")]
    NoHost(String),
    #[error("expected a path starting with `/` or a URL, got `{0}`")]
    NotATarget(String),
    #[error("expected a header `Name: value` (or a blank line before the body), got `{0}`")]
    NotAHeader(String),
    #[error("`{0}` is not a valid header name")]
    HeaderName(String),
    #[error("the value of header `{0}` holds characters a header may not")]
    HeaderValue(String),
    /// A line of a one-line script that is not a request.
    #[error("expected `METHOD /PATH [BODY]`, got `{0}`")]
    NotARequest(String),
    /// The first line of a `.http` block that is not a request line.
    #[error("expected a request line `METHOD PATH-OR-URL [HTTP/1.1]`, got `{0}`")]
    NotARequestLine(String),
    #[error("expected `HTTP/1.1` after the URL, got `{0}`")]
    NotAVersion(String),
    /// A header where the request line should be.
    #[error(
        "expected a request line `METHOD PATH-OR-URL [HTTP/1.1]` before the headers, got `{0}`"
    )]
    HeaderFirst(String),
    /// A `Host` header that would not fit in the request's URI.
    #[error("`{0}` is not a host (`Host: NAME[:PORT]`)")]
    NotAHost(String),
    /// A call that does not parse against the component's exports.
    #[error(transparent)]
    Call(InvokeError),
}

impl LineError {
    /// This error, on line `line` of the script.
    fn at(self, line: usize) -> ScriptError {
        ScriptError::Line { line, kind: self }
    }
}

/// ` ("…")` around `shown`, or nothing when it is empty.
fn in_parentheses(shown: &str) -> String {
    if shown.is_empty() {
        String::new()
    } else {
        format!(" ({shown:?})")
    }
}

/// What a check sends, in order.
#[derive(Clone, Debug)]
pub enum Script {
    /// Requests to the component's wasi:http handler.
    Http(Vec<ScriptedRequest>),
    /// Calls of its exported functions.
    Calls(Vec<ScriptedCall>),
}

/// One function call of a script: its text, as written, and what it
/// calls.
#[derive(Clone, Debug)]
pub struct ScriptedCall {
    pub text: String,
    pub invocation: Invocation,
}

/// One request of a check script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptedRequest {
    pub method: Method,
    /// The path and query, starting with `/`.
    pub path: String,
    /// The Host to send (from an absolute URL), else `localhost`.
    pub host: Option<String>,
    /// Header lines in order, as written.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl ScriptedRequest {
    /// A `GET` of `path` with nothing else.
    pub fn get(path: &str) -> Self {
        ScriptedRequest {
            method: Method::GET,
            path: path.to_string(),
            host: None,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// The value of header `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A one-line summary: `POST /echo (12 bytes)`.
    pub fn summary(&self) -> String {
        let mut text = format!("{} {}", self.method, self.path);
        if !self.body.is_empty() {
            text.push_str(&format!(" ({} bytes)", self.body.len()));
        }
        text
    }

    /// The request as an `http::Request`; fails only for values the
    /// parser would have refused.
    pub fn to_http<B>(&self, body: B) -> Result<http::Request<B>, http::Error> {
        let host = self.host.as_deref().unwrap_or("localhost");
        let mut builder = http::Request::builder()
            .method(self.method.clone())
            .uri(format!("http://{host}{}", self.path))
            .header(http::header::HOST, host);
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("host") {
                continue;
            }
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder.body(body)
    }

    /// The request in the `.http` format (a block without the `###`).
    pub fn to_http_text(&self) -> String {
        let mut text = format!("{} {}", self.method, self.path);
        text.push_str(" HTTP/1.1\n");
        if let Some(host) = &self.host {
            text.push_str(&format!("Host: {host}\n"));
        }
        for (name, value) in &self.headers {
            if !name.eq_ignore_ascii_case("host") || self.host.is_none() {
                text.push_str(&format!("{name}: {value}\n"));
            }
        }
        if !self.body.is_empty() {
            text.push('\n');
            text.push_str(&String::from_utf8_lossy(&self.body));
            if !self.body.ends_with(b"\n") {
                text.push('\n');
            }
        }
        text
    }
}

/// The methods a script may use: the standard ones.
pub const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Calls per run when one call is repeated (`--call`), as many as the
/// default script makes.
pub const DEFAULT_CALLS: usize = 12;

/// The script used when none is given: plain GETs of `/`, enough calls for
/// state carried between calls, and chaos's re-instantiations, to show.
pub const DEFAULT_SCRIPT: &str = "# reprise check's default script\n\
    GET /\nGET /\nGET /\nGET /\nGET /\nGET /\nGET /\nGET /\nGET /\nGET /\nGET /\nGET /\n";

impl Script {
    /// Parses the script file `name` holding `text`: the `.http` format
    /// when the name ends in `.http`; otherwise HTTP requests when its
    /// first entry is one (`METHOD /PATH`), else calls in WAVE
    /// (`name(args)`), one per line, checked against `component`'s exports.
    pub fn parse_file(
        name: &str,
        text: &str,
        component: &Component,
        engine: &Engine,
    ) -> Result<Script, ScriptError> {
        if is_http_file(name) {
            return parse_http_file(text).map(Script::Http);
        }
        Script::parse(text, component, engine)
    }

    /// Parses a script in the one-line formats (requests or calls).
    pub fn parse(
        text: &str,
        component: &Component,
        engine: &Engine,
    ) -> Result<Script, ScriptError> {
        if Script::sends_requests(text) {
            return parse_script(text).map(Script::Http);
        }
        let calls = entries(text)
            .map(|(number, line)| {
                parse_invocation(component, engine, line)
                    .map(|invocation| ScriptedCall {
                        text: line.trim().to_string(),
                        invocation,
                    })
                    .map_err(|e| LineError::Call(e).at(number))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if calls.is_empty() {
            return Err(ScriptError::NoCalls);
        }
        Ok(Script::Calls(calls))
    }

    /// Whether a script file named `name` holding `text` holds HTTP
    /// requests rather than calls.
    pub fn file_sends_requests(name: &str, text: &str) -> bool {
        is_http_file(name) || Script::sends_requests(text)
    }

    /// Whether the one-line script `text` holds HTTP requests rather than
    /// calls.
    pub fn sends_requests(text: &str) -> bool {
        entries(text)
            .next()
            .is_some_and(|(_, line)| is_request(line))
    }

    /// `call` (`name(args)` in WAVE), made `times` times.
    pub fn repeated_call(
        call: &str,
        times: usize,
        component: &Component,
        engine: &Engine,
    ) -> Result<Script, ScriptError> {
        let invocation = parse_invocation(component, engine, call).map_err(ScriptError::Call)?;
        let call = ScriptedCall {
            text: call.trim().to_string(),
            invocation,
        };
        Ok(Script::Calls(vec![call; times]))
    }

    /// Calls the script makes per run.
    pub fn calls_per_run(&self) -> usize {
        match self {
            Script::Http(requests) => requests.len(),
            Script::Calls(calls) => calls.len(),
        }
    }

    /// Entry `index` as a one-line summary.
    pub fn summary(&self, index: usize) -> String {
        match self {
            Script::Http(requests) => requests.get(index).map(ScriptedRequest::summary),
            Script::Calls(calls) => calls.get(index).map(|c| c.text.clone()),
        }
        .unwrap_or_default()
    }

    /// The entries at `indices`, in that order, as a new script.
    pub fn pick(&self, indices: &[usize]) -> Script {
        match self {
            Script::Http(requests) => {
                Script::Http(indices.iter().map(|&i| requests[i].clone()).collect())
            }
            Script::Calls(calls) => {
                Script::Calls(indices.iter().map(|&i| calls[i].clone()).collect())
            }
        }
    }

    /// The script as a file that `--script` reads back: the `.http` format
    /// for requests, one WAVE call per line for calls.
    pub fn to_file_text(&self) -> String {
        match self {
            Script::Http(requests) => {
                let mut text = String::from("# written by reprise check --repro\n");
                for (index, request) in requests.iter().enumerate() {
                    text.push_str(&format!("### call {}\n", index + 1));
                    text.push_str(&request.to_http_text());
                }
                text
            }
            Script::Calls(calls) => {
                let mut text = String::from("# written by reprise check --repro\n");
                for call in calls {
                    text.push_str(&call.text);
                    text.push('\n');
                }
                text
            }
        }
    }
}

/// Whether a script line is an HTTP request (`METHOD /PATH ...`) rather
/// than a call (`name(args)`, whose name always comes with its `(`).
pub(crate) fn is_request(line: &str) -> bool {
    line.split_once(' ').is_some_and(|(method, rest)| {
        !method.is_empty()
            && method.bytes().all(|b| b.is_ascii_alphabetic())
            && (rest.starts_with('/')
                || rest.starts_with("http://")
                || rest.starts_with("https://"))
    })
}

/// The lines of a script that say something, numbered from 1: blank lines
/// and `#` comments are skipped.
fn entries(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim_end()))
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
}

/// `method` if it is a standard HTTP method.
/// `method` if it is a standard HTTP method, in any case (`get` is `GET`,
/// as the `.http` clients read it).
fn method(method: &str) -> Result<Method, LineError> {
    let upper = method.to_ascii_uppercase();
    if !METHODS.contains(&upper.as_str()) {
        return Err(LineError::UnknownMethod(method.to_string()));
    }
    Method::from_bytes(upper.as_bytes()).map_err(|_| LineError::InvalidMethod(method.to_string()))
}

/// How much of a rejected target an error repeats.
const SHOWN_TARGET: usize = 80;

/// The path and query of `target` (`/path?q` or `http://host/path?q`),
/// and the host of an absolute URL.
fn target(target: &str) -> Result<(String, Option<String>), LineError> {
    // A fragment is the client's own: no client sends it.
    let target = target.split_once('#').map_or(target, |(before, _)| before);
    let bad = |target: &str| LineError::UriCharacters {
        target: match target.char_indices().nth(SHOWN_TARGET) {
            Some((end, _)) => format!("{}…", &target[..end]),
            None => target.to_string(),
        },
        shown: target
            .chars()
            .filter(|c| !c.is_ascii_graphic() || "<>\"{}|\\^`".contains(*c))
            .take(3)
            .collect(),
    };
    if target.starts_with("http://") || target.starts_with("https://") {
        let uri: http::Uri = target.parse().map_err(|_| bad(target))?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| LineError::NoHost(target.to_string()))?;
        let path = uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        return Ok((path, Some(host)));
    }
    if !target.starts_with('/') {
        return Err(LineError::NotATarget(target.to_string()));
    }
    // The path must fit in a URI exactly as written.
    let uri: http::Uri = format!("http://localhost{target}")
        .parse()
        .map_err(|_| bad(target))?;
    if uri.path_and_query().map(|p| p.as_str()) != Some(target) {
        return Err(bad(target));
    }
    Ok((target.to_string(), None))
}

/// A header line `Name: value`.
fn header(line: &str) -> Result<(String, String), LineError> {
    let Some((name, value)) = line.split_once(':') else {
        return Err(LineError::NotAHeader(line.to_string()));
    };
    let name = name.trim();
    let value = value.trim();
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| LineError::HeaderName(name.to_string()))?;
    http::HeaderValue::from_str(value).map_err(|_| LineError::HeaderValue(name.to_string()))?;
    Ok((name.to_string(), value.to_string()))
}

/// Parses a script of HTTP requests in the one-line format: one per line,
/// `METHOD PATH [BODY]`; the body is the rest of the line, sent as is.
/// Blank lines and `#` comments are skipped.
pub fn parse_script(text: &str) -> Result<Vec<ScriptedRequest>, ScriptError> {
    let mut requests = Vec::new();
    for (number, line) in entries(text) {
        let mut parts = line.splitn(3, ' ');
        let name = parts.next().unwrap_or_default();
        let path = parts.next().unwrap_or_default();
        if !path.starts_with('/') && !path.starts_with("http") {
            return Err(LineError::NotARequest(line.to_string()).at(number));
        }
        let method = method(name).map_err(|e| e.at(number))?;
        let (path, host) = target(path).map_err(|e| e.at(number))?;
        requests.push(ScriptedRequest {
            method,
            path,
            host,
            headers: Vec::new(),
            body: Bytes::copy_from_slice(parts.next().unwrap_or_default().as_bytes()),
        });
    }
    if requests.is_empty() {
        return Err(ScriptError::NoRequests);
    }
    Ok(requests)
}

/// Whether a script file named `name` is in the `.http` format: its name
/// ends in `.http` or `.rest` (REST Client takes both), in any case.
pub fn is_http_file(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.ends_with(".http") || name.ends_with(".rest")
}

/// Parses a script in the `.http` format: requests separated by lines
/// starting with `###`; each a request line `METHOD PATH-OR-URL
/// [HTTP/1.1]`, header lines `Name: value`, a blank line, then the body up
/// to the next `###`. Lines starting with `#` or `//` before the body are
/// comments.
pub fn parse_http_file(text: &str) -> Result<Vec<ScriptedRequest>, ScriptError> {
    let mut requests = Vec::new();
    let mut block: Vec<(usize, &str)> = Vec::new();
    let lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    for (number, line) in lines {
        if line.starts_with("###") {
            if let Some(request) = http_block(&block)? {
                requests.push(request);
            }
            block.clear();
        } else {
            block.push((number, line));
        }
    }
    if let Some(request) = http_block(&block)? {
        requests.push(request);
    }
    if requests.is_empty() {
        return Err(ScriptError::NoRequests);
    }
    Ok(requests)
}

fn is_comment(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with('#') || line.starts_with("//")
}

/// One request of a `.http` file, `None` for a block of only comments.
fn http_block(block: &[(usize, &str)]) -> Result<Option<ScriptedRequest>, ScriptError> {
    let mut lines = block.iter().copied().peekable();
    // The request line: the first that is neither blank nor a comment.
    let request_line = loop {
        match lines.next() {
            None => return Ok(None),
            Some((_, line)) if line.trim().is_empty() || is_comment(line) => continue,
            Some(found) => break found,
        }
    };
    let (number, line) = request_line;
    let words: Vec<&str> = line.split_whitespace().collect();
    let (name, url) = match words.as_slice() {
        [url] if url.starts_with('/') || url.starts_with("http") => ("GET", *url),
        [name, url] | [name, url, _] => (*name, *url),
        _ => {
            return Err(LineError::NotARequestLine(line.trim().to_string()).at(number));
        }
    };
    if let [_, _, version] = words.as_slice()
        && !version.starts_with("HTTP/")
    {
        return Err(LineError::NotAVersion(version.to_string()).at(number));
    }
    if name.contains(':') {
        return Err(LineError::HeaderFirst(line.trim().to_string()).at(number));
    }
    let method = method(name).map_err(|e| e.at(number))?;
    let (path, host) = target(url).map_err(|e| e.at(number))?;
    let mut headers = Vec::new();
    let mut in_body = false;
    let mut body_lines: Vec<&str> = Vec::new();
    for (number, line) in lines {
        if in_body {
            body_lines.push(line);
        } else if line.trim().is_empty() {
            in_body = true;
        } else if is_comment(line) {
            continue;
        } else {
            let (name, value) = header(line).map_err(|e| e.at(number))?;
            // The Host is sent in the request's URI too, so it must fit
            // there (`example. HT` is a valid header value, not a host).
            if name.eq_ignore_ascii_case("host") && value.parse::<http::uri::Authority>().is_err() {
                return Err(LineError::NotAHost(value).at(number));
            }
            headers.push((name, value));
        }
    }
    while body_lines.last().is_some_and(|l| l.trim().is_empty()) {
        body_lines.pop();
    }
    let body = body_lines.join("\n");
    let host = host.or_else(|| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.clone())
    });
    Ok(Some(ScriptedRequest {
        method,
        path,
        host,
        headers,
        body: Bytes::from(body),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_scripts_parse_methods_paths_and_bodies() {
        let script = parse_script("# comment\nGET /\n\nPOST /echo hello world\n").unwrap();
        assert_eq!(script.len(), 2);
        assert_eq!(script[1].method, Method::POST);
        assert_eq!(script[1].path, "/echo");
        assert_eq!(script[1].body, Bytes::from_static(b"hello world"));
        assert!(
            parse_script("GET nowhere")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
        assert!(
            parse_script("G@T /")
                .unwrap_err()
                .to_string()
                .contains("not an HTTP method")
        );
        assert!(
            parse_script("# nothing\n")
                .unwrap_err()
                .to_string()
                .contains("no requests")
        );
        assert!(parse_script(DEFAULT_SCRIPT).unwrap().len() >= 10);
    }

    #[test]
    fn characters_a_uri_may_not_hold_are_an_error_not_a_panic() {
        let error = parse_script("GET /\nGET /?q=<b>\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("script line 2: "), "{error}");
        assert!(error.contains("URI may not"), "{error}");
        let error = parse_http_file("GET /a b c\n").unwrap_err().to_string();
        assert!(error.starts_with("script line 1: "), "{error}");
        let error = parse_script("BREW /pot\n").unwrap_err().to_string();
        assert!(error.contains("`BREW` is not an HTTP method"), "{error}");
    }

    #[test]
    fn http_files_hold_headers_and_bodies() {
        let text = "# a comment\n\
            POST /login HTTP/1.1\n\
            Content-Type: application/json\n\
            // another comment\n\
            X-User: alice\n\
            \n\
            {\"name\": \"alice\"}\n\
            \n\
            ### second\n\
            GET http://example.com/items?q=1\n\
            \n\
            ###\n\
            # only a comment\n\
            ###\n\
            DELETE /items/1\n";
        let requests = parse_http_file(text).unwrap();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].method, Method::POST);
        assert_eq!(requests[0].path, "/login");
        assert_eq!(requests[0].header("x-user"), Some("alice"));
        assert_eq!(requests[0].header("content-type"), Some("application/json"));
        assert_eq!(
            requests[0].body,
            Bytes::from_static(b"{\"name\": \"alice\"}")
        );
        assert_eq!(requests[1].path, "/items?q=1");
        assert_eq!(requests[1].host.as_deref(), Some("example.com"));
        assert!(requests[1].body.is_empty());
        assert_eq!(requests[2].method, Method::DELETE);
        // It reads back what it writes.
        let written = Script::Http(requests.clone()).to_file_text();
        let again = parse_http_file(&written).unwrap();
        assert_eq!(again.len(), 3);
        assert_eq!(again[0].body, requests[0].body);
        assert_eq!(again[0].header("x-user"), Some("alice"));
        assert_eq!(again[1].host.as_deref(), Some("example.com"));
    }

    #[test]
    fn malformed_http_files_name_the_line() {
        let cases = [
            ("GET /\nX-User alice\n", "script line 2: expected a header"),
            (
                "###\nX-User: alice\n",
                "script line 2: expected a request line",
            ),
            ("FETCH /\n", "script line 1: `FETCH` is not an HTTP method"),
            (
                "GET /\n###\n\nPOST /a b\n",
                "script line 4: expected `HTTP/1.1`",
            ),
            (
                "GET /a\nBad Name: x\n",
                "script line 2: `Bad Name` is not a valid header name",
            ),
            ("GET /?q=<b>\n", "script line 1: `/?q=<b>` holds characters"),
            ("GET nowhere\n", "script line 1: expected a path"),
            ("# nothing\n", "the script has no requests"),
        ];
        for (text, expected) in cases {
            let error = parse_http_file(text).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
    }

    /// What `.http` clients accept, check accepts: `.rest` files, any case
    /// of extension and method, and a fragment (which no client sends).
    #[test]
    fn http_files_are_read_as_their_clients_read_them() {
        for name in ["a.http", "a.rest", "A.HTTP", "dir/b.Rest"] {
            assert!(is_http_file(name), "{name}");
        }
        assert!(!is_http_file("calls.txt"));
        let requests = parse_http_file("get /a?x=1#frag\n###\npatch /b\n").unwrap();
        assert_eq!(requests[0].method, Method::GET);
        assert_eq!(requests[0].path, "/a?x=1");
        assert_eq!(requests[1].method, Method::PATCH);
        // A long bad target is not repeated whole.
        let long = format!("GET /{}<\n", "a".repeat(100_000));
        let error = parse_http_file(&long).unwrap_err().to_string();
        assert!(error.len() < 300, "{error}");
        assert!(error.contains("holds characters a URI may not"), "{error}");
    }

    #[test]
    fn a_host_header_that_is_no_host_is_an_error() {
        // Found by the `check_script` fuzz target: a request with this Host
        // parsed, then could not be sent (`to_http` failed).
        for value in ["example. HT", "", "a b", "h/p"] {
            let text = format!("DELETE /items/1\nHost: {value}\n");
            let error = parse_http_file(&text).unwrap_err().to_string();
            assert!(error.starts_with("script line 2: "), "{value:?}: {error}");
            assert!(error.contains("is not a host"), "{value:?}: {error}");
        }
        let requests = parse_http_file("GET /\nhost: example.com:8080\n").unwrap();
        assert_eq!(requests[0].host.as_deref(), Some("example.com:8080"));
        assert!(requests[0].to_http(()).is_ok());
    }

    #[test]
    fn script_lines_are_requests_or_calls() {
        assert!(is_request("GET /"));
        assert!(is_request("POST /echo some body"));
        assert!(!is_request("counter()"));
        assert!(!is_request("greet(\"a /b\")"));
        assert!(!is_request("f (1)"));
        assert!(!is_request("GET nowhere"));
    }
}
