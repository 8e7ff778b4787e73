//! Socket activation: listeners inherited from whoever started the process
//! (systemd, `systemd-socket-activate`, a supervisor), by systemd's
//! protocol.
//!
//! The starter opens the listening sockets itself and passes them as file
//! descriptors 3, 4, …, with `LISTEN_FDS` (how many), `LISTEN_PID` (the
//! process they are meant for: a child that inherited the environment must
//! not take them) and optionally `LISTEN_FDNAMES` (colon-separated names).
//! Because the starter keeps the sockets open, a server restarted in place
//! never refuses a connection: clients wait in the listen backlog until the
//! new process accepts them.
//!
//! Reprise knows two names: `http` (the application port) and `admin` (the
//! admin endpoint). Without those names the first descriptor is the
//! application port and the second, if any, the admin endpoint.

use std::io;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};

/// The first descriptor passed (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// What a passed descriptor is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The application (wasi:http) port.
    Http,
    /// The admin endpoint (`/ready`, `/live`, `/metrics`).
    Admin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Http => "http",
            Role::Admin => "admin",
        }
    }
}

/// Why the protocol's variables cannot be followed: they contradict each
/// other or name what Reprise does not know.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    #[error("LISTEN_PID is not a process id: {0:?}")]
    Pid(String),
    #[error("LISTEN_FDS is not a number: {0:?}")]
    Count(String),
    #[error("LISTEN_FDS is implausibly large: {0}")]
    TooMany(usize),
    #[error("LISTEN_FDNAMES names {names} sockets but LISTEN_FDS passes {count}")]
    NameCount { names: usize, count: usize },
    #[error("socket activation passed a socket named `{0}`; Reprise knows `http` and `admin`")]
    UnknownName(String),
    /// More than two sockets with no names to tell them apart.
    #[error(
        "socket activation passed {0} sockets; without the names `http` and `admin` \
         (FileDescriptorName=, --fdname=) Reprise takes at most two: the application \
         port, then the admin endpoint"
    )]
    TooManyUnnamed(usize),
    #[error("socket activation passed more than one socket named `{}`", .0.name())]
    Duplicate(Role),
}

/// Which descriptor serves which role, as the environment says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    pub http: Option<RawFd>,
    pub admin: Option<RawFd>,
}

impl Assignment {
    fn set(&mut self, role: Role, fd: RawFd) -> Result<(), ActivationError> {
        let slot = match role {
            Role::Http => &mut self.http,
            Role::Admin => &mut self.admin,
        };
        if slot.replace(fd).is_some() {
            return Err(ActivationError::Duplicate(role));
        }
        Ok(())
    }
}

/// Reads the protocol's variables (their values, as found in the
/// environment) for the process `own_pid`. `Ok(None)`: not socket-activated
/// (no `LISTEN_FDS`, none passed, or meant for another process).
pub fn parse(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    listen_fdnames: Option<&str>,
    own_pid: u32,
) -> Result<Option<Assignment>, ActivationError> {
    let Some(fds) = listen_fds else {
        return Ok(None);
    };
    // As systemd's `sd_listen_fds`: without a matching LISTEN_PID, the
    // descriptors were meant for another process (say, our parent).
    let Some(pid) = listen_pid else {
        return Ok(None);
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| ActivationError::Pid(pid.to_string()))?;
    if pid != own_pid {
        return Ok(None);
    }
    let count: usize = fds
        .trim()
        .parse()
        .map_err(|_| ActivationError::Count(fds.to_string()))?;
    if count == 0 {
        return Ok(None);
    }
    if count > 64 {
        return Err(ActivationError::TooMany(count));
    }
    let fd = |i: usize| LISTEN_FDS_START + i as RawFd;
    let names: Vec<&str> = listen_fdnames
        .map(|names| names.split(':').collect())
        .unwrap_or_default();
    let known = |name: &str| match name {
        "http" => Some(Role::Http),
        "admin" => Some(Role::Admin),
        _ => None,
    };
    let mut assignment = Assignment::default();
    if names.iter().any(|name| known(name).is_some()) {
        if names.len() != count {
            return Err(ActivationError::NameCount {
                names: names.len(),
                count,
            });
        }
        for (i, name) in names.iter().enumerate() {
            let role = known(name).ok_or_else(|| ActivationError::UnknownName(name.to_string()))?;
            assignment.set(role, fd(i))?;
        }
    } else {
        // Unnamed (or named after the unit, systemd's default): by position.
        if count > 2 {
            return Err(ActivationError::TooManyUnnamed(count));
        }
        assignment.set(Role::Http, fd(0))?;
        if count == 2 {
            assignment.set(Role::Admin, fd(1))?;
        }
    }
    Ok(Some(assignment))
}

/// Listeners passed to this process.
#[derive(Debug, Default)]
pub struct Inherited {
    pub http: Option<TcpListener>,
    pub admin: Option<TcpListener>,
}

