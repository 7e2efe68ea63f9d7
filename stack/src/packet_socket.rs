//! The stack's link: an `AF_PACKET` socket on the DUT interface, which the
//! [`crate::driver::Driver`] reads frames from and sends the stack's frames on.
//!
//! Namespaces: an AF_PACKET socket belongs to the network namespace of the
//! thread that creates it, so call [`PacketSocket::open`] on a thread that has
//! entered the DUT namespace. After that the socket can be used from any
//! thread. The kernel of that namespace must not own the stack's IPv4 address
//! (it would answer the stack's peers with RSTs).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::rx_ring::RxRing;

const ETH_P_ALL: u16 = 0x0003;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// Two `AF_PACKET`/`SOCK_RAW` sockets bound to one interface, nonblocking: a
/// [`Receiver`] (every protocol, through an [`RxRing`], ignoring its own outgoing
/// frames) and one that only sends.
///
/// Why two: the driver waits on the receiver with epoll, which puts an entry on
/// that socket's wait queue. Each frame a socket sends is charged to it until
/// the skb is freed, and freeing it wakes that queue (`sock_wfree` →
/// `sock_def_write_space` → `ep_poll_callback`) even though nobody waits for
/// writability. A sender that nobody waits on skips that wake-up: about 3% more
/// connects per second in `tcptwin bench --only connect-rate`.
#[derive(Debug)]
pub struct PacketSocket {
    /// Bound with `ETH_P_ALL`: the frames the stack reads, and the fd to wait on.
    receiver: Receiver,
    /// Bound with protocol 0, which registers no packet hook: it never receives.
    sender: OwnedFd,
    ifindex: i32,
}

/// The receiving socket with its ring, made in the namespace it will be bound in but
/// not bound yet, so that it can be made ahead of a run (setting up the ring waits for
/// an RCU grace period; see [`crate::rx_ring`]). Drop it off the critical path too:
/// closing it waits for another.
#[derive(Debug)]
pub struct Receiver {
    /// Declared first so it is unmapped first; the socket is released when the last of
    /// the mapping and the fd goes.
    ring: RxRing,
    fd: OwnedFd,
}

impl Receiver {
    /// A receiver with a ring for frames of an interface of `mtu`, in the calling
    /// thread's network namespace.
    pub fn new(mtu: u32) -> io::Result<Receiver> {
        let fd = packet_socket()?;
        let ring = RxRing::attach(fd.as_fd(), mtu)?;
        Ok(Receiver { ring, fd })
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.receiver.fd.as_raw_fd()
    }
}

/// The receiver: the fd that becomes readable when a frame arrives.
impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.receiver.fd.as_fd()
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A nonblocking `AF_PACKET` socket of protocol 0, unbound.
///
/// Protocol 0 at creation registers no packet hook, so a bind for `ETH_P_ALL`
/// registers one without first unregistering it, which would wait for an RCU
/// grace period (`packet_do_bind` → `__unregister_prot_hook` → `synchronize_net`),
/// ~10 ms. A bind for protocol 0 registers none at all (`packet_do_bind`).
fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the fd is owned below.
    let raw = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `raw` is a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Binds `fd` to `ifindex` for `protocol` (network order).
fn bind(fd: &OwnedFd, ifindex: i32, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; zeroed is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol;
    sll.sll_ifindex = ifindex;
    // SAFETY: valid fd, pointer and length of a sockaddr_ll.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// The index and MTU of `ifname` in the calling thread's network namespace, asked of `fd`.
fn interface(fd: &OwnedFd, ifname: &str) -> io::Result<(i32, u32)> {
    let name = std::ffi::CString::new(ifname)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *to = *from as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU reads the name and writes the MTU into `req`.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) })?;
    // SAFETY: SIOCGIFMTU filled in the `ifru_mtu` member.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok((ifindex as i32, mtu as u32))
}

impl PacketSocket {
    /// Opens the receiver and the sender on `ifname` in the calling thread's network
    /// namespace. Waits for an RCU grace period to set up the ring: see [`PacketSocket::bind`].
    pub fn open(ifname: &str) -> io::Result<Self> {
        let probe = packet_socket()?;
        let (_, mtu) = interface(&probe, ifname)?;
        Self::bind(ifname, Receiver::new(mtu)?)
    }

