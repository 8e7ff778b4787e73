//! The servers under test: `reprise serve`, `wasmtime serve` and a native
//! hyper server, each started on a free loopback port and stopped after its
//! run.
//!
//! A server counts as started once it would serve real traffic: for Reprise
//! when its admin endpoint reports ready (an instance initialized), for
//! wasmtime when its port accepts connections (it has no readiness notion),
//! for the native server (this binary run with `--serve-native`, a process of
//! its own like the hosts) when it is bound. The first request after that is
//! timed on its own: it is where a host that initializes on demand pays for
//! it, and what pre-warming removes.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to start (a cold compile included).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The body every server under test answers, the `hello` fixture's.
pub const HELLO_BODY: &str = "hello from reprise\n";

/// A server that is up, and how long its first request took.
pub struct Running {
    pub addr: SocketAddr,
    /// Reprise's admin endpoint (`/ready`, `/metrics`); other servers have none.
    pub admin: Option<SocketAddr>,
    pub first_request: Duration,
    process: Child,
}

impl Running {
    pub fn url(&self) -> String {
        self.url_of("/")
    }

    /// The URL of `path` on this server.
    pub fn url_of(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The server's process id (valgrind's, when it runs under callgrind).
    pub fn pid(&self) -> u32 {
        self.process.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// How a server process is started.
#[derive(Clone, Copy)]
pub enum Launch<'a> {
    /// As it is.
    Direct,
    /// Under valgrind's callgrind, counting nothing until told to (see
    /// [`crate::instructions`]) and writing its counts beside `out`; with
    /// `inside_call`, counting only inside the guest's export calls.
    Callgrind {
        valgrind: &'a Path,
        out: &'a Path,
        inside_call: bool,
    },
}

/// The function every guest call of wasmtime's async API runs in: the
/// entry of the fiber the call is made on. What callgrind counts between
/// its entry and its exit is the export call, from lowering its arguments
/// to lifting its results, every host function it calls included.
const EXPORT_CALL: &str = "wasmtime_internal_fiber::unix::fiber_start";

/// A command for a host under test. Every host runs in the same
/// environment, without the caller's `RUST_BACKTRACE`: it would make
/// wasmtime capture a backtrace for every store it drops.
fn host(binary: &Path, launch: Launch) -> Command {
    let mut command = match launch {
        Launch::Direct => Command::new(binary),
        Launch::Callgrind {
            valgrind,
            out,
            inside_call,
        } => {
            let mut command = Command::new(valgrind);
            command
                .args(["--tool=callgrind", "--instr-atstart=no"])
                .arg(format!("--callgrind-out-file={}", out.display()));
            if inside_call {
                command
                    .arg("--collect-atstart=no")
                    .arg(format!("--toggle-collect={EXPORT_CALL}"));
            }
            command.arg(binary);
            command
        }
    };
    command
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    command
}

/// Starts `reprise serve COMPONENT ARGS` and waits until it is ready.
pub fn reprise(
    binary: &Path,
    component: &str,
    args: &[String],
    launch: Launch,
) -> anyhow::Result<Running> {
    let mut child = host(binary, launch)
        .arg("serve")
        .arg(component)
        .args(args)
        .args(["--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            for (prefix, kind) in [
                ("listening on http://", "http"),
                ("admin endpoint on http://", "admin"),
            ] {
                if let Some(addr) = line.strip_prefix(prefix) {
                    let _ = tx.send((kind, addr.to_string()));
                }
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let (mut addr, mut admin) = (None, None);
    while addr.is_none() || admin.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(("http", a)) => addr = Some(a.parse::<SocketAddr>()?),
            Ok((_, a)) => admin = Some(a.parse::<SocketAddr>()?),
            Err(_) => {
                let _ = child.kill();
                bail!("reprise serve {component} did not start");
            }
        }
    }
    let (addr, admin) = (addr.unwrap(), admin.unwrap());
    let mut running = Running {
        addr,
        admin: Some(admin),
        first_request: Duration::ZERO,
        process: child,
    };
    wait_until(deadline, || {
        get(admin, "/ready").is_ok_and(|(status, _)| status == 200)
    })
    .context("reprise serve never became ready")?;
    running.first_request = first_request(addr)?;
    Ok(running)
}

/// Starts `wasmtime serve -Scli ARGS COMPONENT` and waits until its port accepts.
pub fn wasmtime(
    binary: &Path,
    component: &str,
    args: &[String],
    launch: Launch,
) -> anyhow::Result<Running> {
    let addr = free_port()?;
    let mut command = host(binary, launch);
    command
        .args(["serve", "-Scli", "--addr"])
        .arg(addr.to_string())
        .args(args)
        .arg(component);
    until_accepting(command, addr, "wasmtime serve")
}

/// Starts the native hyper server, the ceiling any wasm host is measured
/// against: this binary with `--serve-native ADDR` ([`serve_native`]).
pub fn native(launch: Launch) -> anyhow::Result<Running> {
    let exe = std::env::current_exe().context("cannot locate the benchmark binary")?;
    let addr = free_port()?;
    let mut command = host(&exe, launch);
    command.arg("--serve-native").arg(addr.to_string());
    until_accepting(command, addr, "the native server")
}

/// Spawns `command`, a server that will listen on `addr`, and waits until
/// that port accepts connections.
fn until_accepting(mut command: Command, addr: SocketAddr, what: &str) -> anyhow::Result<Running> {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let mut running = Running {
        addr,
        admin: None,
        first_request: Duration::ZERO,
        process: child,
    };
    wait_until(Instant::now() + START_TIMEOUT, || {
        TcpStream::connect(addr).is_ok()
    })
    .with_context(|| format!("{what} never accepted connections"))?;
    running.first_request = first_request(addr)?;
    Ok(running)
}

/// Serves [`HELLO_BODY`] over plain hyper HTTP/1.1 on `addr` until the
/// process is killed, on a multi-threaded runtime (as many threads as
/// `reprise serve` uses).
pub fn serve_native(addr: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("cannot listen on {addr}"))?;
    runtime.block_on(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_request| async {
                    let mut response =
                        http::Response::new(Full::new(Bytes::from_static(HELLO_BODY.as_bytes())));
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/plain"),
                    );
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// A loopback address with a port nobody listens on right now.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn wait_until(deadline: Instant, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    while !ready() {
        if Instant::now() >= deadline {
            bail!("timed out after {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Times one request to a server that has just started, and checks that it
/// answered 200.
fn first_request(addr: SocketAddr) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let (status, body) = get(addr, "/")?;
    let elapsed = start.elapsed();
    if status != 200 {
        bail!("the first request to http://{addr}/ answered {status}: {body}");
    }
    Ok(elapsed)
}

/// A minimal blocking HTTP/1.1 GET (`Connection: close`, read to the end):
/// the status and the whole response, head included.
pub fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(START_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP response: {response:?}"))?;
    Ok((status, response))
}
