//! The scripted peer's behaviour, sans-IO: it answers ARP for its address (unless told to
//! stay silent), reacts to the n-th SYN as the script says (silence, RST, SYN-ACK with
//! chosen options, an ICMP error quoting the SYN) after an optional delay, then ACKs data,
//! answers FIN, and plays its `established` actions, either segment by segment or, with
//! `clock: quiet`, each time the line has gone quiet.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::case::{
    ArpMode, DataReply, FinReply, FloodKind, PeerAction, PeerClock, PeerOption, PeerScript,
    SynAckSpec, SynReaction,
};
use crate::linux::tcp_options::TcpOption;
use crate::observe::craft::{self, Segment};
use crate::observe::decode::{self, flags, icmpv6, Body, TcpFields, L4};

use super::{PeerAddrs, PeerStats};

/// A frame the peer puts on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub bytes: Vec<u8>,
    /// One of a flood's frames: lost if the link's queue is full, as a flood's may be.
    pub lossy: bool,
}

/// The peer's TSval at its start; it then counts milliseconds, as Linux does.
const PEER_TS_BASE: u32 = 0x0100_0000;
/// The least gap between two segments the peer sends on a connection: one jiffy, the time
/// resolution the diff judges reactions by. Without it a burst reaches an in-kernel DUT
/// one frame at a time (it answers between them) but a userspace DUT all at once, and the
/// same behaviour shows as a different frame order.
const PEER_PACING: Duration = Duration::from_millis(4);
/// The window scale the peer's default SYN-ACK offers (Linux's for a 6 MiB buffer).
const PEER_WSCALE: u8 = 7;

/// The connection the peer is playing, once a SYN has been answered with a SYN-ACK.
#[derive(Debug, Clone)]
struct Conn {
    dut_mac: [u8; 6],
    dut_ip: IpAddr,
    local_ip: IpAddr,
    dut_port: u16,
    local_port: u16,
    /// Next sequence number the peer sends.
    snd_nxt: u32,
    /// Next sequence number expected from the DUT (what the peer ACKs).
    rcv_nxt: u32,
    window: u16,
    timestamps: bool,
    /// The DUT's latest TSval, echoed in the peer's segments.
    ts_recent: u32,
    established: bool,
    /// The peer has sent its FIN (its own or in answer to the DUT's).
    fin_sent: bool,
    /// The largest segment the peer sends: the MSS the DUT offered (536 when it offered
    /// none, as RFC 9293 says), and no more than the link allows.
    send_mss: usize,
    /// `quiet` clock: the DUT sent data or a FIN (new or again) not answered yet.
    owed: bool,
    /// `quiet` clock: the DUT's FIN came in and is not answered yet.
    fin_unanswered: bool,
}

/// Something to do at a given time.
#[derive(Debug)]
enum Job {
    Frame(Vec<u8>),
    Action(PeerAction),
    /// A segment on the connection, built when it is due: seq, ack, IP ID and the TS echo
    /// are taken then, so what the DUT sent meanwhile is accounted for the same way
    /// whatever its timing.
    Segment {
        flags: u16,
        payload_len: usize,
    },
    /// One piece of a segment, its seq fixed when queued (so bytes keep their order) and
    /// the rest (ack, IP ID, TS echo) taken when it leaves, after the DUT reacted to the
    /// pieces before it.
    Piece {
        seq: u32,
        flags: u16,
        payload_len: usize,
    },
    /// The same frame, this many more times (a runaway peer).
    Flood(Vec<u8>, u32),
    /// `quiet` clock: act if the DUT has been quiet long enough, or look again later.
    QuietCheck,
}

/// The scripted peer itself, sans-IO: frames go in with [`PeerMachine::handle`], frames
/// come out of [`PeerMachine::poll_transmit`], and time is an argument, as with the stack.
/// The same machine plays a case on a veth ([`super::Peer`]) and in memory, in virtual time.
#[derive(Debug)]
pub struct PeerMachine {
    /// The time of the call being handled: every `self.now` of the machine.
    now: Instant,
    script: PeerScript,
    addrs: PeerAddrs,
    started: Instant,
    syns: usize,
    ip_id: u16,
    conn: Option<Conn>,
    /// (due, job), kept in due order; actions after the handshake run one after another.
    queue: Vec<(Instant, Job)>,
    stats: PeerStats,
    /// When the last segment on the connection is due out (for [`PEER_PACING`]).
    last_piece_due: Option<Instant>,
    /// `quiet` clock: the `established` actions not played yet, and the earliest time
    /// the next may be (its `wait_ms` counted from the action before it).
    actions: VecDeque<PeerAction>,
    next_action_at: Instant,
    /// When the DUT last sent a segment on the connection.
    last_dut_segment: Option<Instant>,
    /// When the earliest queued `Job::QuietCheck` is due. A check re-queues itself later
    /// while the DUT keeps sending; one due earlier than the queued one (data arriving while
    /// the check for a scripted action 100 ms on waits) is queued as well.
    quiet_check_at: Option<Instant>,
}

