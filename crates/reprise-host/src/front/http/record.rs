//! `reprise serve --record FILE`: every request served, appended to FILE in
//! the `.http` format of REST Client and the JetBrains HTTP client, so the
//! traffic can be replayed (or turned into a `reprise check` script).
//!
//! Each entry is a `###` separator line, `#` comment lines for what was left
//! out, the request line `METHOD PATH HTTP/1.1`, `name: value` header lines,
//! a blank line and the body. Comments go before the request line: in that
//! format every line after the blank line is body.
//!
//! The request body is teed while the component reads it (never buffered
//! ahead of the component), and the entry is written when the body ends, or
//! when the request is done without it having ended, in one write of the
//! whole entry to a file opened for appending, so entries never interleave.

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Bodies longer than this are not recorded (a comment says so instead).
pub const MAX_RECORDED_BODY: usize = 64 * 1024;

/// What replaces the value of a secret header unless secrets are recorded.
pub const REDACTED: &str = "{{redacted}}";

/// Headers whose values are credentials.
const SECRET_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

/// What became of a request's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedBody {
    /// The whole body (empty for a request without one).
    Complete(Bytes),
    /// The body ended after more than [`MAX_RECORDED_BODY`] bytes: this many.
    TooLarge(u64),
    /// The request was done before its body ended (the component did not
    /// read it to its end, or the client went away): this many bytes were
    /// read.
    Unfinished(u64),
}

/// The methods `reprise check` sends (its scripts accept no others).
pub const REPLAYABLE_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The entry recording one request: `###`, comments, the request line
/// (`path_and_query` as received, never an absolute URL), the headers (the
/// values of [`SECRET_HEADERS`] replaced by [`REDACTED`] unless `secrets`)
/// and the body, ending with a newline.
///
/// Whatever `reprise check` could not replay is left out with a comment
/// saying why, so one odd request never makes a whole recording unusable:
/// a request of another method becomes an entry of comments only, a Host
/// that is not `NAME[:PORT]` is dropped, and a body not recorded takes its
/// `content-length` and `transfer-encoding` with it (the replay sends none).
pub fn format_entry(
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &RecordedBody,
    secrets: bool,
) -> String {
    let path_and_query = if path_and_query.is_empty() {
        "/"
    } else {
        path_and_query
    };
    if !REPLAYABLE_METHODS.contains(&method) {
        return format!(
            "###\n# not replayable: `{method}` is not a method reprise check sends\n\
             # {method} {path_and_query} HTTP/1.1\n"
        );
    }
    let body_recorded = matches!(body, RecordedBody::Complete(bytes)
        if std::str::from_utf8(bytes)
            .is_ok_and(|text| !text.split('\n').any(|line| line.starts_with("###"))));
    let mut comments = Vec::new();
    let mut header_lines = String::new();
    for (name, value) in headers {
        let name = name.as_str();
        if !body_recorded && matches!(name, "content-length" | "transfer-encoding") {
            continue;
        }
        if name == "host"
            && (value.to_str().ok())
                .and_then(|v| v.parse::<http::uri::Authority>().ok())
                .is_none()
        {
            comments.push(format!(
                "# header host: a value that is not `NAME[:PORT]` not recorded ({} bytes)",
                value.len()
            ));
            continue;
        }
        let value = if !secrets && SECRET_HEADERS.contains(&name) {
            REDACTED
        } else {
            match std::str::from_utf8(value.as_bytes()) {
                Ok(value) => value,
                Err(_) => {
                    comments.push(format!(
                        "# header {name}: a non-UTF-8 value of {} bytes not recorded",
                        value.len()
                    ));
                    continue;
                }
            }
        };
        header_lines.push_str(name);
        header_lines.push_str(": ");
        header_lines.push_str(value);
        header_lines.push('\n');
    }
    let body_text = match body {
        RecordedBody::Complete(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) if text.split('\n').any(|line| line.starts_with("###")) => {
                comments.push(format!(
                    "# body of {} bytes not recorded (a line of it starts with ###, which \
                     would end the entry)",
                    bytes.len()
                ));
                ""
            }
            Ok(text) => text,
            Err(_) => {
                comments.push(format!(
                    "# binary body of {} bytes not recorded",
                    bytes.len()
                ));
                ""
            }
        },
        RecordedBody::TooLarge(len) => {
            comments.push(format!("# body of {len} bytes not recorded (over 64 KiB)"));
            ""
        }
        RecordedBody::Unfinished(read) => {
            comments.push(format!(
                "# body not recorded (the request was done before its end; {read} bytes read)"
            ));
            ""
        }
    };
    let mut entry = String::from("###\n");
    for comment in comments {
        entry.push_str(&comment);
        entry.push('\n');
    }
    entry.push_str(&format!("{method} {path_and_query} HTTP/1.1\n"));
    entry.push_str(&header_lines);
    entry.push('\n');
    if !body_text.is_empty() {
        entry.push_str(body_text);
        if !body_text.ends_with('\n') {
            entry.push('\n');
        }
    }
    entry
}

