//! Thread priorities: the threads whose timing a case measures (the DUT's socket calls, the
//! scripted peer, the capture) must get a core the moment they wake, whatever the harness
//! is doing for other cases meanwhile.
//!
//! As root they run at `SCHED_FIFO`, which preempts everything else. Where that is refused
//! (a rootless run: `sched_setscheduler` checks `CAP_SYS_NICE` against the initial user
//! namespace), [`setup`] does the reverse: the harness's own work (namespace and veth setup,
//! prewarming, judging, teardown) drops to nice 19, and the measured threads are started by
//! a spawner thread that stayed at nice 0 (threads inherit their creator's nice value, and
//! an unprivileged thread may not lower it again). Without this, a rootless suite delayed
//! the stack's answer to an ARP reply by 10–25 ms, past the timing tolerance, in about one
//! run in three.
//!
//! Nice 0 still shares the cores with everything else the host runs at nice 0 (a parallel
//! build delayed the stack's answer to an ARP reply by 8.8 ms against a tolerance of 8), so
//! such a run also measures how late its measured threads wake ([`scheduling_allowance`])
//! and widens every timing tolerance by that, printed with its basis.

use std::io;
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, JoinHandle};

/// A thread to start at the spawner's priority.
type Job = Box<dyn FnOnce() + Send>;

/// The spawner's queue, once [`setup`] found real-time priority refused.
static SPAWNER: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();

/// Why the first refused [`realtime_priority`] call was refused, if one was.
static REALTIME_REFUSED: OnceLock<String> = OnceLock::new();

/// Gives the calling thread real-time priority (`SCHED_FIFO`). They block in system calls,
/// so they cannot starve the machine. Returns whether it was granted; a refusal is recorded
/// for [`realtime_refused`].
pub fn realtime_priority() -> bool {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: plain syscall on the calling thread with a valid parameter block.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        let why = io::Error::last_os_error();
        tracing::debug!("SCHED_FIFO refused: {why}");
        let _ = REALTIME_REFUSED.set(why.to_string());
    }
    rc == 0
}

/// Why the measured threads ran without real-time priority, if they did: a run's report
/// says so, since its timings then carry more of the host's scheduling delays.
pub fn realtime_refused() -> Option<&'static str> {
    REALTIME_REFUSED.get().map(String::as_str)
}

/// Lowers the calling thread, and every thread it starts later, to nice 19: for harness
/// work that nothing measured waits on.
pub fn background_priority() {
    // SAFETY: plain syscall on the calling thread (on Linux the nice value is per thread).
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
    if rc != 0 {
        tracing::debug!("nice 19 refused: {}", io::Error::last_os_error());
    }
}

/// Call once from `main`, after the process has its namespaces and before it starts any
/// other thread: where measured threads cannot have `SCHED_FIFO`, starts the nice-0
/// spawner and lowers the calling thread (and so the rest of the harness) to nice 19.
pub fn setup() {
    let granted = thread::Builder::new()
        .name("fifo-probe".into())
        .spawn(realtime_priority)
        .ok()
        .and_then(|probe| probe.join().ok())
        .unwrap_or(false);
    if granted {
        return;
    }
    let (tx, rx) = mpsc::channel::<Job>();
    let started = thread::Builder::new()
        .name("spawner".into())
        .spawn(move || {
            for job in rx {
                job();
            }
        });
    if started.is_ok() && SPAWNER.set(Mutex::new(tx)).is_ok() {
        background_priority();
    }
}

/// Starts a measured thread: at `SCHED_FIFO` where granted, else from the spawner, at the
/// nice value the harness had before [`setup`] lowered it (or from here, without one).
pub fn spawn_measured<R, F>(name: &str, work: F) -> io::Result<JoinHandle<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let builder = thread::Builder::new().name(name.into());
    // The thread logs in the span of the case and DUT that started it.
    let span = tracing::Span::current();
    let body = move || {
        let _span = span.entered();
        realtime_priority();
        work()
    };
    let Some(spawner) = SPAWNER.get() else {
        return builder.spawn(body);
    };
    let (handle_tx, handle_rx) = mpsc::channel();
    let job: Job = Box::new(move || {
        let _ = handle_tx.send(builder.spawn(body));
    });
    let unsent = match spawner.lock() {
        Ok(queue) => queue.send(job).err().map(|e| e.0),
        Err(_) => Some(job),
    };
    // The spawner is gone: start it from here, at this thread's priority.
    if let Some(job) = unsent {
        job();
    }
    handle_rx
        .recv()
        .map_err(|_| io::Error::other("the measured-thread spawner dropped a request"))?
}
