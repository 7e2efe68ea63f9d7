//! One encoding of a case's arguments for every DUT (option bytes, `sockaddr` bytes, poll
//! bits, the payload), so that every implementation is given exactly the same bytes.

use crate::case::SockOpt;

/// Linux option numbers (include/uapi/linux/tcp.h, in.h, asm-generic/socket.h).
mod opt {
    pub const TCP_MAXSEG: i32 = 2;
    pub const TCP_NODELAY: i32 = 1;
    pub const TCP_SYNCNT: i32 = 7;
    pub const TCP_WINDOW_CLAMP: i32 = 10;
    pub const TCP_QUICKACK: i32 = 12;
    pub const TCP_USER_TIMEOUT: i32 = 18;
    pub const TCP_FASTOPEN_CONNECT: i32 = 30;
    pub const TCP_RTO_MAX_MS: i32 = 44;
    pub const IP_TOS: i32 = 1;
    pub const IP_TTL: i32 = 2;
    pub const IP_OPTIONS: i32 = 4;
    pub const IP_BIND_ADDRESS_NO_PORT: i32 = 24;
    pub const IPV6_UNICAST_HOPS: i32 = 16;
    pub const IPV6_V6ONLY: i32 = 26;
    pub const IPV6_TCLASS: i32 = 67;
}

/// A case's option as `setsockopt(level, name, bytes)` takes it, with its text for the log:
/// one encoding for every DUT, so they are given exactly the same bytes.
pub fn raw_sockopt(option: &SockOpt) -> (i32, i32, Vec<u8>, String) {
    use libc::{IPPROTO_IP, IPPROTO_IPV6, IPPROTO_TCP, SOL_SOCKET};
    let int = |level, name, v: i32, label: &str| {
        (
            level,
            name,
            v.to_ne_bytes().to_vec(),
            format!("{label}={v}"),
        )
    };
    match option {
        SockOpt::TcpMaxseg(v) => int(IPPROTO_TCP, opt::TCP_MAXSEG, *v, "TCP_MAXSEG"),
        SockOpt::TcpSyncnt(v) => int(IPPROTO_TCP, opt::TCP_SYNCNT, *v, "TCP_SYNCNT"),
        SockOpt::TcpUserTimeout(v) => {
            int(IPPROTO_TCP, opt::TCP_USER_TIMEOUT, *v, "TCP_USER_TIMEOUT")
        }
        SockOpt::TcpFastopenConnect(v) => int(
            IPPROTO_TCP,
            opt::TCP_FASTOPEN_CONNECT,
            *v,
            "TCP_FASTOPEN_CONNECT",
        ),
        SockOpt::TcpWindowClamp(v) => {
            int(IPPROTO_TCP, opt::TCP_WINDOW_CLAMP, *v, "TCP_WINDOW_CLAMP")
        }
        SockOpt::TcpNodelay(v) => int(IPPROTO_TCP, opt::TCP_NODELAY, *v, "TCP_NODELAY"),
        SockOpt::TcpQuickack(v) => int(IPPROTO_TCP, opt::TCP_QUICKACK, *v, "TCP_QUICKACK"),
        SockOpt::TcpRtoMaxMs(v) => int(IPPROTO_TCP, opt::TCP_RTO_MAX_MS, *v, "TCP_RTO_MAX_MS"),
        SockOpt::SoRcvbuf(v) => int(SOL_SOCKET, libc::SO_RCVBUF, *v, "SO_RCVBUF"),
        SockOpt::SoSndbuf(v) => int(SOL_SOCKET, libc::SO_SNDBUF, *v, "SO_SNDBUF"),
        SockOpt::IpTos(v) => int(IPPROTO_IP, opt::IP_TOS, *v, "IP_TOS"),
        SockOpt::IpTtl(v) => int(IPPROTO_IP, opt::IP_TTL, *v, "IP_TTL"),
        SockOpt::IpBindAddressNoPort(v) => int(
            IPPROTO_IP,
            opt::IP_BIND_ADDRESS_NO_PORT,
            *v,
            "IP_BIND_ADDRESS_NO_PORT",
        ),
        SockOpt::Ipv6V6only(v) => int(IPPROTO_IPV6, opt::IPV6_V6ONLY, *v, "IPV6_V6ONLY"),
        SockOpt::Ipv6Tclass(v) => int(IPPROTO_IPV6, opt::IPV6_TCLASS, *v, "IPV6_TCLASS"),
        SockOpt::Ipv6UnicastHops(v) => int(
            IPPROTO_IPV6,
            opt::IPV6_UNICAST_HOPS,
            *v,
            "IPV6_UNICAST_HOPS",
        ),
        SockOpt::SoSndtimeoMs(ms) => {
            let mut bytes = i64::from(*ms / 1000).to_ne_bytes().to_vec();
            bytes.extend(i64::from(*ms % 1000 * 1000).to_ne_bytes());
            (
                SOL_SOCKET,
                libc::SO_SNDTIMEO,
                bytes,
                format!("SO_SNDTIMEO={ms}ms"),
            )
        }
        SockOpt::IpOptions(bytes) => {
            let hex: String = bytes.0.iter().map(|b| format!("{b:02x}")).collect();
            (
                IPPROTO_IP,
                opt::IP_OPTIONS,
                bytes.0.clone(),
                format!("IP_OPTIONS={hex}"),
            )
        }
    }
}

