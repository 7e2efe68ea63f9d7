//! What a VM DUT boots: a Debian kernel image unpacked (never installed) into tcptwin's
//! cache by `ci/setup-vm`, qemu, and an initramfs built here from busybox-static and the
//! kernel's own virtio, 9p and veth modules.
//!
//! Cache layout (`$TCPTWIN_VM_CACHE`, default `/var/cache/tcptwin`):
//! `kernel-<version>/boot/vmlinuz-*` and `kernel-<version>/lib/modules/<release>/`,
//! `busybox/bin/busybox` (from busybox-static), and `qemu/usr/...` when qemu could not be
//! installed (Debian 12's qemu-system-x86 conflicts with a backported qemu-utils).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a VM cannot be booted here; each says what to run.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("no qemu-system-x86_64 on PATH or in {0}/qemu; run ci/setup-vm")]
    NoQemu(PathBuf),
    #[error("no Linux {version} image in {dir}; run ci/setup-vm (it unpacks Debian's linux-image-{version}.*-amd64 there)")]
    NoKernel { version: String, dir: PathBuf },
    #[error("no static busybox at {0}; run ci/setup-vm")]
    NoBusybox(PathBuf),
    #[error("kernel module {name} not found under {dir}")]
    NoModule { name: String, dir: PathBuf },
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// The modules the guest needs beyond what Debian builds in: the PCI transport, the
/// agent's virtio-serial port, the 9p root, and veth for the harness's topologies.
pub const MODULES: [&str; 5] = ["virtio_pci", "virtio_console", "9pnet_virtio", "9p", "veth"];

/// Where the VM's files are kept.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("TCPTWIN_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/tcptwin"))
}

/// qemu and the firmware directories to pass with `-L`.
#[derive(Debug, Clone)]
pub struct Qemu {
    pub binary: PathBuf,
    pub firmware: Vec<PathBuf>,
}

/// A kernel image and its modules.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub version: String,
    /// `uname -r` of the image, e.g. `6.1.0-50-amd64`.
    pub release: String,
    pub image: PathBuf,
    pub modules: PathBuf,
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> AssetError {
    let what = what.to_string();
    move |e| AssetError::Io(what, e)
}

pub fn find_qemu(cache: &Path) -> Result<Qemu, AssetError> {
    let unpacked = cache.join("qemu/usr/bin/qemu-system-x86_64");
    if unpacked.is_file() {
        return Ok(Qemu {
            binary: unpacked,
            firmware: vec![
                cache.join("qemu/usr/share/qemu"),
                cache.join("qemu/usr/share/seabios"),
            ],
        });
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("qemu-system-x86_64"))
            .find(|p| p.is_file())
    });
    on_path
        .map(|binary| Qemu {
            binary,
            firmware: Vec::new(),
        })
        .ok_or_else(|| AssetError::NoQemu(cache.to_path_buf()))
}

pub fn find_kernel(cache: &Path, version: &str) -> Result<Kernel, AssetError> {
    let dir = cache.join(format!("kernel-{version}"));
    let missing = || AssetError::NoKernel {
        version: version.into(),
        dir: dir.clone(),
    };
    let prefix = format!("vmlinuz-{version}.");
    let mut images: Vec<PathBuf> = std::fs::read_dir(dir.join("boot"))
        .map_err(|_| missing())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    images.sort();
    let image = images.pop().ok_or_else(missing)?;
    let release = image.file_name().unwrap().to_string_lossy()["vmlinuz-".len()..].to_string();
    let modules = dir.join("lib/modules").join(&release);
    if !modules.is_dir() {
        return Err(missing());
    }
    Ok(Kernel {
        version: version.into(),
        release,
        image,
        modules,
    })
}

pub fn find_busybox(cache: &Path) -> Result<PathBuf, AssetError> {
    let path = cache.join("busybox/bin/busybox");
    if path.is_file() {
        Ok(path)
    } else {
        Err(AssetError::NoBusybox(path))
    }
}

/// Every `.ko` under `dir`, by module name (`-` and `_` are the same to the kernel).
fn index_modules(dir: &Path, out: &mut std::collections::HashMap<String, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            index_modules(&path, out);
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            if let Some(stem) = name.strip_suffix(".ko") {
                out.insert(stem.replace('-', "_"), path);
            }
        }
    }
}

/// The `depends=` entry of a module's `.modinfo` section (what depmod reads).
fn module_depends(bytes: &[u8]) -> Vec<String> {
    let key = b"depends=";
    bytes
        .windows(key.len())
        .position(|w| w == key)
        .map(|at| {
            let rest = &bytes[at + key.len()..];
            let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.replace('-', "_"))
                .collect()
        })
        .unwrap_or_default()
}

