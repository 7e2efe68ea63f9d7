//! Namespace tier: the stack, attached through its driver to a veth in one
//! network namespace, completes a handshake, a small send and a close with a
//! kernel listener in another, over IPv4 and over IPv6 (neighbour discovery included). Needs CAP_SYS_ADMIN/CAP_NET_ADMIN and `ip`;
//! skipped (with a message) otherwise. Both namespaces are anonymous and
//! belong to the test's threads: they vanish when the threads end.

mod common;

mod namespaces;

use namespaces::{ip, wait_until_up};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6, TcpListener};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;
use tcptwin_stack::driver::Driver;
use tcptwin_stack::packet_socket::PacketSocket;
use tcptwin_stack::*;

fn gettid() -> i64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// The address family a namespace test connects over.
#[derive(Debug, Clone, Copy)]
enum Family {
    /// 10.199.0.1/24 → 10.199.0.2:8080.
    V4,
    /// 2001:2::1/64 → [2001:2::2]:8080 (the peer's address without duplicate address
    /// detection, so that it is usable at once).
    V6,
}

const LOCAL6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

impl Family {
    fn peer_addr_args(self) -> Vec<&'static str> {
        match self {
            Family::V4 => vec!["addr", "add", "10.199.0.2/24", "dev", "pb"],
            Family::V6 => vec!["addr", "add", "2001:2::2/64", "dev", "pb", "nodad"],
        }
    }
    fn listen_on(self) -> &'static str {
        match self {
            Family::V4 => "10.199.0.2:8080",
            Family::V6 => "[2001:2::2]:8080",
        }
    }
    fn domain(self) -> Domain {
        match self {
            Family::V4 => Domain::Inet,
            Family::V6 => Domain::Inet6,
        }
    }
    fn peer(self) -> SockAddr {
        match self {
            Family::V4 => SockAddr::inet(SocketAddrV4::new(Ipv4Addr::new(10, 199, 0, 2), 8080)),
            Family::V6 => SockAddr::inet6(SocketAddrV6::new(PEER6, 8080, 0, 0)),
        }
    }
    fn stack(self, iface: Interface) -> Stack {
        let stack = Stack::new(Config::default(), iface, vec![], 7);
        match self {
            Family::V4 => stack,
            Family::V6 => stack.with_ipv6(LOCAL6, 64),
        }
    }
}

#[test]
fn handshake_send_close_with_kernel_listener() {
    handshake_send_close(Family::V4);
}

#[test]
fn ipv6_handshake_send_close_with_kernel_listener() {
    handshake_send_close(Family::V6);
}

fn handshake_send_close(family: Family) {
    // The peer: a fresh netns on its own thread with a kernel listener.
    let (tid_tx, tid_rx) = mpsc::channel::<Result<i64, String>>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (got_tx, got_rx) = mpsc::channel::<Result<Vec<u8>, String>>();
    // Sent once the listener listens on a link that is up: the DUT connects only then.
    let (listening_tx, listening_rx) = mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            let _ = tid_tx.send(Err(format!("unshare: {e}")));
            return;
        }
        tid_tx.send(Ok(gettid())).unwrap();
        if go_rx.recv().is_err() {
            return;
        }
        let r = (|| -> Result<Vec<u8>, String> {
            ip(&["link", "set", "lo", "up"])?;
            ip(&family.peer_addr_args())?;
            ip(&["link", "set", "pb", "up"])?;
            wait_until_up("pb")?;
            let l = TcpListener::bind(family.listen_on()).map_err(|e| e.to_string())?;
            let _ = listening_tx.send(());
            let (mut s, _) = l.accept().map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut v = Vec::new();
            s.read_to_end(&mut v).map_err(|e| e.to_string())?;
            let _ = s.write_all(b"");
            Ok(v)
        })();
        got_tx.send(r).unwrap();
    });
    let peer_tid = match tid_rx.recv().unwrap() {
        Ok(t) => t,
        Err(e) => {
            common::skip(&format!("namespace test: {e}"));
            return;
        }
    };

    // The DUT: another fresh netns on this thread's child, holding the veth.
    let dut = std::thread::spawn(move || -> Result<(), String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("unshare: {e}"))?;
        ip(&["link", "add", "da", "type", "veth", "peer", "name", "pb"])?;
        ip(&["link", "set", "pb", "netns", &peer_tid.to_string()])?;
        ip(&["link", "set", "da", "up"])?;
        go_tx.send(()).unwrap();
        // (sysfs shows the namespace of whoever mounted it; ask netlink via `ip`.)
        let out = Command::new("ip")
            .args(["-br", "link", "show", "da"])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mac_s = text
            .split_whitespace()
            .nth(2)
            .ok_or(format!("no MAC in {text:?}"))?
            .to_string();
        let mut mac = [0u8; 6];
        for (i, p) in mac_s.trim().split(':').enumerate() {
            mac[i] = u8::from_str_radix(p, 16).map_err(|e| e.to_string())?;
        }
        let sock = PacketSocket::open("da").map_err(|e| format!("AF_PACKET: {e}"))?;
        let iface = Interface {
            mac: EthernetAddress(mac),
            addr: Some(Ipv4Addr::new(10, 199, 0, 1)),
            prefix_len: 24,
            mtu: 1500,
        };
        let stack = family.stack(iface);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut d = Driver::new(stack, sock).map_err(|e| e.to_string())?;
            // Connect once the peer listens (a SYN before would be answered with a RST).
            listening_rx
                .recv()
                .map_err(|_| "the peer stopped before it listened".to_string())?;
            let h = d.stack().socket_in(family.domain());
            let r = d.connect(h, &family.peer()).await;
            let r = r.map_err(|e| e.to_string())?;
            if r != Ok(()) {
                return Err(format!("connect: {r:?}"));
            }
            let n = d
                .send(h, b"hello from tcptwin")
                .await
                .map_err(|e| e.to_string())?;
            if n != Ok(18) {
                return Err(format!("send: {n:?}"));
            }
            d.close(h, Duration::from_secs(3))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            d.settle(Duration::from_millis(200))
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        })
    });
    let dut_result = dut.join().unwrap();
    let got = got_rx.recv_timeout(Duration::from_secs(15));
    drop(peer);
    match dut_result {
        Err(e) if e.starts_with("unshare") || e.contains("Operation not permitted") => {
            common::skip(&format!("namespace test: {e}"));
        }
        r => {
            r.unwrap();
            assert_eq!(got.expect("peer finished").unwrap(), b"hello from tcptwin");
        }
    }
}