/// Appends recorded requests to a file.
#[derive(Debug)]
pub struct Recorder {
    file: Mutex<File>,
    secrets: bool,
    /// Whether a write error was logged already (it is logged once).
    failed: AtomicBool,
}

impl Recorder {
    /// Opens (creating it if need be) `path` for appending; `secrets` keeps
    /// the values of credential headers.
    pub fn open(path: &Path, secrets: bool) -> std::io::Result<Self> {
        let file = File::options().append(true).create(true).open(path)?;
        Ok(Self {
            file: Mutex::new(file),
            secrets,
            failed: AtomicBool::new(false),
        })
    }

    /// Wraps `request`'s body so the request is recorded when its body ends,
    /// or when the returned guard and the body are both dropped (the request
    /// is done), whichever comes first. Keep the guard until the response is
    /// finished.
    pub fn wrap<B: Body>(
        self: &Arc<Self>,
        request: http::Request<B>,
    ) -> (http::Request<RecordingBody<B>>, RecordGuard) {
        let headers = request_headers(&request);
        let pending = Arc::new(Pending {
            recorder: self.clone(),
            head: Mutex::new(Some(Head {
                method: request.method().to_string(),
                path_and_query: request
                    .uri()
                    .path_and_query()
                    .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
                headers,
            })),
        });
        let guard = RecordGuard {
            pending: pending.clone(),
            read: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        };
        let read = guard.read.clone();
        let request = request.map(|inner| RecordingBody {
            inner,
            pending,
            buffer: Vec::new(),
            read,
        });
        (request, guard)
    }

    fn write(&self, entry: &str) {
        let written = self.file.lock().unwrap().write_all(entry.as_bytes());
        if let Err(error) = written
            && !self.failed.swap(true, Relaxed)
        {
            tracing::error!(
                "cannot write to the --record file: {error} (further errors not logged)"
            );
        }
    }
}

/// The headers to record: as received, plus `host` from the URI's authority
/// when the request has none (HTTP/2), so the entry can be replayed.
fn request_headers<B>(request: &http::Request<B>) -> HeaderMap {
    let mut headers = request.headers().clone();
    if !headers.contains_key(http::header::HOST)
        && let Some(authority) = request.uri().authority()
        && let Ok(host) = http::HeaderValue::from_str(authority.as_str())
    {
        headers.insert(http::header::HOST, host);
    }
    headers
}

#[derive(Debug)]
struct Head {
    method: String,
    path_and_query: String,
    headers: HeaderMap,
}

/// A request not recorded yet: whoever takes its head records it.
#[derive(Debug)]
struct Pending {
    recorder: Arc<Recorder>,
    head: Mutex<Option<Head>>,
}

impl Pending {
    fn record(&self, body: RecordedBody) {
        let Some(head) = self.head.lock().unwrap().take() else {
            return;
        };
        let entry = format_entry(
            &head.method,
            &head.path_and_query,
            &head.headers,
            &body,
            self.recorder.secrets,
        );
        self.recorder.write(&entry);
    }
}

/// Records its request, body unfinished, if that has not happened when
/// dropped.
#[derive(Debug)]
pub struct RecordGuard {
    pending: Arc<Pending>,
    read: Arc<std::sync::atomic::AtomicU64>,
}

