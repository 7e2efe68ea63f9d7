//! Isolation, as the built `tcptwin` binary gives it: a full suite run leaves the namespace it
//! was started in exactly as it was; a run killed at a random moment (SIGKILL) or stopped with
//! Ctrl-C (SIGINT) leaves no namespace, link, mount or process behind; and an unprivileged
//! user gets the same run through a user namespace.
//!
//! These tests run in the starting namespace (as root, as the rest of the end-to-end tier
//! does) and only look at it; every change is made by the child `tcptwin` inside namespaces of
//! its own. They take a lock so that only one suite runs at a time: timing checks are judged
//! in these runs, and two suites at once on a small machine would make them noisy.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tcptwin")
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cases")
        .canonicalize()
        .unwrap()
}

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tcptwin-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A small xorshift generator seeded from the clock; the seed is printed so a failure can be
/// replayed with TCPTWIN_TEST_SEED.
struct Rng(u64);
impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("TCPTWIN_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("random seed {seed} (TCPTWIN_TEST_SEED={seed} replays it)");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

// ---- the starting namespace, as `ip` and /proc/sys/net show it ----

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(out.status.success(), "ip {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything tcptwin could have changed in the namespace it was started in. Values that
/// move on their own are left out: address lifetimes count down, and a neighbour's NUD
/// state (REACHABLE, STALE, ...) follows the host's own traffic, so a neighbour is its
/// address, device and link-layer address.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    links: String,
    addresses: String,
    routes: String,
    rules: String,
    neighbours: BTreeSet<String>,
    sysctls: BTreeMap<String, String>,
}

fn without_lifetimes(text: String) -> String {
    text.lines()
        .filter(|l| !l.contains("valid_lft"))
        .map(|l| {
            // An IPv6 route learnt from an RA prints `expires 1234sec`.
            match l.find(" expires ") {
                Some(at) => {
                    let rest = &l[at + 9..];
                    let after = rest.find(' ').map_or("", |s| &rest[s..]);
                    format!("{}{after}", &l[..at])
                }
                None => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn proc_sys_net() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                walk(&path, out);
            } else if let Ok(value) = std::fs::read_to_string(&path) {
                // Write-only or unreadable files (stable_secret before it is set) are
                // skipped: every readable one is compared.
                out.insert(path.display().to_string(), value);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new("/proc/sys/net"), &mut out);
    out
}

fn snapshot() -> Snapshot {
    let neighbours = ip(&["neigh", "show"])
        .lines()
        .filter(|l| l.contains("lladdr"))
        .map(|l| l.split_whitespace().take(5).collect::<Vec<_>>().join(" "))
        .collect();
    Snapshot {
        links: ip(&["-d", "link", "show"]),
        addresses: without_lifetimes(ip(&["addr", "show"])),
        routes: without_lifetimes(ip(&["route", "show", "table", "all"]))
            + &without_lifetimes(ip(&["-6", "route", "show", "table", "all"])),
        rules: ip(&["rule", "show"]),
        neighbours,
        sysctls: proc_sys_net(),
    }
}

#[test]
fn a_full_suite_run_leaves_the_starting_namespace_as_it_was() {
    let _one = lock();
    let before = snapshot();
    assert!(
        before.sysctls.len() > 100,
        "read only {} files under /proc/sys/net",
        before.sysctls.len()
    );
    let artifacts = temp_dir("isolation");
    let out = Command::new(bin())
        .args(["run", "--vs", "stack", "--artifacts"])
        .arg(&artifacts)
        .arg(cases_dir())
        .output()
        .unwrap();
    // The suite's verdicts are the gate's business; this test is about the namespace. It
    // only needs the run to have run every case.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(" passed, ") && !stdout.contains("could not run"),
        "{}",
        text(&out)
    );
    let after = snapshot();
    let _ = std::fs::remove_dir_all(&artifacts);
    assert_eq!(before.links, after.links, "links changed");
    assert_eq!(before.addresses, after.addresses, "addresses changed");
    assert_eq!(before.routes, after.routes, "routes changed");
    assert_eq!(before.rules, after.rules, "routing rules changed");
    assert_eq!(before.neighbours, after.neighbours, "neighbours changed");
    let changed: Vec<String> = before
        .sysctls
        .iter()
        .filter(|(k, v)| after.sysctls.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v:?} -> {:?}", after.sysctls.get(k)))
        .chain(
            after
                .sysctls
                .keys()
                .filter(|k| !before.sysctls.contains_key(*k))
                .map(|k| format!("{k}: appeared")),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "/proc/sys/net changed:\n{}",
        changed.join("\n")
    );
}

// ---- leftovers after SIGKILL and SIGINT ----

/// The environment marker that identifies the processes of one test run.
fn marker() -> String {
    format!("TCPTWIN_LEAK_TEST={}", std::process::id())
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The net namespace inodes `pid` uses or holds: its threads' namespaces and its
/// descriptors (tcptwin holds its namespaces by descriptor).
fn netns_of(pid: u32) -> BTreeSet<u64> {
    let mut found = BTreeSet::new();
    let parse = |link: PathBuf| -> Option<u64> {
        link.to_str()?
            .strip_prefix("net:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    };
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Some(ino) = std::fs::read_link(task.path().join("ns/net"))
                .ok()
                .and_then(parse)
            {
                found.insert(ino);
            }
        }
    }
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Some(ino) = std::fs::read_link(fd.path()).ok().and_then(parse) {
                found.insert(ino);
            }
        }
    }
    found
}

/// Net namespaces mounted anywhere this process can see (`ip netns add` would make one).
fn mounted_netns() -> BTreeSet<u64> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" - nsfs "))
        .filter_map(|l| {
            let root = l.split_whitespace().nth(3)?;
            root.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Net namespaces `lsns -t net` lists.
fn lsns() -> BTreeSet<u64> {
    let out = Command::new("lsns")
        .args(["-t", "net", "-n", "-o", "NS"])
        .output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect()
    })
    .unwrap_or_default()
}

