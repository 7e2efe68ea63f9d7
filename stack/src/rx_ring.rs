//! A `PACKET_RX_RING` (`TPACKET_V2`) on the stack's receiving `AF_PACKET` socket.
//!
//! With a ring the kernel copies each frame into memory mapped into this process
//! (`tpacket_rcv`, net/packet/af_packet.c) and flips the slot's status to
//! `TP_STATUS_USER`; reading a frame is a load from that memory, not a `recvmmsg`, and
//! handing the slot back is a store of `TP_STATUS_KERNEL`. Frames the kernel receives
//! while the ring is full are dropped, as they are from a full socket queue.
//!
//! Setting a ring up waits for an RCU grace period (`packet_set_ring` calls
//! `synchronize_net()` unconditionally), 8 to 40 ms here, and so does closing a socket
//! that has one: [`Receiver`] is made ahead of the run that binds it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, Ordering};

const TPACKET_V2: libc::c_int = 1;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
/// `TPACKET_ALIGN(sizeof(struct tpacket2_hdr))`: where the `sockaddr_ll` follows the header.
const SLL_OFFSET: usize = 32;
/// `sll_pkttype` within `struct sockaddr_ll`.
const PKTTYPE_IN_SLL: usize = 10;
/// Room before the frame in a slot: `tpacket_rcv` puts the MAC header at
/// `TPACKET_ALIGN(TPACKET2_HDRLEN + 16) - 14` = 66; 80 bounds it with the alignment.
const SLOT_HEADROOM: usize = 80;
const PAGE: usize = 4096;
/// The ring's size aimed at: at least as many frames as the default socket receive
/// buffer held (`rmem_default`, 208 KiB, is some 270 small frames), fewer when an
/// interface's MTU makes slots large.
const RING_BYTES: usize = 2 << 20;
const MIN_SLOTS: usize = 32;
const MAX_SLOTS: usize = 256;

/// The `struct tpacket_req` of `PACKET_RX_RING`.
#[repr(C)]
struct TpacketReq {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}

/// A ring mapped from one socket: `slots` slots of `slot_size` bytes, one per block.
#[derive(Debug)]
pub struct RxRing {
    base: *mut u8,
    slot_size: usize,
    slots: usize,
    /// The next slot the kernel fills, in order.
    head: usize,
}

// SAFETY: the mapping belongs to this value alone and is only reached through `&mut self`.
unsafe impl Send for RxRing {}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `attach`.
        unsafe { libc::munmap(self.base.cast(), self.slot_size * self.slots) };
    }
}

fn setsockopt<T>(fd: BorrowedFd<'_>, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: valid fd; `value` is a live value of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl RxRing {
    /// Sets up a ring on `fd` (an `AF_PACKET` socket without one) for frames of an
    /// interface of `mtu`, and maps it.
    pub fn attach(fd: BorrowedFd<'_>, mtu: u32) -> io::Result<RxRing> {
        // One slot per block: a block must be whole pages, and a frame may not span two.
        let slot_size = (SLOT_HEADROOM + 14 + mtu as usize).div_ceil(PAGE) * PAGE;
        let slots = (RING_BYTES / slot_size).clamp(MIN_SLOTS, MAX_SLOTS);
        setsockopt(fd, libc::PACKET_VERSION, &TPACKET_V2)?;
        let req = TpacketReq {
            block_size: slot_size as u32,
            block_nr: slots as u32,
            frame_size: slot_size as u32,
            frame_nr: slots as u32,
        };
        setsockopt(fd, libc::PACKET_RX_RING, &req)?;
        // SAFETY: mapping the ring the kernel just allocated for this fd, shared, at 0.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                slot_size * slots,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RxRing {
            base: base.cast(),
            slot_size,
            slots,
            head: 0,
        })
    }

    fn status(&self, slot: usize) -> &AtomicU32 {
        // SAFETY: `slot < self.slots`; `tp_status` is the aligned first word of the slot,
        // shared with the kernel, so it is only touched atomically.
        unsafe { &*(self.base.add(slot * self.slot_size) as *const AtomicU32) }
    }

    /// Hands each waiting frame to `handle`, in arrival order, and its slot back to the
    /// kernel after; our own outgoing frames are skipped. A frame whose TCP checksum was
    /// left to offload (`TP_STATUS_CSUMNOTREADY`) gets it computed first, as the kernel
    /// would trust it. Stops after `max` frames; returns how many were handled.
    pub fn read(&mut self, max: usize, mut handle: impl FnMut(&[u8])) -> usize {
        let mut handled = 0;
        while handled < max {
            let slot = self.head;
            // Acquire: the kernel writes the frame, then (smp_wmb) the status.
            let status = self.status(slot).load(Ordering::Acquire);
            if status & TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the slot is ours until its status goes back to TP_STATUS_KERNEL.
            let slot_bytes = unsafe {
                std::slice::from_raw_parts_mut(self.base.add(slot * self.slot_size), self.slot_size)
            };
            let u16_at = |b: &[u8], at: usize| u16::from_ne_bytes([b[at], b[at + 1]]) as usize;
            let u32_at = |b: &[u8], at: usize| {
                u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
            };
            let snaplen = u32_at(slot_bytes, 8);
            let mac = u16_at(slot_bytes, 12);
            let outgoing = slot_bytes[SLL_OFFSET + PKTTYPE_IN_SLL] == libc::PACKET_OUTGOING;
            let end = (mac + snaplen).min(self.slot_size);
            if !outgoing && mac < end {
                let frame = &mut slot_bytes[mac..end];
                if status & TP_STATUS_CSUMNOTREADY != 0 {
                    crate::packet_socket::complete_checksum(frame);
                }
                handle(frame);
                handled += 1;
            }
            // Release: our reads of the frame come before the kernel may reuse the slot.
            self.status(slot).store(TP_STATUS_KERNEL, Ordering::Release);
            self.head = (slot + 1) % self.slots;
        }
        handled
    }
}