impl RecordGuard {
    /// `body` (a response body), keeping this guard until it is dropped.
    pub fn hold<B>(self, body: B) -> UnsyncBoxBody<Bytes, B::Error>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
    {
        Guarded { body, _guard: self }.boxed_unsync()
    }
}

/// A body holding a [`RecordGuard`].
struct Guarded<B> {
    body: B,
    _guard: RecordGuard,
}

impl<B: Body<Data = Bytes> + Unpin> Body for Guarded<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        self.pending
            .record(RecordedBody::Unfinished(self.read.load(Relaxed)));
    }
}

/// A request body that records its request when it ends.
pub struct RecordingBody<B: Body> {
    inner: B,
    pending: Arc<Pending>,
    /// The body so far, while it fits [`MAX_RECORDED_BODY`].
    buffer: Vec<u8>,
    /// Bytes of body read so far.
    read: Arc<std::sync::atomic::AtomicU64>,
}

impl<B: Body> RecordingBody<B> {
    fn ended(&mut self) {
        let read = self.read.load(Relaxed);
        let body = if read > MAX_RECORDED_BODY as u64 {
            RecordedBody::TooLarge(read)
        } else {
            RecordedBody::Complete(std::mem::take(&mut self.buffer).into())
        };
        self.pending.record(body);
    }
}