/// The modules `wanted` needs, dependencies first, as (name, file). A module the kernel
/// has built in (listed in `modules.builtin`) is skipped.
pub fn resolve_modules(
    kernel: &Kernel,
    wanted: &[&str],
) -> Result<Vec<(String, PathBuf)>, AssetError> {
    let mut index = std::collections::HashMap::new();
    index_modules(&kernel.modules, &mut index);
    let builtin: BTreeSet<String> = std::fs::read_to_string(kernel.modules.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .filter_map(|f| f.strip_suffix(".ko"))
        .map(|s| s.replace('-', "_"))
        .collect();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        name: &str,
        index: &std::collections::HashMap<String, PathBuf>,
        builtin: &BTreeSet<String>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<(String, PathBuf)>,
        dir: &Path,
    ) -> Result<(), AssetError> {
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        let Some(path) = index.get(name) else {
            if builtin.contains(name) {
                return Ok(());
            }
            return Err(AssetError::NoModule {
                name: name.into(),
                dir: dir.to_path_buf(),
            });
        };
        let bytes = std::fs::read(path).map_err(io(path.display()))?;
        for dep in module_depends(&bytes) {
            visit(&dep, index, builtin, seen, order, dir)?;
        }
        order.push((name.to_string(), path.clone()));
        Ok(())
    }
    for name in wanted {
        visit(
            name,
            &index,
            &builtin,
            &mut seen,
            &mut order,
            &kernel.modules,
        )?;
    }
    Ok(order)
}

/// The guest's `/init`: load the modules, mount the host's root read-only over 9p, give it
/// fresh /proc, /sys, /dev, /tmp and /run (keeping the agent's own directory visible, even
/// under /tmp), and become tcptwin's agent inside it. The agent's
/// path comes from the kernel command line (`TCPTWIN_AGENT=`, passed to init as an
/// environment variable). Whatever happens, the guest powers off when the agent ends.
fn init_script(modules: &[(String, PathBuf)]) -> String {
    let names: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
    format!(
        r#"#!/bin/busybox sh
B=/bin/busybox
fail() {{ echo "tcptwin-init: $*"; $B poweroff -f; }}
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in {modules}; do $B insmod /lib/modules/$m.ko || fail "insmod $m"; done
$B mkdir -p /host
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288 host /host || fail "mounting the host root over 9p"
$B mount -t proc proc /host/proc || fail "proc"
$B mount -t sysfs sys /host/sys || fail "sysfs"
$B mount -t devtmpfs dev /host/dev || fail "devtmpfs"
# The fresh /tmp and /run below would hide an agent built under them (a checkout in /tmp):
# keep its directory aside and bind it back on top.
D=$($B dirname "$TCPTWIN_AGENT")
$B mkdir -p /agent-dir
$B mount -o bind "/host$D" /agent-dir || fail "binding the agent's directory $D"
$B mount -t tmpfs tmp /host/tmp || fail "tmpfs"
$B mount -t tmpfs run /host/run || fail "tmpfs"
if [ ! -x "/host$TCPTWIN_AGENT" ]; then
  $B mkdir -p "/host$D" && $B mount -o bind /agent-dir "/host$D" || fail "restoring the agent's directory $D"
fi
echo "tcptwin-init: starting $TCPTWIN_AGENT agent"
$B chroot /host "$TCPTWIN_AGENT" agent
echo "tcptwin-init: agent exited with $?"
$B poweroff -f
"#,
        modules = names.join(" ")
    )
}

/// Writes the initramfs (an uncompressed newc cpio, which every kernel unpacks) to `path`.
pub fn build_initramfs(path: &Path, busybox: &Path, kernel: &Kernel) -> Result<(), AssetError> {
    let modules = resolve_modules(kernel, &MODULES)?;
    let mut cpio = Cpio::default();
    for dir in ["bin", "dev", "proc", "sys", "host", "lib", "lib/modules"] {
        cpio.dir(dir);
    }
    cpio.file(
        "bin/busybox",
        0o755,
        &std::fs::read(busybox).map_err(io(busybox.display()))?,
    );
    for (name, file) in &modules {
        let bytes = std::fs::read(file).map_err(io(file.display()))?;
        cpio.file(&format!("lib/modules/{name}.ko"), 0o644, &bytes);
    }
    cpio.file("init", 0o755, init_script(&modules).as_bytes());
    let bytes = cpio.finish();
    let mut f = std::fs::File::create(path).map_err(io(path.display()))?;
    f.write_all(&bytes).map_err(io(path.display()))
}

/// A minimal writer of the kernel's initramfs format (`newc`, Documentation/driver-api/
/// early-userspace/buffer-format.rst).
#[derive(Debug, Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, data);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_depends_is_read_up_to_its_nul() {
        let bytes = b"\0license=GPL\0depends=virtio,9pnet,virtio_ring\0retpoline=Y\0";
        assert_eq!(module_depends(bytes), ["virtio", "9pnet", "virtio_ring"]);
        assert!(module_depends(b"\0depends=\0").is_empty());
    }

    #[test]
    fn cpio_entries_are_aligned_and_end_with_the_trailer() {
        let mut c = Cpio::default();
        c.file("init", 0o755, b"#!/bin/sh\n");
        let out = c.finish();
        assert!(out.starts_with(b"070701"));
        assert!(out.len().is_multiple_of(4));
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
