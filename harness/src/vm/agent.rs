//! The guest side of [`super::VmKernelDut`]: `tcptwin agent`, started by the guest's init.
//!
//! It finds its virtio-serial port, measures how late the guest's timers fire
//! ([`super::Calibration`]), says hello, then serves requests: each case runs on a thread
//! of its own with [`crate::run::run_raw`] and [`crate::dut::KernelDut`], in namespaces
//! made inside the guest, and its frames and call log go back as one JSON line.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Hello, Reply, Request, PORT_NAME};
use crate::case::LoadedCase;
use crate::dut::KernelDut;
use crate::run;
use crate::sys::lateness::calibrate;

/// The device of the port named [`PORT_NAME`].
fn find_port() -> Result<PathBuf, String> {
    let dir = std::fs::read_dir("/sys/class/virtio-ports")
        .map_err(|e| format!("/sys/class/virtio-ports: {e} (is virtio_console loaded?)"))?;
    for entry in dir.flatten() {
        let name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if name.trim() == PORT_NAME {
            return Ok(PathBuf::from("/dev").join(entry.file_name()));
        }
    }
    Err(format!("no virtio-serial port named {PORT_NAME}"))
}

/// Serves the host until the port closes.
pub fn serve() -> anyhow::Result<()> {
    let port = find_port().map_err(anyhow::Error::msg)?;
    let file = File::options().read(true).write(true).open(&port)?;
    let writer = Arc::new(Mutex::new(file.try_clone()?));
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let hello = Hello {
        kernel_release: release,
        calibration: calibrate(super::GUEST_JOBS, 100, Duration::from_millis(10)),
    };
    send(&writer, &serde_json::to_string(&hello)?)?;
    for line in BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("tcptwin agent: unreadable request: {e}");
                continue;
            }
        };
        let writer = writer.clone();
        std::thread::spawn(move || {
            let result = crate::case::parse(&request.path, &request.text)
                .map_err(|e| e.to_string())
                .and_then(|case| {
                    run::run_raw(
                        &LoadedCase {
                            path: request.path.clone(),
                            case,
                        },
                        &KernelDut,
                    )
                    .map_err(|e| e.to_string())
                });
            let reply = Reply {
                id: request.id,
                result,
            };
            match serde_json::to_string(&reply) {
                Ok(text) => {
                    if let Err(e) = send(&writer, &text) {
                        eprintln!("tcptwin agent: replying: {e}");
                    }
                }
                Err(e) => eprintln!("tcptwin agent: encoding a reply: {e}"),
            }
        });
    }
    Ok(())
}

fn send(writer: &Mutex<File>, line: &str) -> std::io::Result<()> {
    let mut w = writer.lock().unwrap();
    w.write_all(line.as_bytes())?;
    w.write_all(b"\n")?;
    w.flush()
}
