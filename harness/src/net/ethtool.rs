//! Switches off a veth's offloads through the legacy ethtool ioctl (`SIOCETHTOOL`).
//!
//! With tx checksum offload on, the kernel's frames reach an AF_PACKET reader with partial
//! checksums, and TSO/GSO/GRO show 64 KiB super-frames in captures; with them off, captures
//! hold wire-sized frames with real checksums. This is the one module that owns the ioctl.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `SIOCETHTOOL` (include/uapi/linux/sockios.h).
const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// An offload feature with its get/set command numbers (include/uapi/linux/ethtool.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offload {
    pub name: &'static str,
    get: u32,
    set: u32,
}

/// The offloads tcptwin turns off, in an order the kernel accepts (tx checksum first: TSO and
/// scatter-gather depend on it).
pub const OFFLOADS: [Offload; 5] = [
    Offload {
        name: "tx-checksum",
        get: 0x16,
        set: 0x17,
    }, // ETHTOOL_GTXCSUM / STXCSUM
    Offload {
        name: "scatter-gather",
        get: 0x18,
        set: 0x19,
    }, // ETHTOOL_GSG / SSG
    Offload {
        name: "tso",
        get: 0x1e,
        set: 0x1f,
    }, // ETHTOOL_GTSO / STSO
    Offload {
        name: "gso",
        get: 0x23,
        set: 0x24,
    }, // ETHTOOL_GGSO / SGSO
    Offload {
        name: "gro",
        get: 0x2b,
        set: 0x2c,
    }, // ETHTOOL_GGRO / SGRO
];

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with the `ifr_data` member.
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before it is owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ethtool_value(sock: &OwnedFd, ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    let mut value = EthtoolValue { cmd, data };
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: (&mut value as *mut EthtoolValue).cast(),
        _pad: [0; 16],
    };
    for (dst, src) in req.name.iter_mut().zip(ifname.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: req is a properly laid out ifreq whose data points at a live ethtool_value.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value.data)
}

/// Turns every offload in [`OFFLOADS`] off on `ifname`, in the calling thread's namespace.
/// An offload the device cannot change (EOPNOTSUPP) is fine as long as it reads back off.
pub fn disable_offloads(ifname: &str) -> io::Result<()> {
    let sock = control_socket()?;
    for offload in OFFLOADS {
        if let Err(e) = ethtool_value(&sock, ifname, offload.set, 0) {
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{ifname}: {} off: {e}", offload.name),
                ));
            }
        }
    }
    Ok(())
}

/// Reads which of [`OFFLOADS`] are on for `ifname`, in the calling thread's namespace.
pub fn enabled_offloads(ifname: &str) -> io::Result<Vec<&'static str>> {
    let sock = control_socket()?;
    let mut on = Vec::new();
    for offload in OFFLOADS {
        if ethtool_value(&sock, ifname, offload.get, 0)? != 0 {
            on.push(offload.name);
        }
    }
    Ok(on)
}
