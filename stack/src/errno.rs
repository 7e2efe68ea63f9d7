//! Linux errno values, as the socket API of the stack reports them.

/// A Linux errno (x86-64/generic numbering, `include/uapi/asm-generic/errno*.h`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[repr(i32)]
#[allow(missing_docs)]
pub enum Errno {
    #[error("EPERM: operation not permitted")]
    EPERM = 1,
    #[error("EINTR: interrupted system call")]
    EINTR = 4,
    #[error("EBADF: bad file descriptor")]
    EBADF = 9,
    #[error("EAGAIN: resource temporarily unavailable")]
    EAGAIN = 11,
    #[error("ENOMEM: out of memory")]
    ENOMEM = 12,
    #[error("EACCES: permission denied")]
    EACCES = 13,
    #[error("EFAULT: bad address")]
    EFAULT = 14,
    #[error("ENODEV: no such device")]
    ENODEV = 19,
    #[error("EINVAL: invalid argument")]
    EINVAL = 22,
    #[error("EPIPE: broken pipe")]
    EPIPE = 32,
    #[error("EDOM: numerical argument out of domain")]
    EDOM = 33,
    #[error("ENOPROTOOPT: protocol not available")]
    ENOPROTOOPT = 92,
    #[error("ENONET: machine is not on the network")]
    ENONET = 64,
    #[error("EPROTO: protocol error")]
    EPROTO = 71,
    #[error("ENOTSOCK: socket operation on non-socket")]
    ENOTSOCK = 88,
    #[error("EMSGSIZE: message too long")]
    EMSGSIZE = 90,
    #[error("EOPNOTSUPP: operation not supported")]
    EOPNOTSUPP = 95,
    #[error("EAFNOSUPPORT: address family not supported by protocol")]
    EAFNOSUPPORT = 97,
    #[error("EADDRINUSE: address already in use")]
    EADDRINUSE = 98,
    #[error("EADDRNOTAVAIL: cannot assign requested address")]
    EADDRNOTAVAIL = 99,
    #[error("ENETUNREACH: network is unreachable")]
    ENETUNREACH = 101,
    #[error("ECONNABORTED: software caused connection abort")]
    ECONNABORTED = 103,
    #[error("ECONNRESET: connection reset by peer")]
    ECONNRESET = 104,
    #[error("EISCONN: transport endpoint is already connected")]
    EISCONN = 106,
    #[error("ENOTCONN: transport endpoint is not connected")]
    ENOTCONN = 107,
    #[error("ETIMEDOUT: connection timed out")]
    ETIMEDOUT = 110,
    #[error("ECONNREFUSED: connection refused")]
    ECONNREFUSED = 111,
    #[error("EHOSTDOWN: host is down")]
    EHOSTDOWN = 112,
    #[error("EHOSTUNREACH: no route to host")]
    EHOSTUNREACH = 113,
    #[error("EALREADY: operation already in progress")]
    EALREADY = 114,
    #[error("EINPROGRESS: operation now in progress")]
    EINPROGRESS = 115,
}

impl Errno {
    /// The numeric errno.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The symbolic name, e.g. `"ECONNREFUSED"`.
    pub fn name(self) -> &'static str {
        use Errno::*;
        match self {
            EPERM => "EPERM",
            EINTR => "EINTR",
            EBADF => "EBADF",
            EAGAIN => "EAGAIN",
            ENOMEM => "ENOMEM",
            EACCES => "EACCES",
            EFAULT => "EFAULT",
            ENODEV => "ENODEV",
            EINVAL => "EINVAL",
            EPIPE => "EPIPE",
            EDOM => "EDOM",
            ENOPROTOOPT => "ENOPROTOOPT",
            ENONET => "ENONET",
            EPROTO => "EPROTO",
            ENOTSOCK => "ENOTSOCK",
            EMSGSIZE => "EMSGSIZE",
            EOPNOTSUPP => "EOPNOTSUPP",
            EAFNOSUPPORT => "EAFNOSUPPORT",
            EADDRINUSE => "EADDRINUSE",
            EADDRNOTAVAIL => "EADDRNOTAVAIL",
            ENETUNREACH => "ENETUNREACH",
            ECONNABORTED => "ECONNABORTED",
            ECONNRESET => "ECONNRESET",
            EISCONN => "EISCONN",
            ENOTCONN => "ENOTCONN",
            ETIMEDOUT => "ETIMEDOUT",
            ECONNREFUSED => "ECONNREFUSED",
            EHOSTDOWN => "EHOSTDOWN",
            EHOSTUNREACH => "EHOSTUNREACH",
            EALREADY => "EALREADY",
            EINPROGRESS => "EINPROGRESS",
        }
    }

    /// The errno for a number, if the stack knows it.
    pub fn from_code(code: i32) -> Option<Errno> {
        use Errno::*;
        const ALL: [Errno; 31] = [
            EDOM,
            EPERM,
            EINTR,
            EBADF,
            EAGAIN,
            ENOMEM,
            EACCES,
            EFAULT,
            ENODEV,
            EINVAL,
            EPIPE,
            ENOPROTOOPT,
            ENONET,
            EPROTO,
            ENOTSOCK,
            EMSGSIZE,
            EOPNOTSUPP,
            EAFNOSUPPORT,
            EADDRINUSE,
            EADDRNOTAVAIL,
            ENETUNREACH,
            ECONNABORTED,
            ECONNRESET,
            EISCONN,
            ENOTCONN,
            ETIMEDOUT,
            ECONNREFUSED,
            EHOSTDOWN,
            EHOSTUNREACH,
            EALREADY,
            EINPROGRESS,
        ];
        ALL.into_iter().find(|e| e.code() == code)
    }
}

impl core::fmt::Debug for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_libc() {
        assert_eq!(Errno::ECONNREFUSED.code(), libc::ECONNREFUSED);
        assert_eq!(Errno::EHOSTUNREACH.code(), libc::EHOSTUNREACH);
        assert_eq!(Errno::ENETUNREACH.code(), libc::ENETUNREACH);
        assert_eq!(Errno::ETIMEDOUT.code(), libc::ETIMEDOUT);
        assert_eq!(Errno::EINPROGRESS.code(), libc::EINPROGRESS);
        assert_eq!(Errno::EALREADY.code(), libc::EALREADY);
        assert_eq!(Errno::ENOPROTOOPT.code(), libc::ENOPROTOOPT);
        assert_eq!(Errno::ENONET.code(), libc::ENONET);
        assert_eq!(Errno::EPROTO.code(), libc::EPROTO);
        assert_eq!(Errno::EHOSTDOWN.code(), libc::EHOSTDOWN);
        assert_eq!(Errno::EOPNOTSUPP.code(), libc::EOPNOTSUPP);
        assert_eq!(Errno::EADDRNOTAVAIL.code(), libc::EADDRNOTAVAIL);
        for c in 0..200 {
            if let Some(e) = Errno::from_code(c) {
                assert_eq!(e.code(), c);
            }
        }
    }
}