    /// Binds `receiver`, made ahead in this namespace, and a new sender to `ifname`.
    pub fn bind(ifname: &str, receiver: Receiver) -> io::Result<Self> {
        let sender = packet_socket()?;
        let (ifindex, _) = interface(&sender, ifname)?;
        bind(&sender, ifindex, 0)?;
        let one: libc::c_int = 1;
        // SAFETY: valid fd and an int option value. PACKET_IGNORE_OUTGOING may be
        // missing on old kernels: outgoing frames are also skipped by pkttype.
        unsafe {
            libc::setsockopt(
                receiver.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_IGNORE_OUTGOING,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        bind(&receiver.fd, ifindex, ETH_P_ALL.to_be())?;
        Ok(PacketSocket {
            receiver,
            sender,
            ifindex,
        })
    }

    /// Hands up to `max` waiting frames to `handle`, in arrival order ([`RxRing::read`]);
    /// returns how many.
    pub fn read(&mut self, max: usize, handle: impl FnMut(&[u8])) -> usize {
        self.receiver.ring.read(max, handle)
    }

    /// The interface index.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// Send one Ethernet frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: valid fd and buffer.
        let n = unsafe {
            libc::send(
                self.sender.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl PacketSocket {
    /// Send `frames` in order, as few `sendmmsg` calls as it takes. A frame larger than
    /// the device allows (`EMSGSIZE`) is lost, as in [`flush`]; any other error ends it.
    pub fn send_batch(&self, frames: &[Vec<u8>]) -> io::Result<()> {
        let mut sent = 0;
        while sent < frames.len() {
            let rest = &frames[sent..frames.len().min(sent + BATCH)];
            // SAFETY: plain old data; zeroed is a valid value for each.
            let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (i, frame) in rest.iter().enumerate() {
                iovs[i] = libc::iovec {
                    iov_base: frame.as_ptr() as *mut libc::c_void,
                    iov_len: frame.len(),
                };
                hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
                hdrs[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: every header points at a live frame for the duration of the call;
            // the kernel only reads them.
            let n = unsafe {
                libc::sendmmsg(
                    self.sender.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    0,
                )
            };
            if n > 0 {
                sent += n as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EMSGSIZE) {
                return Err(e);
            }
            // The first of the rest was refused (sendmmsg reports an error only when
            // nothing went out): it is lost, the others still go.
            sent += 1;
        }
        Ok(())
    }
}

/// Frames read per `recvmmsg` by [`PacketSocket::recv_batch`], and sent per `sendmmsg`
/// by [`PacketSocket::send_batch`].
pub const BATCH: usize = 8;

/// Compute the TCP checksum of an Ethernet/IPv4/TCP or Ethernet/IPv6/TCP frame in
/// place (an IPv6 packet whose next header is TCP; extension headers are left alone).
pub(crate) fn complete_checksum(frame: &mut [u8]) {
    use crate::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet};
    use std::net::IpAddr;
    let Ok(eth) = EthernetFrame::new_checked(&frame[..]) else {
        return;
    };
    // (source, destination, where the segment starts and ends in the frame)
    let tcp: Option<(IpAddr, IpAddr, usize, usize)> = match eth.ethertype() {
        EtherType::Ipv4 => Ipv4Packet::new_checked(eth.payload())
            .ok()
            .filter(|ip| ip.protocol() == IpProtocol::Tcp)
            .map(|ip| {
                let start = 14 + ip.header_len() as usize;
                let end = 14 + ip.total_len() as usize;
                (ip.src_addr().into(), ip.dst_addr().into(), start, end)
            }),
        EtherType::Ipv6 => Ipv6Packet::new_checked(eth.payload())
            .ok()
            .filter(|ip| ip.next_header() == IpProtocol::Tcp)
            .map(|ip| {
                let start = 14 + crate::wire::ipv6::HEADER_LEN;
                let end = start + ip.payload_len() as usize;
                (ip.src_addr().into(), ip.dst_addr().into(), start, end)
            }),
        _ => None,
    };
    let Some((src, dst, start, end)) = tcp else {
        return;
    };
    if end > frame.len() || end < start + 20 {
        return;
    }
    let seg = &mut frame[start..end];
    seg[16] = 0;
    seg[17] = 0;
    let c = crate::wire::checksum::transport(src, dst, 6, seg);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_completion() {
        use crate::wire::*;
        let tcp = TcpRepr {
            src_port: 1,
            dst_port: 2,
            flags: TcpFlags(TcpFlags::SYN),
            ..TcpRepr::default()
        };
        let (s, d) = (
            std::net::Ipv4Addr::new(1, 1, 1, 1),
            std::net::Ipv4Addr::new(2, 2, 2, 2),
        );
        let mut seg = tcp.to_bytes(s, d);
        let good = seg.clone();
        seg[16] = 0x12;
        let ip = Ipv4Repr {
            src_addr: s,
            dst_addr: d,
            protocol: IpProtocol::Tcp,
            tos: 0,
            ident: 0,
            dont_frag: true,
            ttl: 64,
            options: vec![],
            payload_len: seg.len(),
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([2; 6]),
            dst_addr: EthernetAddress([4; 6]),
            ethertype: EtherType::Ipv4,
        };
        let mut f = ethernet::build_frame(&eth, &ip.build(&seg));
        complete_checksum(&mut f);
        assert_eq!(&f[34..], &good[..]);
    }

    #[test]
    fn checksum_completion_over_ipv6() {
        use crate::wire::*;
        let tcp = TcpRepr {
            src_port: 1,
            dst_port: 2,
            flags: TcpFlags(TcpFlags::SYN),
            ..TcpRepr::default()
        };
        let s: std::net::Ipv6Addr = "2001:2::2".parse().unwrap();
        let d: std::net::Ipv6Addr = "2001:2::1".parse().unwrap();
        let good = tcp.to_bytes(s, d);
        let mut seg = good.clone();
        seg[16] = 0x12;
        let ip = Ipv6Repr {
            src_addr: s,
            dst_addr: d,
            next_header: IpProtocol::Tcp,
            traffic_class: 0,
            flow_label: 7,
            hop_limit: 64,
            payload_len: seg.len(),
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([2; 6]),
            dst_addr: EthernetAddress([4; 6]),
            ethertype: EtherType::Ipv6,
        };
        let mut f = ethernet::build_frame(&eth, &ip.build(&seg));
        complete_checksum(&mut f);
        assert_eq!(&f[54..], &good[..]);
    }
}