fn has_marker(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
        .unwrap_or(false)
}

fn link_names() -> BTreeSet<String> {
    ip(&["-o", "link", "show"])
        .lines()
        .filter_map(|l| Some(l.split(':').nth(1)?.trim().to_string()))
        .collect()
}

fn mountinfo() -> BTreeSet<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The host state a run must leave as it found it.
struct Host {
    links: BTreeSet<String>,
    mounts: BTreeSet<String>,
}

fn host() -> Host {
    Host {
        links: link_names(),
        mounts: mountinfo(),
    }
}

fn spawn_suite(marker: &str, artifacts: &Path, extra: &[&str]) -> Child {
    let (key, value) = marker.split_once('=').unwrap();
    Command::new(bin())
        .args(["run", "--vs", "stack", "--artifacts"])
        .arg(artifacts)
        .args(extra)
        .arg(cases_dir())
        .env(key, value)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Watches `child` until `until`, collecting every net namespace it uses or holds.
fn watch(child: &Child, until: Instant) -> BTreeSet<u64> {
    let mut seen = BTreeSet::new();
    while Instant::now() < until {
        seen.extend(netns_of(child.id()));
        std::thread::sleep(Duration::from_millis(2));
    }
    seen
}

/// Checks that nothing of the run remains: no process carrying its marker, none of the
/// namespaces it made still alive (held by a process or mounted), no new link or mount.
fn assert_nothing_left(label: &str, marker: &str, made: &BTreeSet<u64>, before: &Host) {
    let survivors: Vec<u32> = pids()
        .into_iter()
        .filter(|p| has_marker(*p, marker))
        .collect();
    assert!(
        survivors.is_empty(),
        "{label}: processes of the run remain: {survivors:?}"
    );
    let mounted: BTreeSet<u64> = mounted_netns().intersection(made).copied().collect();
    assert!(
        mounted.is_empty(),
        "{label}: namespaces of the run are mounted: {mounted:?}"
    );
    let mut alive = lsns();
    let mut holders: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for pid in pids() {
        for ino in netns_of(pid) {
            alive.insert(ino);
            holders.entry(ino).or_default().push(pid);
        }
    }
    for ino in made.intersection(&alive) {
        // Namespace inode numbers are reused (lowest free first), and this machine is
        // shared: a number seen again belongs to the run only if one of its processes holds
        // it, and none survived (checked above).
        let held_by = holders.get(ino).cloned().unwrap_or_default();
        assert!(
            held_by.iter().all(|p| !has_marker(*p, marker)),
            "{label}: namespace net:[{ino}] of the run is still held by {held_by:?}"
        );
        eprintln!(
            "{label}: net:[{ino}] (a number the run used) is alive again, held by {held_by:?} \
             outside the run: a reused inode number"
        );
    }
    let after = host();
    assert_eq!(
        before.links, after.links,
        "{label}: links of the starting namespace changed"
    );
    assert_eq!(before.mounts, after.mounts, "{label}: mounts changed");
}

#[test]
fn a_run_killed_at_a_random_moment_leaves_nothing_behind() {
    let _one = lock();
    let mut rng = Rng::new();
    let artifacts = temp_dir("sigkill");
    let marker = marker();
    // The icmp cases: ten of them, 0.2 to 1.6 s each, four at a time: about 2.5 s in all,
    // with namespaces being built, run and dropped throughout.
    let filter = ["--filter", "icmp", "--jobs", "4"];
    let mut made_total = BTreeSet::new();
    for attempt in 0..20 {
        let before = host();
        let kill_after = Duration::from_millis(rng.below(2500));
        let mut child = spawn_suite(&marker, &artifacts, &filter);
        let made = watch(&child, Instant::now() + kill_after);
        child.kill().unwrap();
        child.wait().unwrap();
        let label = format!("attempt {attempt}, SIGKILL after {kill_after:?}");
        assert_nothing_left(&label, &marker, &made, &before);
        made_total.extend(made);
    }
    let _ = std::fs::remove_dir_all(&artifacts);
    assert!(
        made_total.len() > 20,
        "the runs were seen to make only {} namespaces: were they killed before starting?",
        made_total.len()
    );
}

#[test]
fn ctrl_c_reports_the_finished_cases_and_leaves_nothing_behind() {
    let _one = lock();
    let mut rng = Rng::new();
    let artifacts = temp_dir("sigint");
    let marker = marker();
    let before = host();
    let mut child = spawn_suite(&marker, &artifacts, &["--filter", "icmp", "--jobs", "2"]);
    // Read stdout on a thread; interrupt at a random moment once a first case is reported.
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = tx.send(all.clone());
        }
        all
    });
    let started = Instant::now();
    let mut made = BTreeSet::new();
    loop {
        made.extend(netns_of(child.id()));
        if let Ok(so_far) = rx.recv_timeout(Duration::from_millis(2)) {
            if so_far.contains("PASS") || so_far.contains("DIVERGED") || so_far.contains("ERROR") {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no case finished in 20 s"
        );
    }
    made.extend(watch(
        &child,
        Instant::now() + Duration::from_millis(rng.below(300)),
    ));
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) },
        0,
        "sending SIGINT"
    );
    let interrupted_at = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            interrupted_at.elapsed() < Duration::from_secs(10),
            "tcptwin did not stop within 10 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = reader.join().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let report = format!("status {status}\n--- stdout\n{out}\n--- stderr\n{stderr}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("PASS") || l.starts_with("DIVERGED") || l.starts_with("KNOWN")),
        "the finished cases are reported:\n{report}"
    );
    assert!(
        out.contains("interrupted: the cases above finished"),
        "the run says it was interrupted:\n{report}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(" passed, ") && l.contains(" failed")),
        "a summary line:\n{report}"
    );
    assert_eq!(
        status.code(),
        Some(130),
        "an interrupted run exits 130:\n{report}"
    );
    assert_nothing_left("SIGINT", &marker, &made, &before);
    let _ = std::fs::remove_dir_all(&artifacts);
}

