//! Disposes of things whose release is slow off the critical path.
//!
//! Closing an AF_PACKET socket (the peer's, libpcap's, a userspace stack's) waits for an
//! RCU grace period (`packet_release` → `synchronize_net`, net/packet/af_packet.c), 10 to
//! 30 ms here. A run hands such things to this thread instead of dropping them, so the next
//! case does not wait for the grace period of the previous one.

use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

type Garbage = Box<dyn Send>;

fn sender() -> &'static Mutex<Sender<Garbage>> {
    static SENDER: OnceLock<Mutex<Sender<Garbage>>> = OnceLock::new();
    SENDER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Garbage>();
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                // Each close waits for a grace period; concurrent waiters share one, so
                // drop each item on a thread of its own rather than one after another
                // (in turn, closed pcap rings piled up by the hundred under load).
                for garbage in rx {
                    let dropped = std::thread::Builder::new()
                        .name("reaper-drop".into())
                        .spawn(move || drop(garbage));
                    drop(dropped);
                }
            })
            .expect("spawning the reaper thread");
        Mutex::new(tx)
    })
}

/// Drops `thing` on the reaper thread (or here, if that thread is gone).
pub fn dispose<T: Send + 'static>(thing: T) {
    let boxed: Garbage = Box::new(thing);
    let unsent = match sender().lock() {
        Ok(tx) => tx.send(boxed).err().map(|e| e.0),
        Err(_) => Some(boxed),
    };
    drop(unsent);
}
