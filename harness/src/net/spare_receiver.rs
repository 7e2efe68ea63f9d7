//! The userspace stack's receiving socket, made with each blank network ahead of the run
//! that binds it.
//!
//! The stack reads frames through a packet ring (`tcptwin_stack::rx_ring`), and setting one
//! up waits for an RCU grace period (`packet_set_ring` → `synchronize_net`), 8 to 40 ms
//! here; so does closing it. Blanks do not know which DUT will use them, so each gets one:
//! it is made on a thread in the DUT namespace while the rest of the blank (and, in the
//! prewarm pool, the capture with its own grace period) is built, a stack DUT takes it,
//! and one left untaken is closed on the reaper.

use std::sync::Mutex;
use std::thread::JoinHandle;

use tcptwin_stack::packet_socket::Receiver;

use crate::net::netns::Netns;

type Making = JoinHandle<std::io::Result<Receiver>>;

/// A receiver being made, or made, for one blank's DUT namespace.
#[derive(Debug)]
pub struct SpareReceiver(Mutex<Option<Making>>);

impl SpareReceiver {
    /// Starts making a receiver for an interface of `mtu` in `ns`. If the thread cannot
    /// start, there is none: [`SpareReceiver::take`] says so and the DUT makes its own.
    pub fn start(ns: &Netns, mtu: u32) -> SpareReceiver {
        let making = ns.spawn_setup("receiver", move || Receiver::new(mtu)).ok();
        SpareReceiver(Mutex::new(making))
    }

    /// The receiver, waiting for it if it is still being made; None if it was taken
    /// already or could not be made.
    pub fn take(&self) -> Option<Receiver> {
        let making = self.0.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        making.join().ok()?.ok()
    }
}

impl Drop for SpareReceiver {
    /// An untaken receiver's close waits for a grace period: not on this thread.
    fn drop(&mut self) {
        if let Some(making) = self.0.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            crate::sys::reaper::dispose(making);
        }
    }
}
