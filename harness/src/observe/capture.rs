//! libpcap capture on the peer's end of the veth: the only module that owns `pcap`.
//!
//! Opened inside the peer namespace in immediate mode with nanosecond timestamps, before the
//! DUT does anything, and read on a thread of its own until stopped. Every frame is kept with
//! its timestamp (CLOCK_REALTIME, the same clock the socket-call log uses) and written to a
//! `.pcap` that Wireshark opens.

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use pcap::{Active, Capture as PcapCapture, Linktype, Packet, PacketHeader, Precision};

use crate::net::netns::{Netns, NetnsError};
use crate::record::Captured;

/// Why capturing failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("libpcap on {ifname}: {source}")]
    Pcap { ifname: String, source: pcap::Error },
    #[error("capture stop signal: {0}")]
    Stop(nix::Error),
    #[error("capture: {0}")]
    Io(#[from] std::io::Error),
    #[error("the capture thread panicked")]
    Panicked,
}

/// A running capture.
#[derive(Debug)]
pub struct Capture {
    stop: Arc<EventFd>,
    last_ns: Arc<AtomicI64>,
    thread: JoinHandle<Result<Vec<Captured>, CaptureError>>,
}

/// CLOCK_REALTIME now, in nanoseconds: the clock of pcap timestamps.
pub fn realtime_ns() -> i64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
        .expect("CLOCK_REALTIME is always readable");
    ts.tv_sec() * 1_000_000_000 + ts.tv_nsec()
}

/// `CLOCK_REALTIME` less `CLOCK_MONOTONIC`, in ns, read now: what turns a capture time into
/// the clock the kernel's TCP timestamps count (`tcp_clock_ns`).
pub fn realtime_less_monotonic_ns() -> i64 {
    let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always readable");
    realtime_ns() - (mono.tv_sec() * 1_000_000_000 + mono.tv_nsec())
}

impl Capture {
    /// Starts capturing on `ifname` inside `ns`; frames are seen from the moment this returns.
    pub fn start(ns: &Netns, ifname: &str) -> Result<Capture, CaptureError> {
        let pcap_err = |source| CaptureError::Pcap {
            ifname: ifname.to_string(),
            source,
        };
        let name = ifname.to_string();
        let handle = ns
            .run(move || -> Result<PcapCapture<Active>, pcap::Error> {
                PcapCapture::from_device(name.as_str())?
                    .immediate_mode(true)
                    .precision(Precision::Nano)
                    .snaplen(65535)
                    .buffer_size(4 << 20)
                    .open()?
                    .setnonblock()
            })?
            .map_err(pcap_err)?;
        let stop =
            Arc::new(EventFd::from_flags(EfdFlags::EFD_CLOEXEC).map_err(CaptureError::Stop)?);
        let last_ns = Arc::new(AtomicI64::new(0));
        let (stop2, last2) = (stop.clone(), last_ns.clone());
        let ifname = ifname.to_string();
        let thread = crate::sys::priority::spawn_measured("capture", move || {
            read_until_stopped(handle, &stop2, &last2, &ifname)
        })?;
        Ok(Capture {
            stop,
            last_ns,
            thread,
        })
    }

    /// The realtime timestamp of the latest frame (0 before the first).
    pub fn last_frame_ns(&self) -> i64 {
        self.last_ns.load(Ordering::Acquire)
    }

    /// Stops the capture and returns every frame, in capture order.
    pub fn stop(self) -> Result<Vec<Captured>, CaptureError> {
        self.stop.write(1).map_err(CaptureError::Stop)?;
        self.thread.join().map_err(|_| CaptureError::Panicked)?
    }
}

fn read_until_stopped(
    mut handle: PcapCapture<Active>,
    stop: &EventFd,
    last_ns: &AtomicI64,
    ifname: &str,
) -> Result<Vec<Captured>, CaptureError> {
    let mut frames = Vec::new();
    loop {
        let stopping = {
            let mut fds = [
                PollFd::new(handle.as_fd(), PollFlags::POLLIN),
                PollFd::new(stop.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(CaptureError::Io(e.into())),
            }
            fds[1]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLIN))
        };
        // Drain what is there (also on the way out, so nothing queued is lost).
        loop {
            match handle.next_packet() {
                Ok(packet) => {
                    let t_ns = packet.header.ts.tv_sec * 1_000_000_000 + packet.header.ts.tv_usec;
                    frames.push(Captured {
                        t_ns,
                        bytes: packet.data.to_vec(),
                    });
                    last_ns.store(t_ns, Ordering::Release);
                }
                Err(pcap::Error::TimeoutExpired) | Err(pcap::Error::NoMorePackets) => break,
                Err(source) => {
                    return Err(CaptureError::Pcap {
                        ifname: ifname.into(),
                        source,
                    })
                }
            }
        }
        if stopping {
            crate::sys::reaper::dispose(handle);
            return Ok(frames);
        }
    }
}

/// Writes frames to a nanosecond-precision `.pcap` file.
pub fn write_pcap(path: &Path, frames: &[Captured]) -> Result<(), CaptureError> {
    let pcap_err = |source| CaptureError::Pcap {
        ifname: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let dead =
        PcapCapture::dead_with_precision(Linktype::ETHERNET, Precision::Nano).map_err(pcap_err)?;
    let mut file = dead.savefile(path).map_err(pcap_err)?;
    for frame in frames {
        let header = PacketHeader {
            ts: libc::timeval {
                tv_sec: frame.t_ns.div_euclid(1_000_000_000),
                tv_usec: frame.t_ns.rem_euclid(1_000_000_000),
            },
            caplen: frame.bytes.len() as u32,
            len: frame.bytes.len() as u32,
        };
        file.write(&Packet::new(&header, &frame.bytes));
    }
    file.flush().map_err(pcap_err)
}

/// Reads a `.pcap` file back (used by tests and by `tcptwin` to re-render a run).
pub fn read_pcap(path: &Path) -> Result<Vec<Captured>, CaptureError> {
    let pcap_err = |source| CaptureError::Pcap {
        ifname: path.display().to_string(),
        source,
    };
    let mut file =
        PcapCapture::from_file_with_precision(path, Precision::Nano).map_err(pcap_err)?;
    let mut frames = Vec::new();
    loop {
        match file.next_packet() {
            Ok(p) => frames.push(Captured {
                t_ns: p.header.ts.tv_sec * 1_000_000_000 + p.header.ts.tv_usec,
                bytes: p.data.to_vec(),
            }),
            Err(pcap::Error::NoMorePackets) => return Ok(frames),
            Err(e) => return Err(pcap_err(e)),
        }
    }
}
