//! The process's open-file limit, and the connection cap that stays below
//! it.
//!
//! Every connection holds a file descriptor, and so do the listeners, the
//! `--record` file, pre-opened `--dir`s, the compilation cache and the
//! runtime itself. A connection cap at or above the open-file limit lets
//! clients take every descriptor, after which accepting fails (EMFILE) and
//! so does everything else that opens a file. So the soft limit is first
//! raised to the hard limit (what an unprivileged process may do), and the
//! default cap is kept [`RESERVED_FILES`] below what that gives.

/// Descriptors kept for everything but connections.
pub const RESERVED_FILES: u64 = 128;

/// The largest default connection cap, whatever the open-file limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Raises the soft open-file limit to the hard limit. Returns the limit
/// before and after (equal when nothing changed), or `None` where the limit
/// cannot be read.
pub fn raise_open_file_limit() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid rlimit for the call to fill in.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        let before = limit.rlim_cur as u64;
        if limit.rlim_cur == limit.rlim_max {
            return Some((before, before));
        }
        let mut raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above; raising the soft limit up to the hard one is
        // allowed for any process.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            // Some systems (macOS) refuse an unlimited soft limit.
            raised.rlim_cur = limit.rlim_cur;
        }
        Some((before, raised.rlim_cur as u64))
    }
    #[cfg(not(unix))]
    None
}

/// The connection cap: `requested` if given, else [`DEFAULT_MAX_CONNECTIONS`]
/// kept [`RESERVED_FILES`] below `open_files` (and at least a quarter of
/// it). The second value says when a requested cap is not below the limit.
pub fn connection_cap(
    requested: Option<usize>,
    open_files: Option<u64>,
) -> (usize, Option<String>) {
    let room = open_files.map(|limit| {
        let room = limit.saturating_sub(RESERVED_FILES).max(limit / 4).max(1);
        usize::try_from(room).unwrap_or(usize::MAX)
    });
    match (requested, room) {
        (Some(cap), Some(room)) if cap > room => (
            cap,
            Some(format!(
                "--max-connections {cap} is not below the open-file limit ({}): once clients \
                 hold that many descriptors, accepting (and opening files) fails until some close",
                open_files.unwrap_or_default()
            )),
        ),
        (Some(cap), _) => (cap, None),
        (None, Some(room)) => (DEFAULT_MAX_CONNECTIONS.min(room), None),
        (None, None) => (DEFAULT_MAX_CONNECTIONS, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_stays_below_the_open_file_limit() {
        assert_eq!(connection_cap(None, Some(1024)).0, 1024 - 128);
        assert_eq!(connection_cap(None, Some(1 << 20)).0, 1024);
        assert_eq!(connection_cap(None, Some(100)).0, 25);
        assert_eq!(connection_cap(None, None).0, 1024);
        let (cap, warning) = connection_cap(Some(5000), Some(1024));
        assert_eq!(cap, 5000);
        assert!(warning.unwrap().contains("open-file limit"));
        assert!(connection_cap(Some(10), Some(1024)).1.is_none());
    }

    #[test]
    fn raising_the_limit_never_lowers_it() {
        if let Some((before, after)) = raise_open_file_limit() {
            assert!(after >= before);
        }
    }
}
