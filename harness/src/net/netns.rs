//! Network namespaces owned by a file descriptor.
//!
//! A namespace is made by a short-lived thread that `unshare(CLONE_NEWNET)`s and opens
//! `/proc/thread-self/ns/net`; the descriptor then keeps the namespace alive, and closing it
//! (dropping [`Netns`]) lets the kernel free everything inside: veths, routes, sockets. Work
//! inside a namespace runs on a thread that has `setns`-ed into it, never on a shared worker,
//! so the thread that called us keeps its own namespace. A socket or pcap handle keeps the
//! namespace it was created in and can be used from any thread afterwards.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::thread;

use nix::sched::{setns, unshare, CloneFlags};

/// Why a namespace could not be made or entered.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("unshare(CLONE_NEWNET) failed: {0} (tcptwin needs root or CAP_SYS_ADMIN)")]
    Unshare(nix::Error),
    #[error("not root, and a user namespace could not be made (unshare(CLONE_NEWUSER): {errno}): {hint}")]
    UserNamespace { errno: nix::Error, hint: String },
    #[error("writing /proc/self/{file} for the user namespace failed: {source}")]
    IdMap {
        file: String,
        source: std::io::Error,
    },
    #[error("opening /proc/thread-self/ns/net failed: {0}")]
    Open(std::io::Error),
    #[error("setns into a tcptwin namespace failed: {0}")]
    Setns(nix::Error),
    #[error("spawning a namespace thread failed: {0}")]
    Spawn(std::io::Error),
    #[error("a thread running inside a namespace panicked")]
    Panicked,
}

/// An anonymous network namespace, alive as long as this value (or a socket in it) lives.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
}

impl Netns {
    /// Makes a fresh, empty network namespace (only a `lo`, down).
    pub fn new() -> Result<Netns, NetnsError> {
        let maker = thread::Builder::new()
            .name("netns-new".into())
            .spawn(|| -> Result<OwnedFd, NetnsError> {
                unshare(CloneFlags::CLONE_NEWNET).map_err(NetnsError::Unshare)?;
                let file = File::open("/proc/thread-self/ns/net").map_err(NetnsError::Open)?;
                Ok(OwnedFd::from(file))
            })
            .map_err(NetnsError::Spawn)?;
        let fd = maker.join().map_err(|_| NetnsError::Panicked)??;
        Ok(Netns { fd })
    }

    /// The descriptor that names this namespace (for `IFLA_NET_NS_FD`).
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Runs `work` on a thread inside this namespace and waits for its result.
    pub fn run<R, F>(&self, work: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let span = tracing::Span::current();
        thread::scope(|scope| {
            let handle = thread::Builder::new()
                .name("netns-run".into())
                .spawn_scoped(scope, || -> Result<R, NetnsError> {
                    let _span = span.entered();
                    self.enter()?;
                    Ok(work())
                })
                .map_err(NetnsError::Spawn)?;
            handle.join().map_err(|_| NetnsError::Panicked)?
        })
    }

    /// Starts `work` on a named thread inside this namespace, for long-running parts (the peer,
    /// the capture, a DUT); join the handle for its result.
    pub fn spawn<R, F>(&self, name: &str, work: F) -> Result<thread::JoinHandle<R>, NetnsError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        // Threads in a namespace run a DUT (or a listener it talks to): measured.
        self.spawn_thread(name, true, work)
    }

    /// Starts `work` on a named thread inside this namespace at the harness's own priority:
    /// for setup that waits (on an RCU grace period) while other setup goes on.
    pub fn spawn_setup<R, F>(
        &self,
        name: &str,
        work: F,
    ) -> Result<thread::JoinHandle<R>, NetnsError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn_thread(name, false, work)
    }

    fn spawn_thread<R, F>(
        &self,
        name: &str,
        measured: bool,
        work: F,
    ) -> Result<thread::JoinHandle<R>, NetnsError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let fd = self.fd.try_clone().map_err(NetnsError::Open)?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        // The thread logs in the span of the case and DUT that started it.
        let span = tracing::Span::current();
        let body = move || {
            let _span = span.entered();
            let entered = setns(fd.as_fd(), CloneFlags::CLONE_NEWNET);
            drop(fd);
            let failed = entered.is_err();
            let _ = ready_tx.send(entered);
            if failed {
                // The caller sees the error through the channel and never joins us for a
                // result; park until the process or the caller ends.
                loop {
                    thread::park();
                }
            }
            work()
        };
        let handle = if measured {
            crate::sys::priority::spawn_measured(name, body)
        } else {
            thread::Builder::new().name(name.into()).spawn(body)
        }
        .map_err(NetnsError::Spawn)?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(e)) => Err(NetnsError::Setns(e)),
            Err(_) => Err(NetnsError::Panicked),
        }
    }

    /// Moves the calling thread into this namespace.
    fn enter(&self) -> Result<(), NetnsError> {
        setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(NetnsError::Setns)
    }
}

/// Moves the calling thread (and every thread it starts later) into a private, empty network
/// namespace, so that nothing tcptwin does can reach the namespace it was started in. Call it
/// first thing in `main`, before any other thread exists.
///
/// Run by an unprivileged user, it first enters a new user namespace in which that user is
/// root (uid and gid mapped to 0, `setgroups` denied as an unprivileged gid map requires);
/// the network namespaces made afterwards belong to that user namespace, where the process
/// holds every capability. `unshare(CLONE_NEWUSER)` refuses a process with more than one
/// thread, hence "before any thread". `TCPTWIN_ROOTLESS=1` takes this path as root too.
pub fn isolate_process() -> Result<(), NetnsError> {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    // TCPTWIN_ROOTLESS=1 takes the unprivileged path as root too (for tests of it).
    if euid == 0 && std::env::var_os("TCPTWIN_ROOTLESS").is_none() {
        return unshare(CloneFlags::CLONE_NEWNET).map_err(NetnsError::Unshare);
    }
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).map_err(|e| {
        NetnsError::UserNamespace {
            errno: e,
            hint: userns_hint(),
        }
    })?;
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text).map_err(|source| NetnsError::IdMap {
            file: file.to_string(),
            source,
        })
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("0 {euid} 1"))?;
    write("gid_map", format!("0 {egid} 1"))?;
    Ok(())
}

/// What to do when an unprivileged user namespace was refused, from the knobs this host has.
fn userns_hint() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|v| v.trim().to_string())
    };
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return "unprivileged user namespaces are disabled: run as root, or enable them with \
                `sysctl kernel.unprivileged_userns_clone=1`"
            .into();
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return "unprivileged user namespaces are disabled: run as root, or enable them with \
                `sysctl user.max_user_namespaces=15000`"
            .into();
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return "AppArmor restricts unprivileged user namespaces: run as root, or allow them \
                with `sysctl kernel.apparmor_restrict_unprivileged_userns=0`"
            .into();
    }
    "this host refuses unprivileged user namespaces (a seccomp filter or a container \
     runtime?): run as root, or check `sysctl user.max_user_namespaces` and \
     `kernel.unprivileged_userns_clone`"
        .into()
}

/// Identifies the network namespace the calling thread is in (device and inode of its nsfs
/// file), so tests can check that work ran where it should.
pub fn current_id() -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok((meta.dev(), meta.ino()))
}
