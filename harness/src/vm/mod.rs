//! `VmKernelDut`: another Linux kernel as a device under test, booted under qemu.
//!
//! The guest has no network device at all. It mounts the host's root read-only over 9p and
//! runs this same binary as its agent (`tcptwin agent`, see [`agent`]). For every case the
//! agent builds the dut and peer namespaces, the capture and the scripted peer *inside the
//! guest*, runs the steps with [`crate::dut::KernelDut`] on the guest's kernel, and sends
//! back what [`crate::run::run_raw`] returns (frames and call log) as one JSON line over
//! a virtio-serial port. The host turns that into the trace and the diff like any other
//! run. The guest boots once per `VmKernelDut` and serves every case, several at a time.
//!
//! qemu never outlives tcptwin: it is killed when the `VmKernelDut` drops, and it gets
//! `PR_SET_PDEATHSIG(SIGKILL)`, so it dies with the thread that started it, also on SIGKILL.
//! Boot the VM on the main thread (the death signal follows the *thread* that forked).

pub mod agent;
pub mod assets;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::case::Case;
use crate::case::LoadedCase;
use crate::dut::{Dut, DutError, Running};
use crate::net::topology::Topology;
use crate::record::TimingAllowance;
use crate::record::{RecordError, RunRecord};
use crate::sys::lateness::Calibration;

/// The virtio-serial port's name, as the guest sees it in /sys/class/virtio-ports/*/name.
pub const PORT_NAME: &str = "tcptwin.agent";

/// The agent's first line: who it is and how late its timers fire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// The guest's `uname -r`.
    pub kernel_release: String,
    /// Timer lateness measured in the guest right after boot.
    pub calibration: Calibration,
}

/// A case for the agent: its file's path and text (the guest parses it itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub path: PathBuf,
    pub text: String,
}

/// The agent's answer to one [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    pub result: Result<RunRecord, String>,
}

/// Why the VM did not come up.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Assets(#[from] assets::AssetError),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("the guest did not come up ({tried}); last console lines:\n{console}")]
    Boot { tried: String, console: String },
}

/// How the guest is running.
#[derive(Debug, Clone)]
pub struct BootInfo {
    /// `kvm` or `tcg`.
    pub accel: &'static str,
    /// From starting qemu to the agent's hello, calibration included.
    pub boot_s: f64,
    pub hello: Hello,
}

type Pending = Arc<Mutex<Option<HashMap<u64, mpsc::Sender<Result<RunRecord, String>>>>>>;

/// A Linux kernel of another version under qemu, serving cases through its agent.
#[derive(Debug)]
pub struct VmKernelDut {
    name: &'static str,
    pub kernel: assets::Kernel,
    pub boot: BootInfo,
    allowance: TimingAllowance,
    writer: Mutex<UnixStream>,
    pending: Pending,
    next_id: std::sync::atomic::AtomicU64,
    qemu: Mutex<Child>,
    workdir: PathBuf,
    /// Cases running in the guest now; at most [`GUEST_JOBS`].
    running: (Mutex<usize>, std::sync::Condvar),
}

/// Cases the guest runs at once. Two emulated CPUs on a two-core host: with more, the
/// guest's timers fire late by tens of ms (seen: a non-blocking connect taking 70 ms with
/// 16 at once). The boot calibration sleeps on this many threads to measure the same load.
pub const GUEST_JOBS: usize = 4;

