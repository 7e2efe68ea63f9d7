//! The packet ring the stack reads through: frames come out whole, in the order they
//! arrived, across the ring's wrap-around, and never our own. Needs CAP_NET_ADMIN and
//! `ip`; skipped (with a message) otherwise. The veth lives in an anonymous namespace of
//! the test's own thread and vanishes with it.

mod common;

mod namespaces;

use namespaces::{ip, wait_until_up};
use tcptwin_stack::packet_socket::PacketSocket;

/// The EtherType of the test's frames (IEEE's local experimental one), so that no kernel
/// protocol answers them.
const TEST_ETHERTYPE: u16 = 0x88b5;

/// An Ethernet frame of [`TEST_ETHERTYPE`] carrying `n` (big-endian), `len` bytes in all.
fn numbered_frame(n: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[12..14].copy_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    f[14..18].copy_from_slice(&n.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (i as u8) ^ (n as u8);
    }
    f
}

/// Runs `test` on a thread in a fresh namespace holding a veth `ra` <-> `rb`, both up with
/// an MTU of 1500; Ok(None) when namespaces cannot be made here.
fn in_veth_namespace(
    test: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> Result<Option<()>, String> {
    std::thread::spawn(move || -> Result<Option<()>, String> {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            common::skip(&format!("unshare: {e}"));
            return Ok(None);
        }
        // No IPv6 on the links made next, so no neighbour discovery or MLD frames among
        // the test's (absent IPv6 support leaves nothing to turn off).
        let _ = std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
        ip(&["link", "add", "ra", "type", "veth", "peer", "name", "rb"])?;
        ip(&["link", "set", "ra", "up"])?;
        ip(&["link", "set", "rb", "up"])?;
        wait_until_up("ra")?;
        wait_until_up("rb")?;
        test().map(Some)
    })
    .join()
    .map_err(|_| "the test thread panicked".to_string())?
}

/// Reads everything waiting on `sock`, `max` frames at a time.
fn read_all(sock: &mut PacketSocket, max: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while sock.read(max, |f| got.push(f.to_vec())) > 0 {}
    got
}

#[test]
fn frames_come_out_whole_and_in_order_across_the_wrap_around() {
    let r = in_veth_namespace(|| {
        let mut receiver = PacketSocket::open("ra").map_err(|e| format!("open ra: {e}"))?;
        let sender = PacketSocket::open("rb").map_err(|e| format!("open rb: {e}"))?;
        let mut next = 0u32;
        // Three rounds of 200: more than the ring's slots in all, so it wraps around.
        for round in 0..3 {
            let lens = [60usize, 1514, 333, 64];
            let frames: Vec<Vec<u8>> = (0..200)
                .map(|i| numbered_frame(next + i, lens[i as usize % lens.len()]))
                .collect();
            sender
                .send_batch(&frames)
                .map_err(|e| format!("send: {e}"))?;
            let got = read_all(&mut receiver, 8);
            if got != frames {
                let numbers: Vec<u32> = got
                    .iter()
                    .map(|f| u32::from_be_bytes([f[14], f[15], f[16], f[17]]))
                    .collect();
                return Err(format!(
                    "round {round}: sent frames {next}..{}, read {} frames: {numbers:?}",
                    next + 200,
                    got.len()
                ));
            }
            next += 200;
        }
        Ok(())
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

#[test]
fn a_socket_never_reads_its_own_frames_and_reads_at_most_max() {
    let r = in_veth_namespace(|| {
        let mut a = PacketSocket::open("ra").map_err(|e| format!("open ra: {e}"))?;
        let mut b = PacketSocket::open("rb").map_err(|e| format!("open rb: {e}"))?;
        let frames: Vec<Vec<u8>> = (0..5).map(|i| numbered_frame(i, 60)).collect();
        a.send_batch(&frames).map_err(|e| format!("send: {e}"))?;
        if let Some(own) = read_all(&mut a, 8).first() {
            return Err(format!("a read its own frame back: {own:?}"));
        }
        let mut first = Vec::new();
        let n = b.read(2, |f| first.push(f.to_vec()));
        if n != 2 || first != frames[..2] {
            return Err(format!("read(2) handled {n} frames: {first:?}"));
        }
        let rest = read_all(&mut b, 8);
        if rest != frames[2..] {
            return Err(format!("the rest: {rest:?}"));
        }
        Ok(())
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}
