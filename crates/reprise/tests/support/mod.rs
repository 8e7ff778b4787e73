//! Spawns the real `reprise` binary and talks real HTTP to it.
#![allow(dead_code)] // each test file uses a different part of this module

pub mod http2;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `reprise` binary under test.
pub fn reprise() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reprise"));
    command.env("RUST_LOG", "warn,reprise=info,reprise_host=info");
    command
}

/// Runs `reprise ARGS` to completion.
pub fn run(args: &[&str]) -> Output {
    reprise().args(args).output().expect("run reprise")
}

/// A `reprise serve` process on a free loopback port, killed on drop.
pub struct Server {
    child: Child,
    pub addr: String,
    pub admin: Option<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    agent: ureq::Agent,
}

impl Server {
    /// Starts `reprise serve ARGS --addr 127.0.0.1:0` and waits until it
    /// prints `listening on http://ADDR`.
    pub fn start(args: &[&str]) -> Server {
        let mut command = reprise();
        command
            .arg("serve")
            .args(args)
            .args(["--addr", "127.0.0.1:0"]);
        Server::spawn(command)
    }

    /// A plain TCP connection to the server, for clients no HTTP library
    /// plays (silent, trickling, raw HTTP/2 frames); reads time out after
    /// 10 s.
    pub fn connect_raw(&self) -> std::net::TcpStream {
        let stream = std::net::TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// GET `path`, returning the response.
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", &format!("http://{}{path}", self.addr), &[])
    }

    /// GET `path` with extra headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", &format!("http://{}{path}", self.addr), headers)
    }

    /// POST `body` to `path`; expects 200 and returns the serving instance
    /// (with `--expose-instance-id`) and the response body, up to 16 MiB.
    pub fn post(&self, path: &str, body: &[u8]) -> (Option<u64>, Vec<u8>) {
        let url = format!("http://{}{path}", self.addr);
        let mut response = self.agent.post(&url).send(body).unwrap_or_else(|e| {
            panic!("POST {url} failed: {e}\nserver stderr:\n{}", self.stderr())
        });
        assert_eq!(response.status(), 200, "server stderr:\n{}", self.stderr());
        let instance = response
            .headers()
            .get("x-reprise-instance")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        let bytes = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .unwrap();
        (instance, bytes)
    }

    /// GET `path` on the admin endpoint.
    pub fn admin_get(&self, path: &str) -> Response {
        let admin = self
            .admin
            .as_ref()
            .expect("server started with --admin-addr");
        self.request("GET", &format!("http://{admin}{path}"), &[])
    }

    fn request(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> Response {
        let mut builder = http_request(method, url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = self
            .agent
            .run(builder.body(()).unwrap())
            .unwrap_or_else(|e| {
                panic!(
                    "{method} {url} failed: {e}\nserver stderr:\n{}",
                    self.stderr()
                )
            });
        let status = response.status().as_u16();
        let instance = response
            .headers()
            .get("x-reprise-instance")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        let headers = response.headers().clone();
        let body = response.into_body().read_to_string().unwrap_or_default();
        Response {
            status,
            body,
            instance,
            headers,
        }
    }

    /// Everything the server printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Polls stderr until a line contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        for _ in 0..600 {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn send_sigterm(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.send_sigterm();
        self.child.wait().unwrap()
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit; `None`
    /// if it is still running then (it is killed when the server drops).
    pub fn terminate_within(mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.send_sigterm();
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

fn http_request(method: &str, url: &str) -> ureq::http::request::Builder {
    ureq::http::Request::builder().method(method).uri(url)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a test needs of a response.
pub struct Response {
    pub status: u16,
    pub body: String,
    /// The `x-reprise-instance` header, when exposed.
    pub instance: Option<u64>,
    pub headers: ureq::http::HeaderMap,
}

/// The value of an unlabeled metric in a Prometheus text exposition.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// A path for a scratch file named `name` under the target dir, unique to
/// this test process, so tests never collide or write into the tree.
pub fn scratch_path(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("reprise-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{}-{name}", std::process::id()))
}

/// Reads `stream` until the server closes it: what it sent, and how long
/// the close took.
pub fn read_until_closed(stream: &mut std::net::TcpStream) -> (Vec<u8>, Duration) {
    use std::io::Read;
    let start = std::time::Instant::now();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).unwrap();
    (received, start.elapsed())
}

impl Server {
    /// Spawns `command` (a `reprise serve` with its own `--addr`, or
    /// anything that runs one, such as a socket activator) and waits until
    /// it prints `listening on http://ADDR`, as [`Server::start`] does.
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn reprise serve");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(("http", addr.to_string()));
                }
                if let Some(addr) = line.strip_prefix("admin endpoint on http://") {
                    let _ = tx.send(("admin", addr.to_string()));
                }
                collected.lock().unwrap().push(line);
            }
        });
        let mut admin = None;
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(("admin", addr)) => admin = Some(addr),
                Ok((_, addr)) => break addr,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "reprise serve did not start; stderr:\n{}",
                        lines.lock().unwrap().join("\n")
                    );
                }
            }
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Server {
            child,
            addr,
            admin,
            stderr: lines,
            agent: config.into(),
        }
    }

    /// The process id of what was spawned.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited, without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

/// Sends `n` requests for `/slow` to a `counter-p3` server at `addr`, 10 ms
/// apart so they overlap, and returns the `x-in-flight` each answer reports:
/// how many requests its instance was running at once.
pub fn in_flight_of_overlapping_requests(addr: &str, n: u64) -> Vec<u32> {
    let requests: Vec<_> = (0..n)
        .map(|i| {
            let addr = addr.to_string();
            std::thread::sleep(Duration::from_millis(10 * i));
            std::thread::spawn(move || {
                let response = ureq::get(&format!("http://{addr}/slow")).call().unwrap();
                response.headers()["x-in-flight"]
                    .to_str()
                    .unwrap()
                    .parse::<u32>()
                    .unwrap()
            })
        })
        .collect();
    requests.into_iter().map(|r| r.join().unwrap()).collect()
}