/// `getsockopt(level, name)` of a case's readable option, with its name.
pub fn raw_getopt(option: crate::case::GetOpt) -> (i32, i32, &'static str) {
    use crate::case::GetOpt;
    match option {
        GetOpt::SoError => (libc::SOL_SOCKET, libc::SO_ERROR, "SO_ERROR"),
        GetOpt::TcpMaxseg => (libc::IPPROTO_TCP, opt::TCP_MAXSEG, "TCP_MAXSEG"),
        GetOpt::SoRcvbuf => (libc::SOL_SOCKET, libc::SO_RCVBUF, "SO_RCVBUF"),
    }
}

/// A connect step's `sockaddr` bytes as a C program would pass them: the family's natural
/// structure (`sockaddr_in`, `sockaddr_in6`), cut or zero-padded to `addrlen` when the case
/// sets one. `addr` is the address already resolved for the socket (the peer's when the
/// step names none, v4-mapped in a v4-mapped case); `family` is the socket's family, whose
/// `sa_family` is passed unless the step names another.
pub fn raw_sockaddr(
    step: &crate::case::ConnectStep,
    addr: std::net::IpAddr,
    family: crate::case::IpFamily,
) -> (Vec<u8>, String) {
    use crate::case::Family;
    use std::net::IpAddr;
    let sa_family = step.family.unwrap_or(family.sa_family());
    let (mut bytes, family_name) = match sa_family {
        Family::Inet => {
            let mut b = vec![0u8; 16];
            b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&step.port.to_be_bytes());
            if let IpAddr::V4(v4) = addr {
                b[4..8].copy_from_slice(&v4.octets());
            }
            (b, "")
        }
        Family::Inet6 => {
            let mut b = vec![0u8; 28];
            b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&step.port.to_be_bytes());
            b[4..8].copy_from_slice(&step.flowinfo.to_be_bytes());
            if let IpAddr::V6(v6) = addr {
                b[8..24].copy_from_slice(&v6.octets());
            }
            b[24..28].copy_from_slice(&step.scope_id.to_ne_bytes());
            (b, "AF_INET6 ")
        }
        Family::Unspec => {
            let mut b = vec![0u8; 16];
            b[..2].copy_from_slice(&(libc::AF_UNSPEC as u16).to_ne_bytes());
            (b, "AF_UNSPEC ")
        }
    };
    // The text names what the bytes hold: an address of the other family is not passed.
    let passed = matches!(
        (sa_family, addr),
        (Family::Inet, IpAddr::V4(_)) | (Family::Inet6, IpAddr::V6(_))
    );
    let shown = if passed || sa_family == Family::Unspec {
        addr.to_string()
    } else {
        "(none)".to_string()
    };
    let mut text = match addr {
        IpAddr::V6(_) if passed => format!("{family_name}[{shown}]:{}", step.port),
        _ => format!("{family_name}{shown}:{}", step.port),
    };
    if step.flowinfo != 0 {
        text.push_str(&format!(", flowinfo {:#x}", step.flowinfo));
    }
    if step.scope_id != 0 {
        text.push_str(&format!(", scope_id {}", step.scope_id));
    }
    if let Some(len) = step.addrlen {
        bytes.resize(len as usize, 0);
        text.push_str(&format!(", addrlen {len}"));
    }
    (bytes, text)
}

const POLL_NAMES: [(u32, &str); 11] = [
    (0x001, "POLLIN"),
    (0x002, "POLLPRI"),
    (0x004, "POLLOUT"),
    (0x008, "POLLERR"),
    (0x010, "POLLHUP"),
    (0x020, "POLLNVAL"),
    (0x040, "POLLRDNORM"),
    (0x080, "POLLRDBAND"),
    (0x100, "POLLWRNORM"),
    (0x200, "POLLWRBAND"),
    (0x2000, "POLLRDHUP"),
];

/// poll(2) event bits as `POLLIN|POLLOUT`, or `0`.
pub fn poll_names(bits: u32) -> String {
    let names: Vec<&str> = POLL_NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "0".into()
    } else {
        names.join("|")
    }
}

/// The poll bits a case's step asks for.
pub fn poll_events(flags: &[crate::case::PollFlag]) -> u32 {
    use crate::case::PollFlag;
    flags.iter().fold(0, |acc, f| {
        acc | match f {
            PollFlag::In => 0x001,
            PollFlag::Out => 0x004,
            PollFlag::RdHup => 0x2000,
        }
    })
}

/// The bytes a `send` step writes: the same pattern for every DUT.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'A' + (i % 26) as u8).collect()
}
