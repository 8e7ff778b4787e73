//! Where a guest's stdout and stderr go.
//!
//! Printed as is, a guest's output interleaves with the host's own: fine
//! for a person at a terminal, but a log collector reading JSON lines
//! would choke on it, and `reprise call` / `reprise check` keep stdout for
//! their results. As log events, each line the guest prints becomes one
//! event naming the instance and the stream, in whatever format the host
//! logs in.

use crate::instance::InstanceId;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

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

/// What an instance printed on stdout, read back a call at a time.
#[derive(Clone, Debug)]
pub struct Printed {
    pipe: MemoryOutputPipe,
    read: usize,
}

impl Printed {
    pub(crate) fn new() -> Self {
        Self {
            pipe: MemoryOutputPipe::new(CAPTURE_LIMIT),
            read: 0,
        }
    }

    /// The guest's stdout stream.
    pub(crate) fn stream(&self) -> MemoryOutputPipe {
        self.pipe.clone()
    }

    /// What was printed since the last time this was asked.
    pub fn take(&mut self) -> String {
        let contents = self.pipe.contents();
        let new = contents.get(self.read..).unwrap_or_default();
        self.read = contents.len();
        String::from_utf8_lossy(new).into_owned()
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