impl<B> Body for RecordingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let read = this.read.fetch_add(data.len() as u64, Relaxed) + data.len() as u64;
                    if read <= MAX_RECORDED_BODY as u64 {
                        this.buffer.extend_from_slice(data);
                    } else {
                        this.buffer = Vec::new();
                    }
                }
                if this.inner.is_end_stream() {
                    this.ended();
                }
            }
            Poll::Ready(None) => this.ended(),
            // A failed body (the client went away) is recorded as
            // unfinished when the request is done.
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body> Drop for RecordingBody<B> {
    fn drop(&mut self) {
        // A body with nothing left (none at all, or read to its end without
        // polling past it) has ended; one with more to come is unfinished,
        // recorded as such by the guard once the request is done.
        if self.inner.is_end_stream() {
            self.ended();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    fn complete(body: &[u8]) -> RecordedBody {
        RecordedBody::Complete(Bytes::copy_from_slice(body))
    }

    #[test]
    fn a_get_has_a_request_line_headers_and_no_body() {
        let entry = format_entry(
            "GET",
            "/search?q=1",
            &headers(&[("host", b"127.0.0.1:8080"), ("accept", b"*/*")]),
            &complete(b""),
            false,
        );
        assert_eq!(
            entry,
            "###\nGET /search?q=1 HTTP/1.1\nhost: 127.0.0.1:8080\naccept: */*\n\n"
        );
    }

    #[test]
    fn a_post_has_its_body_after_a_blank_line() {
        let entry = format_entry(
            "POST",
            "/echo",
            &headers(&[("content-length", b"11")]),
            &complete(b"hello\nworld"),
            false,
        );
        assert_eq!(
            entry,
            "###\nPOST /echo HTTP/1.1\ncontent-length: 11\n\nhello\nworld\n"
        );
    }

    #[test]
    fn secret_headers_are_redacted() {
        let map = headers(&[
            ("authorization", b"Bearer xyz"),
            ("cookie", b"session=1"),
            ("proxy-authorization", b"Basic abc"),
            ("x-user", b"ann"),
        ]);
        let entry = format_entry("GET", "/", &map, &complete(b""), false);
        assert_eq!(
            entry,
            "###\nGET / HTTP/1.1\nauthorization: {{redacted}}\ncookie: {{redacted}}\n\
             proxy-authorization: {{redacted}}\nx-user: ann\n\n"
        );
    }

    #[test]
    fn secrets_are_kept_when_asked() {
        let map = headers(&[("authorization", b"Bearer xyz"), ("cookie", b"session=1")]);
        let entry = format_entry("GET", "/", &map, &complete(b""), true);
        assert_eq!(
            entry,
            "###\nGET / HTTP/1.1\nauthorization: Bearer xyz\ncookie: session=1\n\n"
        );
    }

    #[test]
    fn a_body_over_64_kib_is_left_out_with_a_comment() {
        let entry = format_entry(
            "PUT",
            "/big",
            &headers(&[]),
            &RecordedBody::TooLarge(70_000),
            false,
        );
        assert_eq!(
            entry,
            "###\n# body of 70000 bytes not recorded (over 64 KiB)\nPUT /big HTTP/1.1\n\n"
        );
    }

    #[test]
    fn a_binary_body_is_left_out_with_a_comment() {
        let entry = format_entry(
            "POST",
            "/",
            &headers(&[]),
            &complete(&[0, 159, 146, 150]),
            false,
        );
        assert_eq!(
            entry,
            "###\n# binary body of 4 bytes not recorded\nPOST / HTTP/1.1\n\n"
        );
    }

    #[test]
    fn a_body_with_a_separator_line_is_left_out_with_a_comment() {
        let entry = format_entry("POST", "/", &headers(&[]), &complete(b"a\n### b\n"), false);
        assert!(
            entry.starts_with("###\n# body of 8 bytes not recorded (a line of it starts with ###"),
            "{entry}"
        );
        assert!(entry.ends_with("\nPOST / HTTP/1.1\n\n"), "{entry}");
        // `###` inside a line is only text.
        let entry = format_entry("POST", "/", &headers(&[]), &complete(b"a ### b"), false);
        assert!(entry.ends_with("\n\na ### b\n"), "{entry}");
    }

    #[test]
    fn non_utf8_header_values_and_unfinished_bodies_get_comments() {
        let entry = format_entry(
            "POST",
            "/",
            &headers(&[("x-raw", &[0xff, 0xfe]), ("x-ok", b"yes")]),
            &RecordedBody::Unfinished(3),
            false,
        );
        assert_eq!(
            entry,
            "###\n# header x-raw: a non-UTF-8 value of 2 bytes not recorded\n\
             # body not recorded (the request was done before its end; 3 bytes read)\n\
             POST / HTTP/1.1\nx-ok: yes\n\n"
        );
    }

    #[test]
    fn what_check_cannot_replay_is_left_out_with_a_comment() {
        let entry = format_entry("BREW", "/pot", &headers(&[]), &complete(b""), false);
        assert_eq!(
            entry,
            "###\n# not replayable: `BREW` is not a method reprise check sends\n\
             # BREW /pot HTTP/1.1\n"
        );
        let entry = format_entry(
            "POST",
            "/",
            &headers(&[("host", b"weird host"), ("content-length", b"37")]),
            &RecordedBody::Unfinished(0),
            false,
        );
        assert_eq!(
            entry,
            "###\n# header host: a value that is not `NAME[:PORT]` not recorded (10 bytes)\n\
             # body not recorded (the request was done before its end; 0 bytes read)\n\
             POST / HTTP/1.1\n\n"
        );
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("reprise-record-{}-{name}", std::process::id()))
    }

    #[tokio::test]
    async fn a_wrapped_body_is_teed_and_recorded_when_it_ends() {
        use http_body_util::{BodyExt, Full};
        let path = scratch("teed");
        let _ = std::fs::remove_file(&path);
        let recorder = Arc::new(Recorder::open(&path, false).unwrap());
        let request = http::Request::post("http://example.com/in?x=1")
            .header("authorization", "secret")
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap();
        let (request, guard) = recorder.wrap(request);
        // Nothing is written before the body ends.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let received = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&received[..], b"payload");
        drop(guard);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "###\nPOST /in?x=1 HTTP/1.1\nauthorization: {{redacted}}\nhost: example.com\n\n\
             payload\n"
        );
        // An unread body: recorded, without it, once the request is done.
        let request = http::Request::post("/unread")
            .body(Full::new(Bytes::from_static(b"never read")))
            .unwrap();
        let (request, guard) = recorder.wrap(request);
        drop(request);
        drop(guard);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with(
                "###\n# body not recorded (the request was done before its end; 0 bytes read)\n\
                 POST /unread HTTP/1.1\n\n"
            ),
            "{text}"
        );
        let _ = std::fs::remove_file(&path);
    }
}
