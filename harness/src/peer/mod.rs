//! The scripted peer: the remote end of every case. [`machine`] is what it does, sans-IO;
//! [`Peer`] runs that machine on an AF_PACKET socket in the peer namespace (whose kernel
//! holds no address, so it never answers on its own), on a thread of its own until stopped.

pub mod machine;

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::case::PeerScript;
use crate::net::netns::{Netns, NetnsError};
use crate::net::packet_socket::PacketSocket;
use crate::net::topology::{TopologySpec, PEER_IF, PEER_MAC};

pub use machine::{linux_synack_options, PeerMachine, Transmit};

/// Where the peer lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddrs {
    pub ifname: String,
    pub mac: [u8; 6],
    pub ip: IpAddr,
    /// The MSS the peer's default SYN-ACK advertises (the link MTU less the IP and TCP
    /// headers: 40 bytes, 60 over IPv6).
    pub mss: u16,
}

impl PeerAddrs {
    /// The peer of a topology: its address, the peer veth's MAC, and the MSS of its MTU.
    pub fn on(spec: &TopologySpec) -> PeerAddrs {
        PeerAddrs {
            ifname: PEER_IF.into(),
            mac: PEER_MAC,
            ip: spec.peer_ip,
            mss: (spec.mtu.saturating_sub(headers(spec.peer_ip))).min(65535) as u16,
        }
    }
}

/// The IP and TCP headers' bytes without options: what an MSS leaves out of the MTU.
fn headers(ip: IpAddr) -> u32 {
    if ip.is_ipv4() {
        40
    } else {
        60
    }
}

/// Why the peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("peer socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("peer stop signal: {0}")]
    Stop(nix::Error),
    #[error("the peer thread panicked")]
    Panicked,
}

/// What the peer thread tells the run about its sending.
struct Activity<'a> {
    busy: &'a AtomicBool,
    last_sent_ns: &'a AtomicI64,
}

/// A running peer.
#[derive(Debug)]
pub struct Peer {
    stop: Arc<EventFd>,
    busy: Arc<AtomicBool>,
    /// When the peer last put a frame on the wire (`realtime_ns`, 0 before the first).
    last_sent_ns: Arc<AtomicI64>,
    thread: JoinHandle<Result<PeerStats, PeerError>>,
}

/// What the peer did, for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub frames_in: usize,
    pub frames_out: usize,
    pub syns: usize,
}

/// Opens the peer's packet socket on `ifname` inside `ns`. Open it before the capture
/// starts: taps on a device are called newest first (`dev_add_pack` puts each at the head
/// of the list, net/core/dev.c), so the capture, opened later, records each frame before
/// the peer's socket sees it, and never shows the peer's answer ahead of its cause.
pub fn open_socket(ns: &Netns, ifname: &str) -> Result<PacketSocket, PeerError> {
    Ok(ns.run(|| PacketSocket::open(ifname))??)
}

impl Peer {
    /// Starts the peer on `socket`, opened on `addrs.ifname` beforehand ([`open_socket`]),
    /// before the capture's: see there.
    pub fn spawn(
        socket: PacketSocket,
        script: PeerScript,
        addrs: PeerAddrs,
    ) -> Result<Peer, PeerError> {
        let stop = Arc::new(EventFd::from_flags(EfdFlags::EFD_CLOEXEC).map_err(PeerError::Stop)?);
        let busy = Arc::new(AtomicBool::new(false));
        let last_sent_ns = Arc::new(AtomicI64::new(0));
        let (stop2, busy2, last_sent2) = (stop.clone(), busy.clone(), last_sent_ns.clone());
        let thread = crate::sys::priority::spawn_measured("peer", move || {
            let mut machine = PeerMachine::new(script, addrs, Instant::now());
            let stats = drive(
                &mut machine,
                &socket,
                &stop2,
                &Activity {
                    busy: &busy2,
                    last_sent_ns: &last_sent2,
                },
            );
            crate::sys::reaper::dispose(socket);
            stats
        })
        .map_err(PeerError::Io)?;
        Ok(Peer {
            stop,
            busy,
            last_sent_ns,
            thread,
        })
    }

    /// True while the peer has frames or actions scheduled for later.
    pub fn busy(&self) -> bool {
        !self.thread.is_finished() && self.busy.load(Ordering::Acquire)
    }

    /// When the peer last sent a frame (`realtime_ns`). A frame just sent may not have
    /// reached the capture yet, and the DUT's answer to it is still to come: a run that
    /// judged the line quiet from the capture alone would stop a userspace DUT before it
    /// answers. Read it after [`Peer::busy`]: a send is recorded before `busy` clears.
    pub fn last_sent_ns(&self) -> i64 {
        self.last_sent_ns.load(Ordering::Acquire)
    }

    /// Stops the peer and returns what it did.
    pub fn stop(self) -> Result<PeerStats, PeerError> {
        self.stop.write(1).map_err(PeerError::Stop)?;
        self.thread.join().map_err(|_| PeerError::Panicked)?
    }
}

/// Frames a flood sends between two looks at the socket and the stop signal.
const FLOOD_BATCH: u32 = 256;

/// Runs `machine` on `socket` until `stop` is signalled: frames in as they arrive, frames
/// out as they fall due, sleeping in `poll` until the next of either.
fn drive(
    machine: &mut PeerMachine,
    socket: &PacketSocket,
    stop: &EventFd,
    activity: &Activity,
) -> Result<PeerStats, PeerError> {
    let mut buf = vec![0u8; 65536];
    loop {
        activity.busy.store(machine.busy(), Ordering::Release);
        let timeout = match machine.poll_timeout() {
            Some(due) => {
                let left = due.saturating_duration_since(Instant::now());
                PollTimeout::try_from(left.as_millis().min(60_000) as u32 + 1)
                    .unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let mut fds = [
            PollFd::new(socket.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(PeerError::Io(e.into())),
        }
        if fds[1]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
        {
            return Ok(machine.stats());
        }
        while let Some(n) = socket.recv(&mut buf)? {
            tracing::trace!(bytes = n, "frame in");
            machine.handle(Instant::now(), &buf[..n]);
        }
        let now = Instant::now();
        let mut flooded = 0;
        while let Some(out) = machine.poll_transmit(now) {
            tracing::trace!(bytes = out.bytes.len(), "frame out");
            match socket.send(&out.bytes) {
                Ok(()) => {}
                // The veth's backlog is full: that frame is lost, as a flood's frames may be.
                Err(e) if out.lossy && e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(e) => return Err(e.into()),
            }
            activity
                .last_sent_ns
                .store(crate::observe::capture::realtime_ns(), Ordering::Release);
            flooded += u32::from(out.lossy);
            if flooded == FLOOD_BATCH {
                break;
            }
        }
    }
}
