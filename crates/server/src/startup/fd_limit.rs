//! The open-file limit. Every connected number holds a socket (and the store, the listener,
//! API clients and webhooks hold more), so `serve` and `simnet` raise the soft
//! `RLIMIT_NOFILE` to the hard limit at start (the usual soft default, 1,024, would stop a
//! gateway at about a thousand numbers), and the gateway says clearly when even the hard limit
//! is too low for the numbers it resumes.

/// Descriptors kept for everything but the numbers' sockets: the store's files, the listener,
/// API clients, webhook and media requests.
pub const RESERVED_DESCRIPTORS: u64 = 1_024;

/// The soft and hard open-file limits of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

/// The limits in force.
pub fn current() -> std::io::Result<FdLimit> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(FdLimit { soft: r.rlim_cur, hard: r.rlim_max })
}

/// Raises the soft limit to the hard one; returns the limits in force afterwards.
pub fn raise() -> std::io::Result<FdLimit> {
    let now = current()?;
    if now.soft >= now.hard {
        return Ok(now);
    }
    let r = libc::rlimit { rlim_cur: now.hard, rlim_max: now.hard };
    // SAFETY: setrlimit reads the struct it is given and nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    current()
}

/// Raises the limit and logs the outcome (for `serve` and `simnet` at start).
pub fn raise_and_log() {
    match raise() {
        Ok(l) => tracing::info!(soft = l.soft, hard = l.hard, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

/// Why `numbers` connections do not fit in `limit`, when they do not.
pub fn shortfall(limit: FdLimit, numbers: usize) -> Option<String> {
    let needed = numbers as u64 + RESERVED_DESCRIPTORS;
    (limit.soft < needed).then(|| {
        format!(
            "the open-file limit ({} soft, {} hard) is too low for {numbers} numbers: each \
             holds a socket, and {RESERVED_DESCRIPTORS} more are kept for the store, the \
             listener and clients, so at least {needed} are needed; numbers past the limit \
             fail to connect. Raise the hard limit (`ulimit -Hn`, systemd `LimitNOFILE=`, \
             docker `--ulimit nofile=`)",
            limit.soft, limit.hard
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_raised_to_the_hard_one() {
        let l = raise().unwrap();
        assert_eq!(l.soft, l.hard);
        assert_eq!(current().unwrap(), l);
    }

    #[test]
    fn a_limit_too_low_for_the_numbers_says_what_is_needed() {
        let l = FdLimit { soft: 4_096, hard: 4_096 };
        assert_eq!(shortfall(l, 3_000), None);
        let why = shortfall(l, 10_000).unwrap();
        assert!(why.contains("at least 11024 are needed"), "{why}");
        assert!(why.contains("4096 soft, 4096 hard"), "{why}");
    }
}