// ---- rootless ----

const NOBODY: &str = "65534";

fn setpriv(args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        NOBODY,
        "--regid",
        NOBODY,
        "--clear-groups",
        "--inh-caps=-all",
    ]);
    cmd.args(args);
    cmd
}

/// Whether this host lets an unprivileged user make a user namespace (independently of
/// tcptwin, with util-linux's `unshare`).
fn unprivileged_userns_allowed() -> Result<(), String> {
    let out = setpriv(&[
        "unshare".as_ref(),
        "--user".as_ref(),
        "--net".as_ref(),
        "true".as_ref(),
    ])
    .output()
    .map_err(|e| format!("setpriv/unshare not available: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `tcptwin run --vs stack <cases>` as the unprivileged user, in a fresh directory `label`
/// whose artifacts directory that user owns (the binary and the cases are world-readable
/// where cargo puts them); None, after saying so, where the host forbids user namespaces.
fn rootless_run(label: &str, cases: &Path) -> Option<(Command, PathBuf)> {
    if let Err(why) = unprivileged_userns_allowed() {
        common::skip(&format!(
            "this host forbids unprivileged user namespaces ({why})"
        ));
        return None;
    }
    let dir = temp_dir(label);
    let artifacts = dir.join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::os::unix::fs::chown(&artifacts, Some(65534), Some(65534)).unwrap();
    let mut cmd = setpriv(&[
        bin().as_ref(),
        "run".as_ref(),
        "--vs".as_ref(),
        "stack".as_ref(),
        "--artifacts".as_ref(),
        artifacts.as_os_str(),
        cases.as_os_str(),
    ]);
    cmd.current_dir(&dir);
    Some((cmd, dir))
}

#[test]
fn the_suite_runs_and_passes_as_an_unprivileged_user() {
    let _one = lock();
    let Some((mut cmd, dir)) = rootless_run("rootless", &cases_dir()) else {
        return;
    };
    let out = cmd.output().unwrap();
    let report = text(&out);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(" passed, 0 failed"), "{report}");
    // An unprivileged user gets no SCHED_FIFO, and the report says what that means.
    assert!(
        stdout.contains("ran without real-time priority (SCHED_FIFO: "),
        "{report}"
    );
    // ... and widens the tolerances by a measured allowance, saying by how much and why.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("timing tolerances below include +")
                && l.contains("without real-time priority")),
        "{report}"
    );
}