/// Takes the listeners passed to this process, if any, and removes the
/// protocol's variables from the environment so that nothing started later
/// (guests see only `--env`, but still) takes them again. Each descriptor
/// must be a listening TCP socket; it is set close-on-exec and non-blocking.
///
/// Call it before the process starts other threads: it changes the
/// environment.
pub fn take() -> anyhow::Result<Inherited> {
    let var = |name: &str| std::env::var(name).ok();
    let (pid, fds, names) = (var("LISTEN_PID"), var("LISTEN_FDS"), var("LISTEN_FDNAMES"));
    if pid.is_none() && fds.is_none() && names.is_none() {
        return Ok(Inherited::default());
    }
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: documented precondition: no other thread runs yet.
        unsafe { std::env::remove_var(name) };
    }
    let assignment = parse(
        pid.as_deref(),
        fds.as_deref(),
        names.as_deref(),
        std::process::id(),
    )?;
    let Some(assignment) = assignment else {
        if fds.is_some() {
            tracing::debug!("LISTEN_FDS is set for another process (LISTEN_PID {pid:?}); ignored");
        }
        return Ok(Inherited::default());
    };
    let adopt = |fd: Option<RawFd>, role: Role| -> anyhow::Result<Option<TcpListener>> {
        let Some(fd) = fd else { return Ok(None) };
        let listener = adopt(fd).map_err(|e| {
            anyhow::anyhow!(
                "socket activation: descriptor {fd} (`{}`) is not usable: {e}",
                role.name()
            )
        })?;
        Ok(Some(listener))
    };
    Ok(Inherited {
        http: adopt(assignment.http, Role::Http)?,
        admin: adopt(assignment.admin, Role::Admin)?,
    })
}

/// Checks that `fd` is a listening TCP socket and takes ownership of it.
fn adopt(fd: RawFd) -> io::Result<TcpListener> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
    if sockopt(fd, libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err(invalid("not a stream socket"));
    }
    if sockopt(fd, libc::SO_ACCEPTCONN)? == 0 {
        return Err(invalid("not a listening socket"));
    }
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` is large enough for any address and `len` says so.
    let rc = unsafe { libc::getsockname(fd, (&raw mut addr).cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if !matches!(addr.ss_family as i32, libc::AF_INET | libc::AF_INET6) {
        return Err(invalid("not an IPv4 or IPv6 socket"));
    }
    // SAFETY: fcntl on a descriptor we checked is open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was passed to this process to own, and is
    // adopted once (`take` removed the variables that name it).
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn sockopt(fd: RawFd, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` describe a c_int, as these options return.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: u32 = 4242;

    fn assigned(
        http: Option<RawFd>,
        admin: Option<RawFd>,
    ) -> Result<Option<Assignment>, ActivationError> {
        Ok(Some(Assignment { http, admin }))
    }

    #[test]
    fn without_the_variables_nothing_is_inherited() {
        assert_eq!(parse(None, None, None, PID), Ok(None));
        assert_eq!(parse(Some("4242"), None, None, PID), Ok(None));
        assert_eq!(parse(Some("4242"), Some("0"), None, PID), Ok(None));
    }

    #[test]
    fn descriptors_meant_for_another_process_are_ignored() {
        assert_eq!(parse(Some("1"), Some("2"), None, PID), Ok(None));
        // systemd's sd_listen_fds also needs LISTEN_PID.
        assert_eq!(parse(None, Some("2"), None, PID), Ok(None));
    }

    #[test]
    fn unnamed_descriptors_are_http_then_admin() {
        assert_eq!(
            parse(Some("4242"), Some("1"), None, PID),
            assigned(Some(3), None)
        );
        assert_eq!(
            parse(Some("4242"), Some("2"), None, PID),
            assigned(Some(3), Some(4))
        );
        // systemd names them after the socket unit by default.
        let unit = Some("reprise.socket:reprise.socket");
        assert_eq!(
            parse(Some("4242"), Some("2"), unit, PID),
            assigned(Some(3), Some(4))
        );
        let err = parse(Some("4242"), Some("3"), None, PID)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most two"), "{err}");
    }

    #[test]
    fn names_tell_the_sockets_apart() {
        let names = Some("admin:http");
        assert_eq!(
            parse(Some("4242"), Some("2"), names, PID),
            assigned(Some(4), Some(3))
        );
        assert_eq!(
            parse(Some("4242"), Some("1"), Some("admin"), PID),
            assigned(None, Some(3))
        );
        assert_eq!(
            parse(Some(" 4242\n"), Some("1"), Some("http"), PID),
            assigned(Some(3), None)
        );
    }

    #[test]
    fn inconsistent_variables_are_errors() {
        let err = parse(Some("4242"), Some("2"), Some("http"), PID)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("names 1 sockets but LISTEN_FDS passes 2"),
            "{err}"
        );
        let err = parse(Some("4242"), Some("2"), Some("http:metrics"), PID)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`metrics`"), "{err}");
        let err = parse(Some("4242"), Some("2"), Some("http:http"), PID)
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than one socket named `http`"), "{err}");
        let err = parse(Some("4242"), Some("two"), None, PID)
            .unwrap_err()
            .to_string();
        assert!(err.contains("LISTEN_FDS is not a number"), "{err}");
        let err = parse(Some("me"), Some("1"), None, PID)
            .unwrap_err()
            .to_string();
        assert!(err.contains("LISTEN_PID"), "{err}");
    }

    #[test]
    fn a_listening_tcp_socket_is_adopted_and_closed_on_exec() {
        use std::os::fd::IntoRawFd;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fd = listener.into_raw_fd();
        // Clear close-on-exec, as a passed descriptor arrives.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        let adopted = adopt(fd).unwrap();
        assert_eq!(adopted.local_addr().unwrap(), addr);
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn other_descriptors_are_refused() {
        use std::os::fd::IntoRawFd;
        // A connected, not listening, socket.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let fd = stream.into_raw_fd();
        let err = adopt(fd).unwrap_err();
        assert!(err.to_string().contains("not a listening socket"), "{err}");
        unsafe { libc::close(fd) };
        // A file.
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(adopt(std::os::fd::AsRawFd::as_raw_fd(&file)).is_err());
    }
}