impl PeerMachine {
    /// A peer that starts at `now` (its TSval clock counts from here).
    pub fn new(script: PeerScript, addrs: PeerAddrs, now: Instant) -> PeerMachine {
        PeerMachine {
            now,
            script,
            addrs,
            started: now,
            syns: 0,
            ip_id: 0,
            conn: None,
            queue: Vec::new(),
            stats: PeerStats::default(),
            last_piece_due: None,
            actions: VecDeque::new(),
            next_action_at: now,
            last_dut_segment: None,
            quiet_check_at: None,
        }
    }

    /// A frame from the wire at `now`.
    pub fn handle(&mut self, now: Instant, bytes: &[u8]) {
        self.now = now;
        self.stats.frames_in += 1;
        self.take(bytes);
    }

    /// The next frame due by `now`, if any: runs every job due by then (actions, checks)
    /// until one makes a frame.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.now = now;
        while self.queue.first().is_some_and(|(due, _)| *due <= now) {
            let (_, job) = self.queue.remove(0);
            match job {
                Job::Frame(bytes) => return Some(self.sent(bytes, false)),
                Job::Action(action) => self.act(action),
                Job::Segment { flags, payload_len } => self.send_segment(flags, payload_len),
                Job::Piece {
                    seq,
                    flags,
                    payload_len,
                } => {
                    if let Some(bytes) = self.build_piece(seq, flags, payload_len) {
                        return Some(self.sent(bytes, false));
                    }
                }
                Job::QuietCheck => {
                    if self.quiet_check_at.is_some_and(|at| at <= now) {
                        self.quiet_check_at = None;
                    }
                    self.quiet_check();
                }
                Job::Flood(_, 0) => {}
                Job::Flood(bytes, left) => {
                    if left > 1 {
                        self.queue
                            .insert(0, (now, Job::Flood(bytes.clone(), left - 1)));
                    }
                    return Some(self.sent(bytes, true));
                }
            }
        }
        None
    }

    /// When [`PeerMachine::poll_transmit`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.first().map(|(due, _)| *due)
    }

    /// Whether frames or actions are scheduled for later.
    pub fn busy(&self) -> bool {
        !self.queue.is_empty()
    }

    /// What the peer did so far.
    pub fn stats(&self) -> PeerStats {
        self.stats.clone()
    }

    fn sent(&mut self, bytes: Vec<u8>, lossy: bool) -> Transmit {
        self.stats.frames_out += 1;
        Transmit { bytes, lossy }
    }

    fn schedule(&mut self, delay: Duration, job: Job) {
        let due = self.now + delay;
        let at = self.queue.partition_point(|(d, _)| *d <= due);
        self.queue.insert(at, (due, job));
    }

    fn next_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }

    fn ts_now(&self) -> u32 {
        PEER_TS_BASE.wrapping_add((self.now - self.started).as_millis() as u32)
    }

    fn take(&mut self, bytes: &[u8]) {
        let frame = decode::decode(bytes);
        match &frame.body {
            Body::Arp(arp)
                if arp.op == 1
                    && IpAddr::V4(arp.target_ip) == self.addrs.ip
                    && self.script.arp == ArpMode::Reply =>
            {
                let IpAddr::V4(ip) = self.addrs.ip else {
                    unreachable!("matched an IPv4 address")
                };
                let reply = craft::arp_reply(self.addrs.mac, ip, arp);
                self.schedule(Duration::ZERO, Job::Frame(reply));
            }
            Body::Ipv4(ip) if frame.dst_mac == self.addrs.mac => {
                if let L4::Tcp(tcp) = &ip.l4 {
                    let ip_packet = &bytes[14..];
                    let (src, dst) = (IpAddr::V4(ip.src), IpAddr::V4(ip.dst));
                    self.handle_tcp(frame.src_mac, src, dst, tcp, ip_packet);
                }
            }
            Body::Ipv6(ip) => match &ip.l4 {
                // A solicitation for the peer's address, multicast to its solicited-node
                // group or unicast to it; one from the unspecified address is duplicate
                // address detection, which nothing here answers.
                L4::Icmpv6(nd)
                    if nd.icmp_type == icmpv6::NEIGHBOUR_SOLICITATION
                        && nd.target.map(IpAddr::V6) == Some(self.addrs.ip)
                        && !ip.src.is_unspecified()
                        && self.script.arp == ArpMode::Reply =>
                {
                    let IpAddr::V6(target) = self.addrs.ip else {
                        unreachable!("matched an IPv6 address")
                    };
                    let to_mac = nd.lladdr.unwrap_or(frame.src_mac);
                    let reply =
                        craft::neighbour_advertisement(self.addrs.mac, target, to_mac, ip.src);
                    self.schedule(Duration::ZERO, Job::Frame(reply));
                }
                L4::Tcp(tcp) if frame.dst_mac == self.addrs.mac => {
                    let ip_packet = &bytes[14..];
                    let (src, dst) = (IpAddr::V6(ip.src), IpAddr::V6(ip.dst));
                    self.handle_tcp(frame.src_mac, src, dst, tcp, ip_packet);
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn handle_tcp(
        &mut self,
        dut_mac: [u8; 6],
        dut_ip: IpAddr,
        local_ip: IpAddr,
        tcp: &TcpFields,
        ip_packet: &[u8],
    ) {
        if self
            .conn
            .as_ref()
            .is_some_and(|c| tcp.sport == c.dut_port && tcp.dport == c.local_port)
        {
            self.last_dut_segment = Some(self.now);
        }
        if tcp.has(flags::RST) {
            return;
        }
        if tcp.has(flags::SYN) && !tcp.has(flags::ACK) {
            let reaction = self
                .script
                .syn
                .get(self.syns)
                .cloned()
                .unwrap_or_else(|| self.script.then.clone());
            self.syns += 1;
            self.stats.syns += 1;
            self.react_to_syn(reaction, dut_mac, dut_ip, local_ip, tcp, ip_packet);
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if tcp.sport != conn.dut_port || tcp.dport != conn.local_port {
            return;
        }
        if let Some(TcpOption::Ts { val, .. }) = tcp
            .options
            .iter()
            .find(|o| matches!(o, TcpOption::Ts { .. }))
        {
            conn.ts_recent = *val;
        }
        if !conn.established && tcp.has(flags::ACK) && tcp.ack == conn.snd_nxt {
            conn.established = true;
            if self.quiet().is_some() {
                self.actions = self.script.established.iter().cloned().collect();
                self.next_action_at = self.now + self.take_waits();
                self.queue_quiet_check();
            } else {
                let mut delay = Duration::ZERO;
                for action in self.script.established.clone() {
                    if let PeerAction::WaitMs(ms) = action {
                        delay += Duration::from_millis(ms);
                    } else {
                        self.schedule(delay, Job::Action(action));
                    }
                }
            }
        }
        let quiet = self.quiet().is_some();
        let conn = self.conn.as_mut().expect("checked above");
        let fin = tcp.has(flags::FIN);
        if tcp.payload_len > 0 && self.script.on_data == DataReply::Ignore {
            return;
        }
        let consumed = tcp.payload_len as u32 + u32::from(fin);
        if quiet && consumed > 0 {
            // Answered once the DUT goes quiet; a segment already had (a retransmission)
            // is answered too, as any receiver does.
            conn.owed = true;
            if tcp.seq == conn.rcv_nxt {
                conn.rcv_nxt = conn.rcv_nxt.wrapping_add(consumed);
                conn.fin_unanswered |= fin;
            }
            self.queue_quiet_check();
            return;
        }
        if consumed == 0 || tcp.seq != conn.rcv_nxt {
            return;
        }
        conn.rcv_nxt = conn.rcv_nxt.wrapping_add(consumed);
        let fin_sent = conn.fin_sent;
        let delay = Duration::from_millis(self.script.fin_delay_ms);
        if fin {
            match self.script.on_fin {
                FinReply::AckFin if !fin_sent => {
                    self.conn.as_mut().expect("checked above").fin_sent = true;
                    self.send_segment_after(delay, flags::FIN | flags::ACK, 0)
                }
                FinReply::AckFin | FinReply::Ack => self.send_segment_after(delay, flags::ACK, 0),
                FinReply::Ignore => {}
            }
        } else {
            self.send_segment(flags::ACK, 0);
        }
    }

    fn react_to_syn(
        &mut self,
        reaction: SynReaction,
        dut_mac: [u8; 6],
        dut_ip: IpAddr,
        local_ip: IpAddr,
        syn: &TcpFields,
        ip_packet: &[u8],
    ) {
        let base = Segment {
            src_mac: self.addrs.mac,
            dst_mac: dut_mac,
            src_ip: local_ip,
            dst_ip: dut_ip,
            ip_id: 0,
            sport: syn.dport,
            dport: syn.sport,
            seq: 0,
            ack: 0,
            flags: 0,
            window: 0,
            options: Vec::new(),
            payload_len: 0,
        };
        match reaction {
            SynReaction::Drop => {}
            SynReaction::Rst(rst) => {
                let ack = syn.seq.wrapping_add(1).wrapping_add(rst.ack_delta as u32);
                // The peer's ISN as seq, so the RST reads `R 0:0(0)` once normalized; Linux
                // does not check a RST's seq in SYN-SENT (tcp_rcv_synsent_state_process).
                let seg = Segment {
                    ip_id: self.next_id(),
                    seq: self.script.isn,
                    flags: if rst.no_ack {
                        flags::RST
                    } else {
                        flags::RST | flags::ACK
                    },
                    ack: if rst.no_ack { 0 } else { ack },
                    ..base
                };
                self.schedule(
                    Duration::from_millis(rst.delay_ms),
                    Job::Frame(craft::tcp(&seg)),
                );
            }
            SynReaction::Synack(spec) => {
                let seg = self.synack(&spec, syn, base);
                self.schedule(
                    Duration::from_millis(spec.delay_ms),
                    Job::Frame(craft::tcp_with_tos(&seg, spec.tos)),
                );
            }
            SynReaction::Flood(flood) => {
                let seg = match flood.kind {
                    FloodKind::Rst => Segment {
                        ip_id: self.next_id(),
                        seq: self.script.isn,
                        flags: flags::RST | flags::ACK,
                        ack: syn.seq.wrapping_add(1),
                        ..base
                    },
                    FloodKind::Synack => self.synack(&SynAckSpec::default(), syn, base),
                };
                self.schedule(Duration::ZERO, Job::Flood(craft::tcp(&seg), flood.count.0));
            }
            SynReaction::Icmp(icmp) => {
                let mut quoted = ip_packet.to_vec();
                // Where TCP starts and where the protocol is named: after the IPv4 header
                // and its options, or after the fixed IPv6 header.
                let (header_len, protocol_at) = if dut_ip.is_ipv4() {
                    (usize::from(quoted[0] & 0x0f) * 4, 9)
                } else {
                    (40, 6)
                };
                if icmp.seq_delta != 0 && quoted.len() >= header_len + 8 {
                    let seq = syn.seq.wrapping_add(icmp.seq_delta as u32);
                    quoted[header_len + 4..header_len + 8].copy_from_slice(&seq.to_be_bytes());
                }
                if let (Some(protocol), Some(field)) =
                    (icmp.quote_protocol, quoted.get_mut(protocol_at))
                {
                    *field = protocol;
                }
                if let Some(bytes) = icmp.quote_bytes {
                    quoted.truncate(bytes);
                }
                let rest = match icmp.mtu {
                    Some(mtu) => [0, 0, (mtu >> 8) as u8, mtu as u8],
                    None => [0; 4],
                };
                let id = self.next_id();
                let f = craft::icmp_error(
                    self.addrs.mac,
                    dut_mac,
                    icmp.from.unwrap_or(local_ip),
                    dut_ip,
                    id,
                    icmp.icmp_type,
                    icmp.code,
                    rest,
                    &quoted,
                );
                self.schedule(Duration::from_millis(icmp.delay_ms), Job::Frame(f));
            }
        }
    }

    /// Builds the SYN-ACK and starts playing the connection it opens.
    fn synack(&mut self, spec: &SynAckSpec, syn: &TcpFields, base: Segment) -> Segment {
        let syn_ts = syn.options.iter().find_map(|o| match o {
            TcpOption::Ts { val, .. } => Some(*val),
            _ => None,
        });
        let options = spec
            .options
            .clone()
            .unwrap_or_else(|| linux_synack_options(&syn.options, self.addrs.mss));
        let ts_now = self.ts_now();
        let mut bytes = Vec::new();
        let mut timestamps = false;
        for opt in &options {
            match opt {
                PeerOption::Mss(v) => bytes.extend([2, 4, (v >> 8) as u8, *v as u8]),
                PeerOption::SackPerm => bytes.extend([4, 2]),
                PeerOption::TsEcho => {
                    timestamps = syn_ts.is_some();
                    bytes.extend([8, 10]);
                    bytes.extend(ts_now.to_be_bytes());
                    bytes.extend(syn_ts.unwrap_or(0).to_be_bytes());
                }
                PeerOption::Ts { val, ecr } => {
                    timestamps = syn_ts.is_some();
                    bytes.extend([8, 10]);
                    bytes.extend(val.to_be_bytes());
                    bytes.extend(ecr.to_be_bytes());
                }
                PeerOption::Nop => bytes.push(1),
                PeerOption::Eol => bytes.push(0),
                PeerOption::Wscale(s) => bytes.extend([3, 3, *s]),
                PeerOption::Raw(raw) => bytes.extend(&raw.0),
            }
        }
        let isn = self.script.isn;
        let ack = syn.seq.wrapping_add(1).wrapping_add(spec.ack_delta as u32);
        let mut seg_flags = flags::SYN | flags::ACK;
        if spec.ece {
            seg_flags |= flags::ECE;
        }
        if spec.cwr {
            seg_flags |= flags::CWR;
        }
        if spec.fin {
            seg_flags |= flags::FIN;
        }
        let snd_nxt = isn
            .wrapping_add(1)
            .wrapping_add(u32::from(spec.payload))
            .wrapping_add(u32::from(spec.fin));
        self.conn = Some(Conn {
            dut_mac: base.dst_mac,
            dut_ip: base.dst_ip,
            local_ip: base.src_ip,
            dut_port: syn.sport,
            local_port: syn.dport,
            snd_nxt,
            rcv_nxt: syn.seq.wrapping_add(1),
            window: spec.window,
            timestamps,
            ts_recent: syn_ts.unwrap_or(0),
            established: false,
            fin_sent: spec.fin,
            owed: false,
            fin_unanswered: false,
            send_mss: usize::from(
                syn.options
                    .iter()
                    .find_map(|o| match o {
                        TcpOption::Mss { value } if *value > 0 => Some(*value),
                        _ => None,
                    })
                    .unwrap_or(536)
                    .min(self.addrs.mss),
            )
            .max(13),
        });
        Segment {
            ip_id: self.next_id(),
            seq: isn,
            ack,
            flags: seg_flags,
            window: spec.window,
            options: bytes,
            payload_len: usize::from(spec.payload),
            ..base
        }
    }

    fn act(&mut self, action: PeerAction) {
        match action {
            PeerAction::Send(n) => self.send_segment(flags::PSH | flags::ACK, n.0 as usize),
            PeerAction::Fin => {
                if let Some(conn) = self.conn.as_mut() {
                    if conn.fin_sent {
                        return;
                    }
                    conn.fin_sent = true;
                }
                self.send_segment(flags::FIN | flags::ACK, 0)
            }
            PeerAction::Rst => self.send_segment(flags::RST | flags::ACK, 0),
            PeerAction::WaitMs(_) => {}
        }
    }

    /// A `quiet` clock's two periods (answer, action); None for `each_segment`.
    fn quiet(&self) -> Option<(Duration, Duration)> {
        match self.script.clock {
            PeerClock::EachSegment => None,
            PeerClock::Quiet(q) => Some((
                Duration::from_millis(q.answer_ms.0),
                Duration::from_millis(q.action_ms.0),
            )),
        }
    }

    /// Takes the `wait_ms` actions at the head of the pending actions; returns their sum.
    fn take_waits(&mut self) -> Duration {
        let mut wait = Duration::ZERO;
        while let Some(PeerAction::WaitMs(ms)) = self.actions.front() {
            wait += Duration::from_millis(*ms);
            self.actions.pop_front();
        }
        wait
    }

    /// Since when nothing has passed on the connection: the later of the DUT's last segment
    /// and the peer's last (which may still be due, paced).
    fn quiet_since(&self) -> Option<Instant> {
        self.last_dut_segment.max(self.last_piece_due)
    }

    /// When a `quiet` peer acts next, and whether that is an answer: an answer is due once
    /// the line has been quiet for `answer_ms`; an action once it has been quiet for
    /// `action_ms` and its waits are over. None when there is nothing to do.
    fn quiet_due(&self) -> Option<(Instant, bool)> {
        let (answer, action) = self.quiet()?;
        let since = self.quiet_since()?;
        if self.conn.as_ref().is_some_and(|c| c.owed) {
            Some((since + answer, true))
        } else if !self.actions.is_empty() {
            Some(((since + action).max(self.next_action_at), false))
        } else {
            None
        }
    }

    /// Queues a quiet check for when the peer may act next, if none is queued.
    fn queue_quiet_check(&mut self) {
        if let Some((due, _)) = self.quiet_due() {
            if self.quiet_check_at.is_some_and(|at| at <= due) {
                return;
            }
            self.quiet_check_at = Some(due);
            self.schedule(due.saturating_duration_since(self.now), Job::QuietCheck);
        }
    }

    /// A `quiet` peer's one decision point: answer what the DUT sent, or play the next
    /// `established` action, if the line has been quiet long enough (else look again when
    /// it will have been). What the peer sends restarts the quiet period, so the DUT's
    /// reaction to it is on the wire before the peer acts again.
    fn quiet_check(&mut self) {
        let Some((due, answer)) = self.quiet_due() else {
            return;
        };
        if self.now < due {
            self.queue_quiet_check();
            return;
        }
        if answer {
            self.answer_dut();
        } else {
            if let Some(action) = self.actions.pop_front() {
                self.act(action);
            }
            self.next_action_at = self.now + self.take_waits();
        }
        self.queue_quiet_check();
    }

    /// Answers, in one segment, everything the DUT sent since the last answer: its FIN as
    /// `on_fin` says (with `ignore`, nothing), else an ACK of all its data.
    fn answer_dut(&mut self) {
        // The line has been quiet since the peer's last segment too: pacing spaces the
        // segments of one burst, and a paced answer would come a jiffy late, as late as the
        // loss probe it must precede.
        self.last_piece_due = None;
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        conn.owed = false;
        if std::mem::take(&mut conn.fin_unanswered) {
            match self.script.on_fin {
                FinReply::AckFin if !conn.fin_sent => {
                    conn.fin_sent = true;
                    self.send_segment(flags::FIN | flags::ACK, 0)
                }
                FinReply::AckFin | FinReply::Ack => self.send_segment(flags::ACK, 0),
                FinReply::Ignore => {}
            }
        } else {
            self.send_segment(flags::ACK, 0);
        }
    }

    /// Sends a segment on the current connection after `delay`; it is built when due.
    fn send_segment_after(&mut self, delay: Duration, seg_flags: u16, payload_len: usize) {
        if delay.is_zero() {
            self.send_segment(seg_flags, payload_len);
        } else {
            self.schedule(
                delay,
                Job::Segment {
                    flags: seg_flags,
                    payload_len,
                },
            );
        }
    }

    /// Sends on the current connection now, advancing `snd_nxt`: data is cut into pieces of
    /// at most the DUT's MSS, with PSH (if asked for) on the last piece only, as Linux does.
    fn send_segment(&mut self, seg_flags: u16, payload_len: usize) {
        // The timestamp option comes out of the MSS (tcp_current_mss), so a piece never
        // makes a frame larger than the link.
        let Some(mss) = self
            .conn
            .as_ref()
            .map(|c| c.send_mss - if c.timestamps { 12 } else { 0 })
        else {
            return;
        };
        let mss = mss.max(1);
        let mut left = payload_len;
        loop {
            let piece = left.min(mss);
            left -= piece;
            let last = left == 0;
            let piece_flags = if last {
                seg_flags
            } else {
                seg_flags & !(flags::PSH | flags::FIN)
            };
            self.send_piece(piece_flags, piece);
            if last {
                break;
            }
        }
    }

    /// Queues one piece: its seq is taken now, the rest when it is due (see `Job::Piece`).
    fn send_piece(&mut self, seg_flags: u16, payload_len: usize) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let seq = conn.snd_nxt;
        conn.snd_nxt = conn
            .snd_nxt
            .wrapping_add(payload_len as u32)
            .wrapping_add(u32::from(seg_flags & flags::FIN != 0));
        let now = self.now;
        let due = self
            .last_piece_due
            .map_or(now, |last| (last + PEER_PACING).max(now));
        self.last_piece_due = Some(due);
        self.schedule(
            due - now,
            Job::Piece {
                seq,
                flags: seg_flags,
                payload_len,
            },
        );
    }

    /// Builds a queued piece with the connection's state as it is now.
    fn build_piece(&mut self, seq: u32, seg_flags: u16, payload_len: usize) -> Option<Vec<u8>> {
        let ts_now = self.ts_now();
        let id = self.next_id();
        let conn = self.conn.as_ref()?;
        let mut options = Vec::new();
        if conn.timestamps {
            options.extend([1, 1, 8, 10]);
            options.extend(ts_now.to_be_bytes());
            options.extend(conn.ts_recent.to_be_bytes());
        }
        Some(craft::tcp(&Segment {
            src_mac: self.addrs.mac,
            dst_mac: conn.dut_mac,
            src_ip: conn.local_ip,
            dst_ip: conn.dut_ip,
            ip_id: id,
            sport: conn.local_port,
            dport: conn.dut_port,
            seq,
            ack: conn.rcv_nxt,
            flags: seg_flags,
            window: conn.window,
            options,
            payload_len,
        }))
    }
}

/// The options a Linux listener puts on its SYN-ACK for the options the SYN offered
/// (`tcp_synack_options` and `tcp_options_write`, net/ipv4/tcp_output.c): MSS, then SACK-
/// permitted fused with timestamps (or each behind two NOPs), then NOP + window scale.
pub fn linux_synack_options(syn: &[TcpOption], mss: u16) -> Vec<PeerOption> {
    let has = |f: fn(&TcpOption) -> bool| syn.iter().any(f);
    let ts = has(|o| matches!(o, TcpOption::Ts { .. }));
    let sack = has(|o| matches!(o, TcpOption::SackPerm));
    let ws = has(|o| matches!(o, TcpOption::Wscale { .. }));
    let mut out = vec![PeerOption::Mss(mss)];
    match (sack, ts) {
        (true, true) => out.extend([PeerOption::SackPerm, PeerOption::TsEcho]),
        (false, true) => out.extend([PeerOption::Nop, PeerOption::Nop, PeerOption::TsEcho]),
        (true, false) => out.extend([PeerOption::Nop, PeerOption::Nop, PeerOption::SackPerm]),
        (false, false) => {}
    }
    if ws {
        out.extend([PeerOption::Nop, PeerOption::Wscale(PEER_WSCALE)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{QuietClock, QuietMs};

    const DUT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const DUT_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 1));
    const PEER_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2));

    fn from_dut(seq: u32, ack: u32, seg_flags: u16, payload_len: usize) -> Vec<u8> {
        craft::tcp(&Segment {
            src_mac: DUT_MAC,
            dst_mac: PEER_MAC,
            src_ip: DUT_IP,
            dst_ip: PEER_IP,
            ip_id: 1,
            sport: 40000,
            dport: 80,
            seq,
            ack,
            flags: seg_flags,
            window: 64240,
            options: vec![2, 4, 5, 0xb4],
            payload_len,
        })
    }

    /// A peer on the quiet clock after the handshake, with one scripted FIN 100 ms on.
    fn quiet_peer() -> PeerMachine {
        let script = PeerScript {
            syn: vec![SynReaction::Synack(SynAckSpec::default())],
            established: vec![PeerAction::WaitMs(100), PeerAction::Fin],
            clock: PeerClock::Quiet(QuietClock {
                answer_ms: QuietMs(1),
                action_ms: QuietMs(20),
            }),
            ..PeerScript::default()
        };
        let isn = script.isn;
        let mut peer = PeerMachine::new(
            script,
            PeerAddrs {
                ifname: "peer".into(),
                mac: PEER_MAC,
                ip: PEER_IP,
                mss: 1460,
            },
            Instant::now(),
        );
        peer.handle(Instant::now(), &from_dut(1000, 0, flags::SYN, 0));
        peer.handle(
            Instant::now(),
            &from_dut(1001, isn.wrapping_add(1), flags::ACK, 0),
        );
        peer
    }

    /// A neighbour solicitation from the DUT (2001:2::1) for `target`.
    fn solicitation(target: &str) -> Vec<u8> {
        craft::neighbour_solicitation(
            DUT_MAC,
            "2001:2::1".parse().unwrap(),
            target.parse().unwrap(),
        )
    }

    fn v6_peer(arp: ArpMode) -> PeerMachine {
        PeerMachine::new(
            PeerScript {
                arp,
                syn: vec![SynReaction::Synack(SynAckSpec::default())],
                ..PeerScript::default()
            },
            PeerAddrs {
                ifname: "peer".into(),
                mac: PEER_MAC,
                ip: "2001:2::2".parse().unwrap(),
                mss: 1440,
            },
            Instant::now(),
        )
    }

    #[test]
    fn an_ipv6_peer_answers_a_solicitation_for_its_address_only_and_not_when_silent() {
        let mut peer = v6_peer(ArpMode::Reply);
        peer.handle(Instant::now(), &solicitation("2001:2::2"));
        let na = peer
            .poll_transmit(Instant::now())
            .expect("an advertisement");
        let frame = decode::decode(&na.bytes);
        assert_eq!(frame.dst_mac, DUT_MAC);
        let Body::Ipv6(ip) = &frame.body else {
            panic!("IPv6: {frame:?}")
        };
        assert_eq!((ip.hop_limit, ip.dst), (255, "2001:2::1".parse().unwrap()));
        let L4::Icmpv6(nd) = &ip.l4 else {
            panic!("ICMPv6: {ip:?}")
        };
        assert_eq!(nd.icmp_type, icmpv6::NEIGHBOUR_ADVERTISEMENT);
        assert_eq!(nd.rest[0], 0x60, "solicited and override");
        assert_eq!(nd.target, Some("2001:2::2".parse().unwrap()));
        assert_eq!(nd.lladdr, Some(PEER_MAC));
        assert!(nd.checksum_ok);
        // Another target, or a silent peer: nothing.
        peer.handle(Instant::now(), &solicitation("2001:2::3"));
        assert!(peer.poll_transmit(Instant::now()).is_none());
        let mut silent = v6_peer(ArpMode::Silent);
        silent.handle(Instant::now(), &solicitation("2001:2::2"));
        assert!(silent.poll_transmit(Instant::now()).is_none());
    }

    #[test]
    fn an_ipv6_syn_gets_an_ipv6_synack_with_the_ipv6_mss() {
        let mut peer = v6_peer(ArpMode::Reply);
        let syn = craft::tcp(&Segment {
            src_mac: DUT_MAC,
            dst_mac: PEER_MAC,
            src_ip: "2001:2::1".parse().unwrap(),
            dst_ip: "2001:2::2".parse().unwrap(),
            ip_id: 0,
            sport: 40000,
            dport: 80,
            seq: 1000,
            ack: 0,
            flags: flags::SYN,
            window: 64800,
            options: vec![2, 4, 5, 0xa0],
            payload_len: 0,
        });
        peer.handle(Instant::now(), &syn);
        let reply = peer.poll_transmit(Instant::now()).expect("a SYN-ACK");
        let frame = decode::decode(&reply.bytes);
        let Body::Ipv6(ip) = &frame.body else {
            panic!("IPv6: {frame:?}")
        };
        let L4::Tcp(tcp) = &ip.l4 else {
            panic!("TCP: {ip:?}")
        };
        assert!(tcp.checksum_ok);
        assert_eq!((tcp.flags, tcp.ack), (flags::SYN | flags::ACK, 1001));
        assert_eq!(
            tcp.options.first(),
            Some(&TcpOption::Mss { value: 1440 }),
            "the MTU less 60"
        );
    }

    fn answers_queued(peer: &PeerMachine) -> usize {
        peer.queue
            .iter()
            .filter(|(_, job)| matches!(job, Job::Piece { .. }))
            .count()
    }

    #[test]
    fn a_quiet_peer_answers_a_burst_once_1_ms_after_its_last_segment() {
        let mut peer = quiet_peer();
        let isn = peer.script.isn.wrapping_add(1);
        for i in 0..3 {
            peer.handle(
                Instant::now(),
                &from_dut(1001 + i * 1000, isn, flags::ACK, 1000),
            );
        }
        assert_eq!(
            answers_queued(&peer),
            0,
            "nothing answered while the DUT sends"
        );
        let last = peer.last_dut_segment.unwrap();
        assert_eq!(
            peer.quiet_due(),
            Some((last + Duration::from_millis(1), true))
        );
        peer.answer_dut();
        assert_eq!(answers_queued(&peer), 1, "one cumulative answer");
        assert_eq!(peer.conn.as_ref().unwrap().rcv_nxt, 4001);
    }

    #[test]
    fn data_after_the_handshake_is_answered_before_the_scripted_action_falls_due() {
        // Right after the handshake a check waits for the FIN action 100 ms on; data from
        // the DUT must get its answer 1 ms after it, not at that check.
        let mut peer = quiet_peer();
        let action_check = peer.quiet_check_at.unwrap();
        let isn = peer.script.isn.wrapping_add(1);
        peer.handle(Instant::now(), &from_dut(1001, isn, flags::ACK, 1000));
        let answer_due = peer.last_dut_segment.unwrap() + Duration::from_millis(1);
        assert_eq!(peer.quiet_check_at, Some(answer_due));
        assert!(answer_due < action_check);
        assert!(peer
            .queue
            .iter()
            .any(|(at, job)| matches!(job, Job::QuietCheck) && *at < action_check));
    }

    #[test]
    fn a_quiet_peer_plays_its_script_after_20_ms_of_quiet_and_its_wait() {
        let mut peer = quiet_peer();
        let (due, answer) = peer.quiet_due().unwrap();
        assert!(!answer);
        // The scripted 100 ms wait is the later bound right after the handshake.
        assert_eq!(due, peer.next_action_at);
        assert_eq!(peer.actions, [PeerAction::Fin]);
        // A segment from the DUT first: the answer comes before the action, and the
        // action then waits for 20 ms of quiet after that answer.
        let isn = peer.script.isn.wrapping_add(1);
        peer.handle(Instant::now(), &from_dut(1001, isn, flags::ACK, 10));
        assert!(peer.quiet_due().unwrap().1);
        peer.answer_dut();
        peer.next_action_at = Instant::now();
        let answered = peer.last_piece_due.unwrap();
        assert_eq!(
            peer.quiet_due(),
            Some((answered + Duration::from_millis(20), false))
        );
    }

    #[test]
    fn synack_options_follow_what_the_syn_offered() {
        let full = [
            TcpOption::Mss { value: 1460 },
            TcpOption::SackPerm,
            TcpOption::Ts { val: 1, ecr: 0 },
            TcpOption::Nop,
            TcpOption::Wscale { shift: 10 },
        ];
        assert_eq!(
            linux_synack_options(&full, 1460),
            vec![
                PeerOption::Mss(1460),
                PeerOption::SackPerm,
                PeerOption::TsEcho,
                PeerOption::Nop,
                PeerOption::Wscale(7)
            ]
        );
        assert_eq!(
            linux_synack_options(&[TcpOption::Mss { value: 1460 }], 1240),
            vec![PeerOption::Mss(1240)]
        );
    }
}
