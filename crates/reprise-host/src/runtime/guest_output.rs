//! Where a guest's stdout and stderr go.
//!
//! Printed as is, a guest's output interleaves with the host's own: fine
//! for a person at a terminal, but a log collector reading JSON lines
//! would choke on it, and `reprise call` / `reprise check` keep stdout for
//! their results. As log events, each line the guest prints becomes one
//! event naming the instance and the stream, in whatever format the host
//! logs in.

use crate::runtime::instance::InstanceId;
use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::async_trait;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Where a guest's output goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GuestOutput {
    /// stdout to the host's stdout, stderr to its stderr: a command's
    /// output is the command's output (`reprise run`).
    #[default]
    Inherit,
    /// Both to the host's stderr, keeping its stdout for results.
    Stderr,
    /// Each line a log event at level `info`, with the instance and stream.
    Logs,
    /// stdout kept per instance for the host to read back after each call
    /// ([`Printed`]), so `reprise check` can compare what calls print;
    /// stderr as log events.
    Captured,
}

/// The most a captured instance may print over its life; writes past it
/// fail in the guest, as on a full pipe.
const CAPTURE_LIMIT: usize = 16 << 20;

/// What an instance printed on stdout, read back a call at a time. Each
/// read hands over only what is new, so a chatty guest costs no copy of its
/// whole history per call.
#[derive(Clone, Debug, Default)]
pub struct Printed(Arc<Mutex<Capture>>);

#[derive(Debug, Default)]
struct Capture {
    unread: Vec<u8>,
    /// Everything ever written, for [`CAPTURE_LIMIT`].
    total: usize,
}

impl Printed {
    /// What was printed since the last time this was asked.
    pub fn take(&mut self) -> String {
        let unread = std::mem::take(&mut self.0.lock().unwrap().unread);
        String::from_utf8_lossy(&unread).into_owned()
    }

    /// Keeps `bytes` if the limit allows.
    fn keep(&self, bytes: &[u8]) -> Result<(), StreamError> {
        let mut capture = self.0.lock().unwrap();
        if capture.total + bytes.len() > CAPTURE_LIMIT {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "the instance printed more than reprise captures ({CAPTURE_LIMIT} bytes)"
            )));
        }
        capture.total += bytes.len();
        capture.unread.extend_from_slice(bytes);
        Ok(())
    }
}

impl IsTerminal for Printed {
    fn is_terminal(&self) -> bool {
        false
    }
}

/// Written synchronously (p2 streams too, not through a background task),
/// so whatever a call printed is there the moment it returns.
impl StdoutStream for Printed {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait]
impl OutputStream for Printed {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.keep(&bytes)
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        let total = self.0.lock().unwrap().total;
        Ok(CAPTURE_LIMIT.saturating_sub(total))
    }
}

#[async_trait]
impl Pollable for Printed {
    async fn ready(&mut self) {}
}

impl AsyncWrite for Printed {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let kept = self.keep(bytes).map(|()| bytes.len());
        Poll::Ready(kept.map_err(|e| std::io::Error::other(e.to_string())))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A guest stream whose lines become log events.
#[derive(Clone, Copy, Debug)]
pub struct LoggedStream {
    pub instance: InstanceId,
    pub stream: &'static str,
}

impl IsTerminal for LoggedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LoggedStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            stream: *self,
            pending: Vec::new(),
        })
    }
}

/// Collects bytes into lines, logging each complete one; a last line
/// without a newline is logged when the stream goes.
struct LineLogger {
    stream: LoggedStream,
    pending: Vec<u8>,
}

/// A line longer than this is logged in pieces, so a guest that never
/// prints a newline cannot grow the buffer without bound.
const MAX_LINE: usize = 16 * 1024;

impl LineLogger {
    fn log(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\n', '\r']);
        tracing::info!(
            instance = self.stream.instance,
            stream = self.stream.stream,
            "guest: {line}"
        );
    }
}

impl AsyncWrite for LineLogger {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.pending.extend_from_slice(bytes);
        while let Some(end) = this.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = this.pending.drain(..=end).collect();
            this.log(&line);
        }
        if this.pending.len() >= MAX_LINE {
            let piece = std::mem::take(&mut this.pending);
            this.log(&piece);
        }
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.log(&self.pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn each_read_returns_only_what_is_new() {
        let mut printed = Printed::default();
        let mut stream = Box::into_pin(printed.async_stream());
        stream.write_all(b"call 1\n").await.unwrap();
        assert_eq!(printed.take(), "call 1\n");
        assert_eq!(printed.take(), "");
        stream.write_all(b"call 2\n").await.unwrap();
        assert_eq!(printed.take(), "call 2\n");
    }

    #[test]
    fn what_a_p2_stream_writes_is_there_at_once() {
        let mut printed = Printed::default();
        let mut stream = printed.p2_stream();
        assert!(stream.check_write().unwrap() > 0);
        stream
            .write(Bytes::from_static(b"no flush, no task"))
            .unwrap();
        assert_eq!(printed.take(), "no flush, no task");
    }

    #[tokio::test]
    async fn writes_past_the_limit_fail() {
        let printed = Printed::default();
        let mut stream = Box::into_pin(printed.async_stream());
        stream.write_all(&vec![b'x'; CAPTURE_LIMIT]).await.unwrap();
        assert!(stream.write_all(b"one more").await.is_err());
    }
}