/// The nice value of every thread of `pid` now, by thread name (threads that end while
/// being read are skipped).
fn nice_by_thread(pid: u32) -> Vec<(String, i64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut seen = Vec::new();
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        // After the name: state is field 3 of stat(5), nice field 19.
        let nice = stat[close + 2..]
            .split(' ')
            .nth(16)
            .and_then(|n| n.parse().ok());
        if let Some(nice) = nice {
            seen.push((stat[open + 1..close].to_string(), nice));
        }
    }
    seen
}

#[test]
fn rootless_runs_keep_measured_threads_at_nice_0_and_the_rest_at_19() {
    let _one = lock();
    let case = cases_dir().join("syn-retries-2.yaml");
    let Some((mut cmd, dir)) = rootless_run("rootless-nice", &case) else {
        return;
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // setpriv execs tcptwin, so the child's pid is tcptwin's; the case runs ~7 s.
    let measured = ["peer", "capture", "dut-kernel", "dut-stack"];
    let mut seen: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline && !measured.iter().all(|m| seen.contains_key(*m)) {
        let snapshot = nice_by_thread(child.id());
        // Only once a measured thread exists: priorities are set before the first starts.
        if snapshot
            .iter()
            .any(|(name, _)| measured.contains(&name.as_str()))
        {
            for (name, nice) in snapshot {
                seen.entry(name).or_default().insert(nice);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{stdout}");
    for name in measured {
        assert_eq!(
            seen.get(name),
            Some(&BTreeSet::from([0])),
            "measured thread {name}: {seen:?}"
        );
    }
    // The main thread (named after the binary) and everything it starts itself.
    assert_eq!(seen.get("tcptwin"), Some(&BTreeSet::from([19])), "{seen:?}");
    // setpriv is the process before it execs tcptwin; the spawner keeps nice 0 by design.
    let exempt = ["setpriv", "spawner"];
    for (name, nices) in &seen {
        if !measured.contains(&name.as_str()) && !exempt.contains(&name.as_str()) {
            assert_eq!(
                nices,
                &BTreeSet::from([19]),
                "harness thread {name}: {seen:?}"
            );
        }
    }
}

#[test]
fn where_user_namespaces_are_refused_one_line_says_what_to_do() {
    // As root, `unshare --user --map-root-user` gives a user namespace in which we may set
    // user.max_user_namespaces to 0 for everything below it; TCPTWIN_ROOTLESS=1 then makes
    // tcptwin take the unprivileged path, which must be refused with advice.
    let script = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces && TCPTWIN_ROOTLESS=1 exec {} check {}",
        bin(),
        cases_dir().display()
    );
    let out = match Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c", &script])
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            common::skip(&format!("util-linux unshare is not available: {e}"));
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unshare failed") || stderr.contains("max_user_namespaces: ") {
        common::skip(&format!(
            "could not set up the refusing user namespace: {stderr}"
        ));
        return;
    }
    // A host that refuses what tcptwin needs is a harness error, not a usage error.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", text(&out));
    assert!(
        lines[0].contains("user namespace") && lines[0].contains("sysctl user.max_user_namespaces"),
        "{}",
        text(&out)
    );
}
