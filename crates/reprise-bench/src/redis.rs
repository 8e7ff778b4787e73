//! The Redis the `db/` scenarios' component (`redis-counter`) talks to: a
//! `redis-server` of the harness's own on a free loopback port, without
//! persistence, started once for the whole run and stopped after it.
//!
//! Every server under test gets its address as `REDIS_ADDR`, and the network
//! access to reach it, through [`Redis::host_args`].

use crate::servers;
use anyhow::{Context as _, bail};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `redis-server` may take to answer its first `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `redis-server`, killed on drop.
pub struct Redis {
    child: Child,
    addr: SocketAddr,
}

/// Which host a component's extra arguments are for: the two spell network
/// access and environment variables differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Reprise,
    Wasmtime,
}

impl Redis {
    /// Starts `binary` (a `redis-server`) on a free loopback port and waits
    /// until it answers `PING`.
    pub fn start(binary: &Path) -> anyhow::Result<Redis> {
        let addr = servers::free_port()?;
        let child = Command::new(binary)
            .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut redis = Redis { child, addr };
        let deadline = Instant::now() + START_TIMEOUT;
        while !pong(addr) {
            if let Some(status) = redis.child.try_wait()? {
                bail!("redis-server on {addr} exited at start ({status})");
            }
            if Instant::now() >= deadline {
                bail!("redis-server on {addr} did not answer PING within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What `host` needs to let the component reach this Redis.
    pub fn host_args(&self, host: Host) -> Vec<String> {
        host_args(host, &self.addr.to_string())
    }
}

/// What `host` needs to let a component reach the Redis at `addr`: network
/// access to it and `REDIS_ADDR`. `addr` may be a placeholder, for the
/// record of a command line.
pub fn host_args(host: Host, addr: &str) -> Vec<String> {
    let env = ["--env".to_string(), format!("REDIS_ADDR={addr}")];
    let net = match host {
        Host::Reprise => vec!["--allow-net".to_string(), addr.to_string()],
        Host::Wasmtime => vec!["-Sinherit-network".to_string()],
    };
    net.into_iter().chain(env).collect()
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the Redis at `addr` answers `PING` with `+PONG`.
fn pong(addr: SocketAddr) -> bool {
    let answer = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"PING\r\n")?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line)
    };
    answer().is_ok_and(|line| line.trim_end() == "+PONG")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_gets_the_address_and_network_access_its_own_way() {
        assert_eq!(
            host_args(Host::Reprise, "127.0.0.1:7000"),
            [
                "--allow-net",
                "127.0.0.1:7000",
                "--env",
                "REDIS_ADDR=127.0.0.1:7000"
            ]
        );
        assert_eq!(
            host_args(Host::Wasmtime, "127.0.0.1:7000"),
            ["-Sinherit-network", "--env", "REDIS_ADDR=127.0.0.1:7000"]
        );
    }
}
