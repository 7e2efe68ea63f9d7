//! Blank networks, each with its capture already running, built ahead of the runs that
//! will use them.
//!
//! Starting a libpcap capture costs an RCU grace period, 9 to 15 ms here: libpcap binds its
//! AF_PACKET socket and then sets up its ring, and `packet_set_ring` calls
//! `synchronize_net()` unconditionally (net/packet/af_packet.c). That is most of a run's
//! setup, and none of it depends on the case but the MTU (libpcap sizes its ring's frames
//! from the interface's MTU when it opens, so a blank only serves runs of its own MTU). So
//! each time a run takes a blank, a background thread builds the next one of that MTU, and
//! the grace period is spent while a case runs rather than before one.
//!
//! A run that finds no ready blank of its MTU builds one itself, as it would without this
//! module. Spare blanks live until they are taken, evicted by a blank of another MTU, or
//! the process exits (the kernel frees namespaces with their last descriptor).

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::net::packet_socket::PacketSocket;
use crate::net::topology::{Blank, Topology, TopologySpec, PEER_IF};
use crate::observe::capture::Capture;
use crate::peer;
use crate::record::RecordError;

/// How many blanks may wait ready (and be under construction) at once. Suites start a case
/// every hundred milliseconds or so, fuzzing up to a few hundred runs a second; four covers
/// a 10–15 ms build at either pace.
const SPARES: usize = 4;

/// A blank with the peer's socket open and the capture started, both on the peer's end.
struct Ready {
    /// Taken out by the run that uses it.
    parts: Option<(Blank, PacketSocket, Capture)>,
    mtu: u32,
    /// How long building it took (off the critical path when it was built ahead).
    build_ms: f64,
}

impl Drop for Ready {
    /// An evicted blank's capture thread is stopped, or it would poll forever.
    fn drop(&mut self) {
        if let Some((_, _, capture)) = self.parts.take() {
            let _ = capture.stop();
        }
    }
}

#[derive(Default)]
struct Pool {
    ready: Vec<Ready>,
    building: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    ready: Vec::new(),
    building: 0,
});

/// How a run's network was come by.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Provenance {
    /// Whether it was built ahead (taken from the pool).
    pub prewarmed: bool,
    /// How long building the blank and starting its capture took, wherever that happened.
    pub blank_ms: f64,
}

/// Signalled whenever a background build finishes.
static BUILT: Condvar = Condvar::new();

fn build(mtu: u32) -> Result<Ready, RecordError> {
    let started = Instant::now();
    let blank = Blank::build(mtu).map_err(|e| RecordError::Topology(e.to_string()))?;
    // The peer's socket first, so the capture sees each frame before the peer does.
    let socket =
        peer::open_socket(&blank.peer, PEER_IF).map_err(|e| RecordError::Peer(e.to_string()))?;
    let capture =
        Capture::start(&blank.peer, PEER_IF).map_err(|e| RecordError::Capture(e.to_string()))?;
    Ok(Ready {
        parts: Some((blank, socket, capture)),
        mtu,
        build_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

fn lock() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One background build under way: counted in `Pool::building` until dropped, also when
/// the build panics, so [`drain`] never waits for a build that will not finish.
struct Building;

impl Drop for Building {
    fn drop(&mut self) {
        lock().building -= 1;
        BUILT.notify_all();
    }
}

/// Starts building a blank of `mtu` in the background, unless enough are ready or on the way.
/// A ready blank of another MTU gives way to it (oldest first).
fn refill(mtu: u32) {
    {
        let mut pool = lock();
        if pool.ready.len() + pool.building >= SPARES {
            let Some(other) = pool.ready.iter().position(|r| r.mtu != mtu) else {
                return;
            };
            crate::sys::reaper::dispose(pool.ready.remove(other));
        }
        pool.building += 1;
    }
    let spawned = std::thread::Builder::new()
        .name("prewarm".into())
        .spawn(move || {
            let finished = Building;
            // A blank that failed to build is simply not there; the run that wanted it
            // builds its own and reports the error.
            if let Ok(ready) = build(mtu) {
                lock().ready.push(ready);
            }
            drop(finished);
        });
    if spawned.is_err() {
        lock().building -= 1;
    }
}

/// What a run starts from: its network, the peer's socket and the running capture.
#[derive(Debug)]
pub struct Prepared {
    pub topology: Topology,
    pub peer_socket: PacketSocket,
    pub capture: Capture,
    pub provenance: Provenance,
}

/// The network, peer socket and running capture for a run of `spec`: a blank built ahead
/// if one of its MTU is ready, else one built now; either way the next is started in the
/// background.
pub fn take(spec: &TopologySpec) -> Result<Prepared, RecordError> {
    let taken = {
        let mut pool = lock();
        let found = pool.ready.iter().position(|r| r.mtu == spec.mtu);
        found.map(|i| pool.ready.remove(i))
    };
    refill(spec.mtu);
    let prewarmed = taken.is_some();
    let mut ready = match taken {
        Some(ready) => ready,
        None => build(spec.mtu)?,
    };
    let provenance = Provenance {
        prewarmed,
        blank_ms: ready.build_ms,
    };
    let (blank, peer_socket, capture) = ready.parts.take().expect("a ready blank has its parts");
    match Topology::from_blank(blank, spec) {
        Ok(topology) => Ok(Prepared {
            topology,
            peer_socket,
            capture,
            provenance,
        }),
        Err(e) => {
            let _ = capture.stop();
            crate::sys::reaper::dispose(peer_socket);
            Err(RecordError::Topology(e.to_string()))
        }
    }
}

/// Waits until a blank of `mtu` is ready (true) or no build is under way or `timeout` has
/// passed (false). For tests and benchmarks that want to measure a run that found one.
pub fn wait_for_spare(mtu: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pool = lock();
    loop {
        if pool.ready.iter().any(|r| r.mtu == mtu) {
            return true;
        }
        let now = Instant::now();
        if pool.building == 0 || now >= deadline {
            return false;
        }
        pool = BUILT
            .wait_timeout(pool, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Drops every spare blank once the builds under way have finished: called when a suite or
/// fuzz run ends, so that nothing it made outlives it (a later run starts cold).
pub fn drain() {
    let spares = {
        let mut pool = lock();
        while pool.building > 0 {
            pool = BUILT.wait(pool).unwrap_or_else(|e| e.into_inner());
        }
        std::mem::take(&mut pool.ready)
    };
    drop(spares);
}