impl VmKernelDut {
    /// Boots Linux `version` (e.g. `6.1`) from tcptwin's cache, with `agent` (this
    /// program's binary) as the guest's agent. KVM is tried when /dev/kvm opens and its
    /// guest comes up; otherwise, or when it fails, TCG.
    pub fn boot(version: &str, agent: &Path) -> Result<VmKernelDut, VmError> {
        let cache = assets::cache_dir();
        let qemu = assets::find_qemu(&cache)?;
        let kernel = assets::find_kernel(&cache, version)?;
        let busybox = assets::find_busybox(&cache)?;
        let workdir =
            std::env::temp_dir().join(format!("tcptwin-vm-{}-{}", std::process::id(), version));
        std::fs::create_dir_all(&workdir)
            .map_err(|e| VmError::Io(workdir.display().to_string(), e))?;
        let initrd = workdir.join("initramfs.cpio");
        assets::build_initramfs(&initrd, &busybox, &kernel)?;
        let agent = std::fs::canonicalize(agent)
            .map_err(|e| VmError::Io(agent.display().to_string(), e))?;
        let kvm_opens = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        let accels: &[&'static str] = if kvm_opens { &["kvm", "tcg"] } else { &["tcg"] };
        let mut tried = Vec::new();
        let mut console = String::new();
        for accel in accels {
            match start(&qemu, &kernel, &initrd, &agent, &workdir, accel) {
                Ok((child, stream, hello, boot_s)) => {
                    let allowance = hello
                        .calibration
                        .allowance("guest timer lateness measured at boot");
                    let name: &'static str = Box::leak(format!("vm:{version}").into_boxed_str());
                    let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
                    let reader = stream
                        .try_clone()
                        .map_err(|e| VmError::Io("agent socket".into(), e))?;
                    spawn_reader(reader, pending.clone());
                    return Ok(VmKernelDut {
                        name,
                        kernel,
                        boot: BootInfo {
                            accel,
                            boot_s,
                            hello,
                        },
                        allowance,
                        writer: Mutex::new(stream),
                        pending,
                        next_id: Default::default(),
                        qemu: Mutex::new(child),
                        workdir,
                        running: Default::default(),
                    });
                }
                Err(why) => {
                    tracing::debug!(accel, %why, "guest did not come up");
                    tried.push(format!("{accel}: {why}"));
                    console = tail(&workdir.join(format!("console-{accel}.log")), 15);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&workdir);
        Err(VmError::Boot {
            tried: tried.join("; "),
            console,
        })
    }

    /// One line for reports: what runs and how its timing is judged.
    pub fn describe(&self) -> String {
        format!(
            "{}: Linux {} under qemu ({}), booted in {:.1} s; timing tolerance +{:.0} ms: {}",
            self.name,
            self.boot.hello.kernel_release,
            self.boot.accel,
            self.boot.boot_s,
            self.allowance.extra_ms,
            self.allowance.basis
        )
    }

    fn ask(&self, loaded: &LoadedCase) -> Result<RunRecord, String> {
        {
            let (count, cv) = &self.running;
            let mut n = cv
                .wait_while(count.lock().unwrap(), |n| *n >= GUEST_JOBS)
                .unwrap();
            *n += 1;
        }
        let result = self.ask_now(loaded);
        let (count, cv) = &self.running;
        *count.lock().unwrap() -= 1;
        cv.notify_one();
        result
    }

    fn ask_now(&self, loaded: &LoadedCase) -> Result<RunRecord, String> {
        let text = std::fs::read_to_string(&loaded.path)
            .map_err(|e| format!("reading {}: {e}", loaded.path.display()))?;
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        match self.pending.lock().unwrap().as_mut() {
            Some(map) => map.insert(id, tx),
            None => return Err(self.gone()),
        };
        let mut line = serde_json::to_string(&Request {
            id,
            path: loaded.path.clone(),
            text,
        })
        .map_err(|e| e.to_string())?;
        line.push('\n');
        self.writer
            .lock()
            .unwrap()
            .write_all(line.as_bytes())
            .map_err(|e| format!("writing to the guest's agent: {e}"))?;
        // The guest enforces the case's time limit itself; this only catches a hung guest.
        let limit = Duration::from_secs_f64(loaded.case.time_limit_s.0) + Duration::from_secs(120);
        match rx.recv_timeout(limit) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(format!("the guest's agent did not answer within {limit:?}"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(self.gone()),
        }
    }

    fn gone(&self) -> String {
        format!(
            "the guest's agent went away; last console lines:\n{}",
            tail(
                &self
                    .workdir
                    .join(format!("console-{}.log", self.boot.accel)),
                15
            )
        )
    }
}

impl Drop for VmKernelDut {
    fn drop(&mut self) {
        if let Ok(child) = self.qemu.get_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

impl Dut for VmKernelDut {
    fn name(&self) -> &'static str {
        self.name
    }

    fn kernel_owns_address(&self) -> bool {
        true
    }

    fn run_steps(&self, _topology: &Topology, _case: &Case) -> Result<Running, DutError> {
        Err(DutError::Setup(
            "a VM DUT runs whole cases inside its guest (Dut::run_elsewhere)".into(),
        ))
    }

    fn run_elsewhere(&self, loaded: &LoadedCase) -> Option<Result<RunRecord, RecordError>> {
        Some(
            self.ask(loaded)
                .map(|mut record| {
                    // The guest stamps frames and calls from a clock of its own; the
                    // TSval offset is not read against it.
                    record.clock_shift = None;
                    record
                })
                .map_err(|e| RecordError::Elsewhere(format!("{} DUT: {e}", self.name))),
        )
    }

    fn expectations_apply(&self) -> bool {
        false
    }

    fn timing_allowance(&self) -> Option<TimingAllowance> {
        Some(self.allowance.clone())
    }
}

/// Reads the agent's replies and hands each to the call waiting for it; when the guest
/// goes away, every waiting call is told so.
fn spawn_reader(stream: UnixStream, pending: Pending) {
    std::thread::Builder::new()
        .name("vm-reader".into())
        .spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Reply>(&line) {
                    Ok(reply) => {
                        let tx = pending
                            .lock()
                            .unwrap()
                            .as_mut()
                            .and_then(|m| m.remove(&reply.id));
                        if let Some(tx) = tx {
                            let _ = tx.send(reply.result);
                        }
                    }
                    Err(e) => tracing::debug!(%e, "unreadable line from the guest"),
                }
            }
            pending.lock().unwrap().take();
        })
        .expect("spawning a thread");
}

/// Starts qemu with `accel` and waits for the agent's hello.
fn start(
    qemu: &assets::Qemu,
    kernel: &assets::Kernel,
    initrd: &Path,
    agent: &Path,
    workdir: &Path,
    accel: &'static str,
) -> Result<(Child, UnixStream, Hello, f64), String> {
    let socket = workdir.join(format!("agent-{accel}.sock"));
    let _ = std::fs::remove_file(&socket);
    let listener =
        UnixListener::bind(&socket).map_err(|e| format!("binding {}: {e}", socket.display()))?;
    let console = workdir.join(format!("console-{accel}.log"));
    let stderr = std::fs::File::create(workdir.join(format!("qemu-{accel}.err")))
        .map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&qemu.binary);
    for dir in &qemu.firmware {
        cmd.arg("-L").arg(dir);
    }
    match accel {
        "kvm" => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        _ => cmd.args(["-accel", "tcg,thread=multi"]),
    };
    cmd.args(["-machine", "q35", "-smp", "2", "-m", "4096"])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        // No network device at all: the agent talks over virtio-serial only.
        .args(["-nic", "none"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(&kernel.image)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 quiet TCPTWIN_AGENT={}",
            agent.display()
        ))
        .args([
            "-virtfs",
            "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
        ])
        .args(["-device", "virtio-serial-pci"])
        .arg("-chardev")
        .arg(format!("socket,id=agent,path={}", socket.display()))
        .arg("-device")
        .arg(format!("virtserialport,chardev=agent,name={PORT_NAME}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // tcptwin already died.
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", qemu.binary.display()))?;
    let fail = |child: &mut Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        let err =
            std::fs::read_to_string(workdir.join(format!("qemu-{accel}.err"))).unwrap_or_default();
        let err = err.trim();
        if err.is_empty() {
            why
        } else {
            format!("{why}; qemu said: {err}")
        }
    };
    // KVM either works at once or not at all; TCG boots in a few seconds on an idle host.
    let limit = Duration::from_secs(if accel == "kvm" { 30 } else { 120 });
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                return Err(fail(
                    &mut child,
                    format!("accepting qemu's connection: {e}"),
                ))
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(&mut child, format!("qemu exited ({status})")));
        }
        if started.elapsed() > limit {
            return Err(fail(&mut child, "qemu did not connect".into()));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = std::fs::remove_file(&socket);
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    // Wait for the hello on a thread of its own, so a guest that never speaks times out.
    let (tx, rx) = mpsc::channel();
    let reader = stream.try_clone().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut r = BufReader::new(reader);
        // One byte at a time would not be needed: the hello is the only line before a request.
        let got = r.read_line(&mut line).map(|_| line);
        let _ = tx.send(got);
    });
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(line)) if !line.is_empty() => {
                let hello: Hello = serde_json::from_str(&line)
                    .map_err(|e| fail(&mut child, format!("the agent's hello {line:?}: {e}")))?;
                return Ok((child, stream, hello, started.elapsed().as_secs_f64()));
            }
            Ok(Ok(_)) => return Err(fail(&mut child, "the guest closed the agent port".into())),
            Ok(Err(e)) => return Err(fail(&mut child, format!("reading the agent's hello: {e}"))),
            Err(_) => {}
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(
                &mut child,
                format!("qemu exited ({status}) before the agent spoke"),
            ));
        }
        if started.elapsed() > limit {
            return Err(fail(
                &mut child,
                format!("no hello from the agent within {limit:?}"),
            ));
        }
    }
}

/// The last `n` lines of a file, for error messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
