//! `tcptwin fuzz`: proptest-generated connect scenarios, run on the kernel and the stack and
//! diffed; a divergence is shrunk (every shrink step re-runs both) and saved as a YAML case.
//!
//! Scenarios come from [`scenario`], a proptest strategy over the connect scenario space.
//! They are drawn from a runner seeded with `--seed`, so the same seed gives the same
//! scenarios, and run in parallel batches. Shrinking uses proptest's own value trees
//! (`simplify` / `complicate`), one scenario at a time. By default scenarios are
//! timer-free: the connect is nonblocking, the scenario polls for 50 ms and closes, and no
//! SYN is dropped, so no kernel timer runs and a scenario takes milliseconds.
//! `--max-timer S` allows blocking connects bounded by `SO_SNDTIMEO` = S and dropped SYNs.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::case::LoadedCase;
use crate::case::{
    self, ByteCount, Case, Expect, GetOpt, HexBytes, IcmpSpec, PeerAction, PeerClock, PeerOption,
    PeerScript, PollFlag, PollStep, RouteCase, RouteType, RstSpec, SendStep, SockOpt, Step,
    SynAckSpec, SynReaction, SysctlName, SysctlValue, TimeLimit, TopologyCase,
};
use crate::dut::Dut;
use crate::run::{self, PairResult, PairVerdict};

/// How long the nonblocking scenario polls for an answer.
const POLL_MS: i32 = 50;
/// How long a generated scenario waits after connect before it polls: longer than any
/// delay the generated peer answers with.
const PEER_SETTLED_MS: u64 = 40;
/// The generated peer's quiet clock (`clock: quiet`). A peer answering each segment at once
/// raced the DUT's application: its ACKs clocked out more data while `send()` and `close()`
/// were still running (whether the FIN rode on the last data, how much was sent, where the
/// peer's scripted segments fell among the DUT's): the kernel against itself ordered frames
/// differently.
///
/// Answers wait for 1 ms of silence: longer than a burst the kernel sends within one call,
/// shorter than a jiffy, so the answer always precedes the loss probe, the DUT's earliest
/// timer (`tcp_schedule_loss_probe`: at least `TCP_TIMEOUT_MIN_US` and a jiffy; 5 ms and
/// more measured at HZ=250, whereas a peer that answered after 20 ms raced it). The RTT
/// samples stay below 4 ms, where `tcp_cwnd_test` (half the cwnd), not the pacing-rate
/// `tcp_tso_autosize`, sizes the skbs, so PSH marks do not move with sub-ms jitter either.
const PEER_ANSWER_MS: u64 = 1;
/// Scripted actions wait for 20 ms of silence: the DUT's reaction to the peer's previous
/// segment is complete by then, and it is below the 40 ms delayed-ACK timer
/// (`TCP_DELACK_MIN`), so an ACK the DUT holds back is never mistaken for silence.
const PEER_ACTION_MS: u64 = 20;
/// Shrink steps at most per divergence (each runs both implementations).
const MAX_SHRINK_STEPS: usize = 200;
/// `--max-timer`'s default: long enough for two SYN retransmissions (at 1 s and 2 or 3 s)
/// and an `SO_SNDTIMEO` that ends between them, short enough that a default run of 100
/// scenarios stays within a bound it prints ([`scenario_wall_bound`]).
pub const DEFAULT_MAX_TIMER_S: f64 = 3.0;
/// How many times a diverging scenario runs again, alone, before it counts as confirmed
/// ([`Found::reproduced`]). Once was not enough: a scenario that diverged under 16 jobs
/// diverged again in the same crowded pool, and then passed every replay on its own.
pub const CONFIRM_RUNS: usize = 2;

/// What to fuzz, and how long.
#[derive(Debug, Clone)]
pub struct FuzzConfig {
    /// Stop after this many scenarios …
    pub cases: Option<u64>,
    /// … or after this long (whichever comes first; with neither, 100 scenarios).
    pub time: Option<Duration>,
    pub seed: u64,
    /// How long kernel timers may run in a scenario; 0 keeps scenarios timer-free.
    pub max_timer_s: f64,
    pub jobs: usize,
    /// Where minimal cases are saved (`cases/regressions`); None saves nothing.
    pub save_dir: Option<PathBuf>,
    /// Stop at the first divergence found (after shrinking it).
    pub stop_at_first: bool,
    /// Shrink what diverges (off only to measure throughput).
    pub shrink: bool,
    /// The command-line flags that chose the implementations (`--vs smoltcp`, `--mutation
    /// …`), written into a saved case's comment so that its replay line runs the same pair.
    pub dut_flags: String,
    /// The families a scenario is drawn in ([`scenario`]).
    pub families: Vec<case::IpFamily>,
}

/// A divergence found and shrunk.
#[derive(Debug)]
pub struct Found {
    /// The scenario's index in the seed's sequence.
    pub index: u64,
    /// The minimal case that still diverges, and its pair run.
    pub minimal: Case,
    pub result: PairResult,
    pub shrink_steps: usize,
    pub saved: Option<PathBuf>,
    /// Whether the scenario diverged again every time it was run [`CONFIRM_RUNS`] more
    /// times on its own, out of the parallel pool (no other scenario running), as
    /// [`confirm`] does. One that did not is still reported (and saved, as
    /// `<name>-unconfirmed.yaml`), as drawn and with its diverging run: shrinking it could
    /// not tell a simpler case that passes from a rerun that passes by chance, and would
    /// end at the scenario as drawn after many steps, looking like a minimal case. Nor does
    /// it end a run that stops at the first divergence.
    pub reproduced: bool,
    /// How it was found and kept.
    pub kind: Kind,
}

impl Found {
    /// What the printed case is, for the report: "minimal case (scenario #3, 12 shrink
    /// steps)", or why it is the scenario as drawn.
    pub fn headline(&self) -> String {
        let index = self.index;
        match self.kind {
            Kind::Minimal => format!(
                "minimal case (scenario #{index}, {} shrink steps)",
                self.shrink_steps
            ),
            Kind::Drawn => format!(
                "scenario #{index} as drawn (it diverged again in {CONFIRM_RUNS} runs on its own)"
            ),
            Kind::ShrunkDidNotReproduce => format!(
                "scenario #{index} as drawn (it diverged again in {CONFIRM_RUNS} runs on its own, \
                 but the case it shrank to in {} steps did not)",
                self.shrink_steps
            ),
            Kind::Unconfirmed | Kind::Error => format!(
                "scenario #{index} as drawn: it diverged once and passed when run again on its \
                 own, so it was not shrunk"
            ),
        }
    }
}

/// What a fuzz run did.
#[derive(Debug)]
pub struct FuzzOutcome {
    pub scenarios: u64,
    pub elapsed: Duration,
    pub found: Vec<Found>,
    /// Scenarios the harness could not run (errors, kept apart from divergences).
    pub errors: Vec<PairResult>,
    /// Each scenario's wall time (the slower side), ms.
    pub walls_ms: Vec<f64>,
}

fn sysctls() -> impl Strategy<Value = BTreeMap<SysctlName, SysctlValue>> {
    let knob = |name: &str, values: std::ops::RangeInclusive<i64>| {
        let name = SysctlName(name.to_string());
        proptest::option::of(values)
            .prop_map(move |v| v.map(|v| (name.clone(), SysctlValue::Int(v))))
    };
    let port_range = proptest::option::of((32768u32..60900, 0u32..64)).prop_map(|r| {
        r.map(|(low, width)| {
            let name = SysctlName("net.ipv4.ip_local_port_range".into());
            (
                name,
                SysctlValue::Text(format!("{low} {}", low + width + 1)),
            )
        })
    });
    (
        knob("net.ipv4.tcp_timestamps", 0..=2),
        knob("net.ipv4.tcp_sack", 0..=1),
        knob("net.ipv4.tcp_window_scaling", 0..=1),
        knob("net.ipv4.tcp_ecn", 0..=2),
        knob("net.ipv4.tcp_syn_retries", 1..=6),
        knob("net.ipv4.tcp_syn_linear_timeouts", 0..=4),
        port_range,
    )
        .prop_map(|(a, b, c, d, e, f, g)| [a, b, c, d, e, f, g].into_iter().flatten().collect())
}

fn topology() -> impl Strategy<Value = TopologyCase> {
    let route =
        (576u32..9001, proptest::option::of(256u32..9000)).prop_map(|(mtu, advmss)| RouteCase {
            to: case::IpCidr {
                addr: Ipv4Addr::new(203, 0, 113, 0).into(),
                prefix: 24,
            },
            via: Some(Ipv4Addr::new(198, 18, 0, 2).into()),
            kind: RouteType::Unicast,
            mtu: Some(case::Mtu(mtu)),
            advmss,
            initrwnd: None,
            src: None,
        });
    (
        prop_oneof![6 => Just(1500u32), 1 => 576u32..9001],
        proptest::option::of(route),
    )
        .prop_map(|(mtu, route)| TopologyCase {
            mtu: case::Mtu(mtu),
            routes: route.into_iter().collect(),
            ..TopologyCase::default()
        })
}

fn socket_option() -> impl Strategy<Value = SockOpt> {
    prop_oneof![
        prop_oneof![Just(0), Just(87), Just(88), 88..1500, Just(536)].prop_map(SockOpt::TcpMaxseg),
        prop_oneof![Just(4096), 256..4_194_304].prop_map(SockOpt::SoRcvbuf),
        (0..8).prop_map(SockOpt::TcpSyncnt),
        // At least 60 ms off the whole seconds of the SYN schedule and off the timeouts a
        // blocking connect ends on (`sndtimeo_choices`): when timers run, the abort this
        // timeout brings (`tcp_clamp_rto_to_user_timeout`) never races them.
        prop_oneof![Just(0), (0..24).prop_map(|k| k * 125 + 60)].prop_map(SockOpt::TcpUserTimeout),
        (0..256).prop_map(SockOpt::IpTos),
        prop_oneof![Just(-1), 0..256].prop_map(SockOpt::IpTtl),
        (0..2).prop_map(SockOpt::TcpFastopenConnect),
        (0..70000).prop_map(SockOpt::TcpWindowClamp),
        (0..2).prop_map(SockOpt::IpBindAddressNoPort),
        // Record route with room for 1 or 2 hops.
        prop_oneof![
            Just(HexBytes(vec![7, 7, 4, 0, 0, 0, 0, 0])),
            Just(HexBytes(vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
        ]
        .prop_map(SockOpt::IpOptions),
    ]
}

fn peer_option() -> impl Strategy<Value = PeerOption> {
    prop_oneof![
        // Tiny values often: below 48 Linux floors the send MSS (tcp_mtu_to_mss).
        4 => prop_oneof![2 => Just(1460u16), 1 => Just(536), 1 => Just(0), 2 => 1u16..48, 1 => 48u16..100, 1 => any::<u16>()].prop_map(PeerOption::Mss),
        2 => Just(PeerOption::SackPerm),
        3 => Just(PeerOption::TsEcho),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(val, ecr)| PeerOption::Ts { val, ecr }),
        3 => Just(PeerOption::Nop),
        1 => Just(PeerOption::Eol),
        // Mostly legal scales; above 14 Linux clamps (tcp_parse_options), and anything up
        // to 255 fits the option.
        3 => prop_oneof![3 => 0u8..=14, 1 => 15u8..=255].prop_map(PeerOption::Wscale),
        // Malformed: a known kind with a bad length, an unknown kind, a truncated option.
        1 => prop_oneof![
            Just(HexBytes(vec![3, 4, 7, 0])),
            Just(HexBytes(vec![2, 3, 5])),
            Just(HexBytes(vec![8, 10, 0, 0])),
            Just(HexBytes(vec![2, 1])),
            Just(HexBytes(vec![99, 4, 1, 2])),
            Just(HexBytes(vec![4, 0])),
        ]
        .prop_map(PeerOption::Raw),
    ]
}

fn option_bytes(o: &PeerOption) -> usize {
    match o {
        PeerOption::Mss(_) => 4,
        PeerOption::SackPerm => 2,
        PeerOption::TsEcho | PeerOption::Ts { .. } => 10,
        PeerOption::Nop | PeerOption::Eol => 1,
        PeerOption::Wscale(_) => 3,
        PeerOption::Raw(b) => b.0.len(),
    }
}

/// A raw option whose length byte does not match its bytes: the option walk loses step
/// there, and reads what follows as one malformed blob or as other options.
fn misaligns(raw: &[u8]) -> bool {
    raw.len() < 2 || usize::from(raw[1]) != raw.len()
}

/// Replaces every `ts_echo` after a misaligning raw option with a timestamp of fixed values.
/// An echo carries the peer's clock and the DUT's random TSval; the trace normalizes them
/// in a timestamp option it can read, but inside a blob they are raw bytes, different in
/// every run (the kernel against itself differed there).
fn fixed_timestamps_after_misalignment(
    list: impl Iterator<Item = PeerOption>,
    val: u32,
    ecr: u32,
) -> Vec<PeerOption> {
    let mut lost_step = false;
    list.map(|o| match o {
        PeerOption::Raw(ref raw) => {
            lost_step |= misaligns(&raw.0);
            o
        }
        PeerOption::TsEcho if lost_step => PeerOption::Ts { val, ecr },
        o => o,
    })
    .collect()
}

/// An ICMP type other than a request Linux answers (echo 8, timestamp 13, `icmp_echo` and
/// `icmp_timestamp`): the answer's IP ID comes from the kernel's hashed ID generator and a
/// timestamp reply holds the time of day, so the kernel against itself differed there.
fn not_a_request(icmp_type: u8) -> u8 {
    match icmp_type {
        8 | 13 => icmp_type + 1,
        t => t,
    }
}

fn syn_reaction(allow_drop: bool) -> impl Strategy<Value = SynReaction> {
    let delay = prop_oneof![4 => Just(0u64), 1 => 1u64..20];
    // A SYN-ACK's delay is the DUT's first RTT sample. Above ~4 ms the kernel sizes its skbs
    // by the pacing rate that sample gives (`tcp_tso_autosize`, rate ∝ 1/srtt) rather than by
    // half the cwnd (`tcp_cwnd_test`), so sub-ms jitter moved PSH marks and changed how much
    // a nonblocking send accepted, the kernel against itself.
    let synack_delay = prop_oneof![4 => Just(0u64), 1 => 1u64..=3];
    let ack_delta = prop_oneof![8 => Just(0i64), 1 => -2i64..3];
    let synack = (
        proptest::option::of(proptest::collection::vec(peer_option(), 0..8)),
        prop_oneof![Just(65535u16), Just(1), Just(0), any::<u16>()],
        ack_delta.clone(),
        any::<bool>(),
        prop_oneof![8 => Just(0u16), 1 => 1u16..200],
        prop_oneof![8 => Just(false), 1 => Just(true)],
        synack_delay,
        (any::<u32>(), any::<u32>()),
        prop_oneof![8 => Just(0u8), 1 => any::<u8>()],
    )
        .prop_map(
            |(options, window, ack_delta, ece, payload, fin, delay_ms, (val, ecr), tos)| {
                // Keep the list within the 40 bytes a header holds.
                let options = options.map(|list| {
                    let mut used = 0;
                    let list = list.into_iter().take_while(|o| {
                        used += option_bytes(o);
                        used <= 40
                    });
                    fixed_timestamps_after_misalignment(list, val, ecr)
                });
                SynReaction::Synack(SynAckSpec {
                    options,
                    window,
                    ack_delta,
                    ece,
                    cwr: false,
                    payload,
                    fin,
                    delay_ms,
                    tos,
                })
            },
        );
    let rst =
        (any::<bool>(), ack_delta, delay.clone()).prop_map(|(no_ack, ack_delta, delay_ms)| {
            SynReaction::Rst(RstSpec {
                no_ack,
                ack_delta,
                delay_ms,
            })
        });
    let icmp = (
        prop_oneof![4 => Just(3u8), 1 => Just(11u8), 1 => Just(12u8), 1 => Just(4u8), 1 => any::<u8>().prop_map(not_a_request)],
        0u8..17,
        proptest::option::of(prop_oneof![Just(1000u16), 68u16..1500]),
        prop_oneof![8 => Just(0i64), 1 => Just(1i64), 1 => Just(100i64)],
        delay,
    )
        .prop_map(|(icmp_type, code, mtu, seq_delta, delay_ms)| {
            SynReaction::Icmp(IcmpSpec {
                icmp_type,
                code,
                mtu,
                from: None,
                seq_delta,
                delay_ms,
                quote_bytes: None,
                quote_protocol: None,
            })
        });
    let drop_weight = if allow_drop { 2 } else { 0 };
    prop_oneof![
        6 => synack,
        2 => rst,
        2 => icmp,
        drop_weight => Just(SynReaction::Drop),
    ]
}

/// How long after the handshake the peer's scripted actions may start: past the
/// application's own pause before it sends ([`PEER_SETTLED_MS`] and the poll), which no
/// quiet period on the wire can see. The quiet clock then holds them until the DUT's
/// sending is answered and over (kernel against kernel differed when both acted within a
/// few ms).
const ESTABLISHED_QUIET_MS: u64 = 100;

fn established() -> impl Strategy<Value = Vec<PeerAction>> {
    proptest::collection::vec(
        prop_oneof![
            (1u32..3000).prop_map(|n| PeerAction::Send(ByteCount(n))),
            Just(PeerAction::Fin),
            Just(PeerAction::Rst),
            (0u64..20).prop_map(PeerAction::WaitMs),
        ],
        0..3,
    )
    .prop_map(|actions| {
        if actions.is_empty() {
            actions
        } else {
            std::iter::once(PeerAction::WaitMs(ESTABLISHED_QUIET_MS))
                .chain(actions)
                .collect()
        }
    })
}

/// The DUT's own address in every generated topology ([`TopologyCase::default`]).
const DUT_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// An address on the DUT's subnet that no interface has: binding to it fails.
const NOT_LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);

/// Where a scenario connects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Destination {
    /// The peer, or the routed address behind it when the topology has a route.
    Peer,
    /// 127.0.0.1 (Linux connects over `lo`, MSS 65495; nobody listens, so a RST).
    Loopback,
    /// The DUT's own address on the veth, also reached over `lo`.
    OwnAddress,
    /// The bound address and port itself, when the socket was bound to an explicit port on
    /// a local address: a simultaneous open with itself (`tcp_rcv_synsent_state_process`,
    /// the SYN without ACK).
    ItsOwnPort,
}

fn destination() -> impl Strategy<Value = Destination> {
    prop_oneof![
        12 => Just(Destination::Peer),
        1 => Just(Destination::Loopback),
        1 => Just(Destination::OwnAddress),
        1 => Just(Destination::ItsOwnPort),
    ]
}

/// A `bind()` before connect: to any address, the DUT's, loopback's, or one it does not
/// have (EADDRNOTAVAIL); to port 0 (the kernel picks, `inet_csk_find_open_port`) or an
/// explicit one.
fn bind_step() -> impl Strategy<Value = case::BindStep> {
    (
        prop_oneof![
            3 => Just(Ipv4Addr::UNSPECIFIED),
            3 => Just(DUT_ADDRESS),
            1 => Just(Ipv4Addr::LOCALHOST),
            1 => Just(NOT_LOCAL),
        ],
        prop_oneof![3 => Just(0u16), 1 => Just(5555u16), 2 => 1024u16..=65535],
    )
        .prop_map(|(addr, port)| case::BindStep {
            addr: Some(addr.into()),
            port,
            addrlen: None,
        })
}

/// The `SO_SNDTIMEO` values a blocking connect draws, at most `max_ms`: 250 ms, 750 ms,
/// 1250 ms and so on. The SYN retransmissions go out on whole seconds (RTOs of whole
/// seconds from the first SYN, `tcp_timeout_init`, doubling or `tcp_syn_linear_timeouts`),
/// and the peer's answers to them a few ms later; a connect that gives up stays 250 ms off
/// them, so the timeout never races a retransmission or its answer (a 500 ms timeout, and a
/// send that waited 500 ms more, ended at 1.0 s: the kernel against itself returned EAGAIN
/// or the ICMP error answering the retransmission).
fn sndtimeo_choices(max_ms: u32) -> Vec<u32> {
    let choices: Vec<u32> = (0..)
        .map(|n: u32| n * 500 + 250)
        .take_while(|&ms| ms <= max_ms)
        .collect();
    if choices.is_empty() {
        vec![max_ms.max(1)]
    } else {
        choices
    }
}

/// How long a generated scenario may take: its connect may block for `SO_SNDTIMEO` (at
/// most `max_timer_s`), and 5 s covers the rest.
pub fn time_limit_s(max_timer_s: f64) -> f64 {
    5.0 + max_timer_s
}

/// The strategy over connect scenarios. `max_timer_s` > 0 allows dropped SYNs and blocking
/// connects bounded by `SO_SNDTIMEO`. Each is drawn in one of `families`: an IPv4 scenario
/// as drawn, or the same scenario on an `AF_INET6` socket over IPv6 or through v4-mapped
/// addresses ([`crate::case::translate::in_family`]); one whose route has no IPv6
/// counterpart stays IPv4. With one family nothing is drawn for it, so an IPv4-only run
/// of a seed draws the scenarios it always drew.
pub fn scenario(max_timer_s: f64, families: &[case::IpFamily]) -> impl Strategy<Value = Case> {
    let family = match families {
        [] => Just(case::IpFamily::Inet).sboxed(),
        [one] => Just(*one).sboxed(),
        many => proptest::sample::select(many.to_vec()).sboxed(),
    };
    (scenario_inet(max_timer_s), family).prop_map(|(case, family)| match family {
        case::IpFamily::Inet => case,
        other => case::translate::in_family(&case, other).unwrap_or(case),
    })
}

/// An IPv4 scenario.
fn scenario_inet(max_timer_s: f64) -> impl Strategy<Value = Case> {
    let timers = max_timer_s > 0.0;
    let max_ms = (max_timer_s * 1000.0) as u32;
    let blocking = if timers {
        proptest::option::of(proptest::sample::select(sndtimeo_choices(max_ms))).sboxed()
    } else {
        Just(None).sboxed()
    };
    let socket = (
        proptest::collection::vec(socket_option(), 0..3),
        proptest::option::weighted(0.25, bind_step()),
        destination(),
        any::<bool>(),
    );
    (
        sysctls(),
        topology(),
        socket,
        blocking,
        proptest::option::of(1u32..20000),
        proptest::collection::vec(syn_reaction(timers), 1..4),
        syn_reaction(timers),
        established(),
    )
        .prop_map(
            move |(sysctls, topology, socket, sndtimeo, send, syn, then, established)| {
                let (options, bind, destination, read_mss) = socket;
                let routed = !topology.routes.is_empty();
                let mut steps: Vec<Step> = options.into_iter().map(Step::Setsockopt).collect();
                let (addr, port) = match (destination, &bind) {
                    (Destination::Peer, _) => {
                        (routed.then_some(Ipv4Addr::new(203, 0, 113, 7).into()), 80)
                    }
                    (Destination::Loopback, _) => (Some(Ipv4Addr::LOCALHOST.into()), 80),
                    (Destination::OwnAddress, _) => (Some(DUT_ADDRESS.into()), 80),
                    (Destination::ItsOwnPort, Some(b))
                        if b.port != 0 && b.addr != Some(NOT_LOCAL.into()) =>
                    {
                        let addr = b
                            .addr
                            .filter(|a| !a.is_unspecified())
                            .unwrap_or(Ipv4Addr::LOCALHOST.into());
                        (Some(addr), b.port)
                    }
                    (Destination::ItsOwnPort, _) => (Some(Ipv4Addr::LOCALHOST.into()), 80),
                };
                steps.extend(bind.map(Step::Bind));
                match sndtimeo {
                    Some(ms) => steps.push(Step::Setsockopt(SockOpt::SoSndtimeoMs(ms))),
                    None => steps.push(Step::Nonblocking(true)),
                }
                steps.push(Step::Connect(case::ConnectStep {
                    addr,
                    port,
                    family: None,
                    flowinfo: 0,
                    scope_id: 0,
                    addrlen: None,
                }));
                if sndtimeo.is_none() {
                    // Poll once the peer's answer is in: an abort landing during poll()
                    // shows as POLLERR or as POLLOUT|POLLERR|POLLHUP depending on whether
                    // tcp_done had run, the kernel against itself.
                    steps.push(Step::WaitMs(PEER_SETTLED_MS));
                    steps.push(Step::Poll(PollStep {
                        events: vec![PollFlag::Out],
                        timeout_ms: POLL_MS,
                    }));
                    steps.push(Step::Getsockopt(GetOpt::SoError));
                } else {
                    // The send copies what fits and returns. Blocking, it waited for room
                    // while ACKs arrived, and the kernel pushed (PSH) wherever the copy
                    // loop happened to wait (`tcp_sendmsg_locked` before
                    // `sk_stream_wait_memory`): the kernel against itself marked other
                    // segments.
                    steps.push(Step::Nonblocking(true));
                }
                if read_mss {
                    // The MSS the connection settled on (`tcp_current_mss`): 65495 less
                    // options over `lo`, from the route or the peer otherwise.
                    steps.push(Step::Getsockopt(GetOpt::TcpMaxseg));
                }
                if let Some(n) = send {
                    steps.push(Step::Send(SendStep {
                        bytes: ByteCount(n),
                    }));
                }
                steps.push(Step::Close);
                Case {
                    name: "fuzz".into(),
                    description: String::new(),
                    tags: vec!["fuzz".into()],
                    family: case::IpFamily::Inet,
                    topology,
                    sysctls,
                    steps,
                    peer: PeerScript {
                        syn,
                        then,
                        established,
                        clock: PeerClock::Quiet(case::QuietClock {
                            answer_ms: case::QuietMs(PEER_ANSWER_MS),
                            action_ms: case::QuietMs(PEER_ACTION_MS),
                        }),
                        ..PeerScript::default()
                    },
                    expect: Expect::default(),
                    time_limit_s: TimeLimit(time_limit_s(max_timer_s)),
                    settle_ms: 30,
                    known_divergences: Vec::new(),
                }
            },
        )
}

/// The `--family` flags that draw the same scenarios as `families`; none for all three.
fn family_flags(families: &[case::IpFamily]) -> String {
    if families.len() == case::IpFamily::ALL.len() {
        return String::new();
    }
    families
        .iter()
        .map(|f| format!(" --family {}", f.name()))
        .collect()
}

/// How many scenarios a run draws at most: `--cases`, or 100 when neither `--cases` nor
/// `--time` is given; `None` when only the time ends it.
fn scenario_limit(config: &FuzzConfig) -> Option<u64> {
    match (config.cases, config.time) {
        (None, None) => Some(100),
        (cases, _) => cases,
    }
}

/// The longest the drawn scenarios of a run can take: each is cut at its time limit
/// ([`time_limit_s`], namespace setup and teardown aside), `jobs` run at once, and none
/// starts after `--time`. Confirming a divergence ([`CONFIRM_RUNS`] runs) and shrinking it
/// ([`MAX_SHRINK_STEPS`] runs at most) come on top.
pub fn scenario_wall_bound(config: &FuzzConfig) -> Duration {
    let per_scenario = Duration::from_secs_f64(time_limit_s(config.max_timer_s));
    let jobs = config.jobs.max(1) as u64;
    let by_count = scenario_limit(config)
        .map(|n| per_scenario * u32::try_from(n.div_ceil(jobs)).unwrap_or(u32::MAX));
    let by_time = config.time.map(|t| t + per_scenario);
    match (by_count, by_time) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(Duration::MAX),
    }
}

/// The first `n` scenarios a run with `seed` and `max_timer_s` draws, in order (what
/// [`run`] runs as scenarios 0 to n-1).
pub fn scenarios(seed: u64, n: usize, max_timer_s: f64, families: &[case::IpFamily]) -> Vec<Case> {
    let mut runner = TestRunner::new_with_rng(Config::default(), seeded_rng(seed));
    let strategy = scenario(max_timer_s, families);
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("the scenario strategy never rejects")
                .current()
        })
        .collect()
}

/// The runner's random numbers for `seed`.
fn seeded_rng(seed: u64) -> TestRng {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes)
}

fn named(mut case: Case, seed: u64, index: u64) -> LoadedCase {
    case.name = format!("fuzz-{seed}-{index}");
    LoadedCase {
        path: PathBuf::from(format!("(fuzz seed {seed} #{index})")),
        case,
    }
}

/// A finding: the pair diverged, or the implementation under test flooded the wire where
/// the reference did not (a runaway is an error verdict, but the flood is its behaviour,
/// and shrinking the scenario brings it under the frame limit as a plain divergence).
fn diverged(r: &PairResult) -> bool {
    r.verdict == PairVerdict::Diverged
        || (r.verdict == PairVerdict::Error && r.other.ran_away() && r.reference.error.is_none())
}

/// What a fuzz worker reports to the main thread.
enum Event {
    Ran { wall_ms: f64 },
    Found(Found),
    Error(PairResult, Case),
}

/// Runs the fuzzer: `jobs` workers each draw the next scenario from one seeded runner (so
/// scenario N is the same in every run with that seed, whichever worker draws it), run it
/// on both implementations, and shrink what diverges themselves. `on_progress(scenarios,
/// found)` is called as results come in.
pub fn run(
    config: &FuzzConfig,
    reference: &dyn Dut,
    other: &dyn Dut,
    mut on_progress: impl FnMut(u64, &[Found]),
) -> FuzzOutcome {
    let started = Instant::now();
    let strategy = scenario(config.max_timer_s, &config.families).sboxed();
    let rng = seeded_rng(config.seed);
    let draw = std::sync::Mutex::new((TestRunner::new_with_rng(Config::default(), rng), 0u64));
    let limit = scenario_limit(config);
    let stop = std::sync::atomic::AtomicBool::new(false);
    // A survey lists every divergence: it never stops at the first.
    let stop_at_first = config.stop_at_first && config.shrink;
    // Scenarios run holding it shared; a confirmation holds it alone (see [`confirm`]).
    let pool = std::sync::RwLock::new(());
    let mut outcome = FuzzOutcome {
        scenarios: 0,
        elapsed: Duration::ZERO,
        found: Vec::new(),
        errors: Vec::new(),
        walls_ms: Vec::new(),
    };
    let (tx, rx) = std::sync::mpsc::channel::<Event>();
    std::thread::scope(|scope| {
        for _ in 0..config.jobs.max(1) {
            let tx = tx.clone();
            let (draw, stop, strategy, pool) = (&draw, &stop, &strategy, &pool);
            scope.spawn(move || loop {
                let out_of_time = config.time.is_some_and(|t| started.elapsed() >= t);
                if out_of_time
                    || stop.load(std::sync::atomic::Ordering::Acquire)
                    || crate::sys::interrupt::requested()
                {
                    break;
                }
                let (tree, index) = {
                    let mut guard = draw.lock().expect("no worker panics holding the runner");
                    let (runner, next) = &mut *guard;
                    if limit.is_some_and(|l| *next >= l) {
                        break;
                    }
                    let tree = strategy
                        .new_tree(runner)
                        .expect("the scenario strategy never rejects");
                    *next += 1;
                    (tree, *next - 1)
                };
                let loaded = named(tree.current(), config.seed, index);
                let result = {
                    let _in_pool = pool.read().unwrap_or_else(|e| e.into_inner());
                    run::run_pair(&loaded, reference, other, None)
                };
                let _ = tx.send(Event::Ran {
                    wall_ms: result.reference.wall_ms.max(result.other.wall_ms),
                });
                if result.verdict == PairVerdict::Error && !diverged(&result) {
                    let _ = tx.send(Event::Error(result, loaded.case));
                } else if diverged(&result) {
                    // Only a divergence that comes back on its own ends a run that stops
                    // at the first, and only such a one is shrunk.
                    let reproduced = confirm(pool, &loaded, reference, other);
                    if stop_at_first && reproduced {
                        stop.store(true, std::sync::atomic::Ordering::Release);
                    }
                    let found = if reproduced && config.shrink {
                        shrink(tree, loaded, result, config, index, pool, reference, other)
                    } else {
                        // Kept as drawn: a survey's scenario, or one that passed when run
                        // again.
                        let kind = if reproduced {
                            Kind::Drawn
                        } else {
                            Kind::Unconfirmed
                        };
                        found(config, index, loaded.case, result, kind, 0)
                    };
                    let _ = tx.send(Event::Found(found));
                }
            });
        }
        drop(tx);
        for event in rx {
            match event {
                Event::Ran { wall_ms } => {
                    outcome.scenarios += 1;
                    outcome.walls_ms.push(wall_ms);
                }
                Event::Found(found) => outcome.found.push(found),
                Event::Error(result, case) => {
                    if let Some(dir) = &config.save_dir {
                        let _ = save(dir, &case, config, Kind::Error, 0, &result);
                    }
                    outcome.errors.push(result);
                }
            }
            on_progress(outcome.scenarios, &outcome.found);
        }
    });
    crate::run::prewarm::drain();
    outcome.found.sort_by_key(|f| f.index);
    outcome.elapsed = started.elapsed();
    outcome
}

/// Whether a scenario that diverged diverges again every time it runs [`CONFIRM_RUNS`]
/// more times, each run alone: it waits for the scenarios in flight to end and holds the
/// pool until it is done, so no other scenario loads the two cores meanwhile. A divergence
/// that only a crowded machine makes (a DUT call or frame late by some ms) passes there.
fn confirm(
    pool: &std::sync::RwLock<()>,
    loaded: &LoadedCase,
    reference: &dyn Dut,
    other: &dyn Dut,
) -> bool {
    let _alone = pool.write().unwrap_or_else(|e| e.into_inner());
    (0..CONFIRM_RUNS).all(|_| diverged(&run::run_pair(loaded, reference, other, None)))
}

/// How a divergence was found and kept (a saved case's file name and the comment at its
/// top).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Shrunk, and the minimal case diverged again on its own (`<name>.yaml`).
    Minimal,
    /// Confirmed and kept as drawn, by a survey (`<name>.yaml`).
    Drawn,
    /// Confirmed as drawn, but its shrunk case passed when run again on its own, so the
    /// scenario is kept as drawn (`<name>.yaml`).
    ShrunkDidNotReproduce,
    /// Diverged once and passed when run again (`<name>-unconfirmed.yaml`).
    Unconfirmed,
    /// The harness could not run it (`<name>-error.yaml`, with the error).
    Error,
}

/// Saves a divergence (when there is a save directory) and makes its [`Found`].
fn found(
    config: &FuzzConfig,
    index: u64,
    case: Case,
    result: PairResult,
    kind: Kind,
    shrink_steps: usize,
) -> Found {
    let saved = config
        .save_dir
        .as_deref()
        .and_then(|dir| save(dir, &case, config, kind, shrink_steps, &result).ok());
    Found {
        index,
        minimal: case,
        result,
        shrink_steps,
        saved,
        reproduced: kind != Kind::Unconfirmed,
        kind,
    }
}

/// proptest's shrinking loop: simplify while the scenario still diverges, complicate back
/// when a step made it pass. Every step runs both implementations, in the pool. The minimal
/// case is then confirmed on its own like the scenario was; if it passes there, the shrink
/// followed a divergence of the crowd, and the scenario is kept as drawn.
#[allow(clippy::too_many_arguments)]
fn shrink(
    mut tree: Box<dyn ValueTree<Value = Case>>,
    drawn: LoadedCase,
    first: PairResult,
    config: &FuzzConfig,
    index: u64,
    pool: &std::sync::RwLock<()>,
    reference: &dyn Dut,
    other: &dyn Dut,
) -> Found {
    let mut minimal: Option<(LoadedCase, PairResult)> = None;
    let mut steps = 0;
    if tree.simplify() {
        while steps < MAX_SHRINK_STEPS && !crate::sys::interrupt::requested() {
            steps += 1;
            let candidate = named(tree.current(), config.seed, index);
            let r = {
                let _in_pool = pool.read().unwrap_or_else(|e| e.into_inner());
                run::run_pair(&candidate, reference, other, None)
            };
            if diverged(&r) {
                minimal = Some((candidate, r));
                if !tree.simplify() {
                    break;
                }
            } else if !tree.complicate() {
                break;
            }
        }
    }
    let (case, result, kind) = match minimal {
        None => (drawn.case, first, Kind::Minimal),
        Some((candidate, r)) if confirm(pool, &candidate, reference, other) => {
            (candidate.case, r, Kind::Minimal)
        }
        Some(_) => (drawn.case, first, Kind::ShrunkDidNotReproduce),
    };
    found(config, index, case, result, kind, steps)
}

/// Writes a case as YAML with how it was found ([`Kind`]) in a comment at the top.
fn save(
    dir: &Path,
    case: &Case,
    config: &FuzzConfig,
    kind: Kind,
    steps: usize,
    result: &PairResult,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let file = match kind {
        Kind::Error => format!("{}-error.yaml", case.name),
        Kind::Unconfirmed => format!("{}-unconfirmed.yaml", case.name),
        _ => format!("{}.yaml", case.name),
    };
    let path = dir.join(file);
    let mut text = format!(
        "# Found by: tcptwin fuzz --seed {} --max-timer {}{families}{flags} ({}).\n# Replay: tcptwin run \
         {}{flags}\n",
        config.seed,
        config.max_timer_s,
        case.name,
        shell_quote(&path.display().to_string()),
        flags = config.dut_flags,
        families = family_flags(&config.families),
    );
    if kind == Kind::Error {
        for side in [&result.reference, &result.other] {
            if let Some(e) = &side.error {
                text.push_str(&format!("# Harness error on {}: {e}\n", side.dut));
            }
        }
    } else {
        let how = match kind {
            Kind::Drawn => format!(
                "As drawn (not shrunk); it diverged again in {CONFIRM_RUNS} runs on its own"
            ),
            Kind::Unconfirmed => "As drawn (not shrunk): it diverged once and passed when \
                                  run again on its own"
                .to_string(),
            Kind::ShrunkDidNotReproduce => format!(
                "As drawn: it diverged again in {CONFIRM_RUNS} runs on its own, but the case \
                 it shrank to in {steps} steps passed when run again on its own"
            ),
            _ => format!(
                "Shrunk in {steps} steps; it diverged again in {CONFIRM_RUNS} runs on its \
                 own, before and after shrinking"
            ),
        };
        text.push_str(&format!("# {how}. Diverged at:\n"));
        for d in result
            .divergences
            .iter()
            .filter(|d| d.known.is_none())
            .take(12)
        {
            text.push_str(&format!(
                "#   {}: {} {}, {} {}\n",
                d.path, result.reference.dut, d.reference, result.other.dut, d.other
            ));
        }
    }
    text.push_str(&case::to_yaml(case).map_err(std::io::Error::other)?);
    std::fs::write(&path, text)?;
    Ok(path)
}

/// `text` single-quoted for a POSIX shell, so a replay line runs as written whatever the
/// path holds (spaces, `$`, quotes).
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_paths_are_quoted_for_the_shell() {
        assert_eq!(
            shell_quote("cases/regressions/a.yaml"),
            "'cases/regressions/a.yaml'"
        );
        assert_eq!(
            shell_quote("my cases/it's.yaml"),
            "'my cases/it'\\''s.yaml'"
        );
    }

    fn draw(seed: u64, n: usize, max_timer: f64) -> Vec<Case> {
        scenarios(seed, n, max_timer, &[case::IpFamily::Inet])
    }

    #[test]
    fn every_family_is_drawn_and_the_scenario_stays_the_same_otherwise() {
        let all = scenarios(5, 200, 3.0, &case::IpFamily::ALL);
        for family in case::IpFamily::ALL {
            assert!(
                all.iter().any(|c| c.family == family),
                "200 scenarios drew no {family} one"
            );
        }
        // One family draws nothing for it: the first scenario of a seed is the same
        // whether one family or three are allowed (the family comes after it).
        assert_eq!(all[0].peer, draw(5, 1, 3.0)[0].peer);
        // An IPv6 scenario names IPv6 addresses only.
        for c in all.iter().filter(|c| c.family == case::IpFamily::Inet6) {
            for step in &c.steps {
                if let Step::Connect(case::ConnectStep { addr: Some(a), .. }) = step {
                    assert!(a.is_ipv6(), "{a} in an inet6 scenario");
                }
            }
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_scenarios() {
        assert_eq!(draw(7, 20, 0.0), draw(7, 20, 0.0));
        assert_ne!(draw(7, 20, 0.0), draw(8, 20, 0.0));
    }

    #[test]
    fn every_scenario_is_a_valid_case_that_survives_yaml() {
        for case in draw(1, 300, 2.0) {
            let yaml = case::to_yaml(&case).unwrap();
            let back = case::parse(Path::new("fuzz.yaml"), &yaml)
                .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
            assert_eq!(back, case);
        }
    }

    #[test]
    fn timer_free_scenarios_never_drop_a_syn_or_block() {
        for case in draw(3, 300, 0.0) {
            assert!(case.steps.contains(&Step::Nonblocking(true)));
            let reactions = case.peer.syn.iter().chain(std::iter::once(&case.peer.then));
            assert!(
                reactions.into_iter().all(|r| *r != SynReaction::Drop),
                "{case:?}"
            );
        }
    }

    #[test]
    fn no_timestamp_echo_follows_an_option_the_walk_cannot_read() {
        let mut echoes_after_raw = 0;
        for case in draw(5, 1000, 0.0) {
            for r in case.peer.syn.iter().chain([&case.peer.then]) {
                let SynReaction::Synack(SynAckSpec {
                    options: Some(list),
                    ..
                }) = r
                else {
                    continue;
                };
                let mut lost_step = false;
                for o in list {
                    match o {
                        PeerOption::Raw(raw) => lost_step |= misaligns(&raw.0),
                        PeerOption::TsEcho if lost_step => panic!("{list:?}"),
                        PeerOption::TsEcho
                            if list.iter().any(|o| matches!(o, PeerOption::Raw(_))) =>
                        {
                            echoes_after_raw += 1
                        }
                        _ => {}
                    }
                }
            }
        }
        // Echoes still meet well-formed raw options (and precede bad ones).
        assert!(echoes_after_raw > 0);
    }

    /// What a scenario of the default run does that a timer-free one cannot, or that only
    /// some scenarios do.
    #[derive(Debug, Default, PartialEq)]
    struct Reach {
        blocking: usize,
        sndtimeo_before_a_retransmission: usize,
        dropped_syn: usize,
        icmp_after_a_retransmission: usize,
        loopback: usize,
        own_address: usize,
        self_connect: usize,
        bind_port_0: usize,
        bind_explicit_port: usize,
        bind_address_no_port: usize,
        reads_mss: usize,
    }

    fn reach(cases: &[Case]) -> Reach {
        let mut reach = Reach::default();
        for case in cases {
            let reactions: Vec<&SynReaction> =
                case.peer.syn.iter().chain([&case.peer.then]).collect();
            let first_drop = reactions.iter().position(|r| **r == SynReaction::Drop);
            let mut bound = None;
            for step in &case.steps {
                match step {
                    Step::Setsockopt(SockOpt::SoSndtimeoMs(ms)) => {
                        reach.blocking += 1;
                        if first_drop == Some(0) && *ms > 1000 {
                            reach.sndtimeo_before_a_retransmission += 1;
                        }
                    }
                    Step::Setsockopt(SockOpt::IpBindAddressNoPort(1)) => {
                        reach.bind_address_no_port += 1
                    }
                    Step::Bind(b) if b.port == 0 => reach.bind_port_0 += 1,
                    Step::Bind(b) => {
                        reach.bind_explicit_port += 1;
                        bound = Some(b.port);
                    }
                    Step::Connect(c) if c.addr == Some(Ipv4Addr::LOCALHOST.into()) => {
                        reach.loopback += 1;
                        reach.self_connect += usize::from(bound == Some(c.port));
                    }
                    Step::Connect(c) if c.addr == Some(DUT_ADDRESS.into()) => {
                        reach.own_address += 1;
                        reach.self_connect += usize::from(bound == Some(c.port));
                    }
                    Step::Getsockopt(GetOpt::TcpMaxseg) => reach.reads_mss += 1,
                    _ => {}
                }
            }
            if let Some(i) = first_drop {
                reach.dropped_syn += 1;
                if matches!(reactions.get(i + 1), Some(SynReaction::Icmp(_))) {
                    reach.icmp_after_a_retransmission += 1;
                }
            }
        }
        reach
    }

    #[test]
    fn the_default_run_reaches_timers_loopback_and_bind() {
        let reach = reach(&draw(1, 500, DEFAULT_MAX_TIMER_S));
        let fields = format!("{reach:?}");
        assert!(
            !fields.contains(": 0"),
            "a default run of 500 scenarios never draws some of these: {fields}"
        );
        // Timer-free runs still reach loopback and bind, but no timer.
        let timer_free = super::tests::reach(&draw(1, 500, 0.0));
        assert_eq!(
            (timer_free.blocking, timer_free.dropped_syn),
            (0, 0),
            "{timer_free:?}"
        );
        assert!(timer_free.loopback > 0 && timer_free.bind_explicit_port > 0);
    }

    #[test]
    fn timeouts_stay_off_the_syn_schedule() {
        assert_eq!(
            sndtimeo_choices(3000),
            vec![250, 750, 1250, 1750, 2250, 2750]
        );
        assert_eq!(sndtimeo_choices(200), vec![200]);
        let off_the_seconds = |ms: u32| (ms % 1000).min(1000 - ms % 1000) >= 250;
        assert!(sndtimeo_choices(3000).into_iter().all(off_the_seconds));
        for case in draw(2, 300, 10.0) {
            for step in &case.steps {
                if let Step::Setsockopt(SockOpt::TcpUserTimeout(ms)) = step {
                    let ms = *ms as u32;
                    assert!(
                        ms == 0 || (ms % 250).min(250 - ms % 250) >= 60,
                        "TCP_USER_TIMEOUT {ms}"
                    );
                }
                if let Step::Setsockopt(SockOpt::SoSndtimeoMs(ms)) = step {
                    assert!(off_the_seconds(*ms), "{ms}");
                    assert!(*ms <= 10_000);
                    assert!(case.time_limit_s.0 >= 5.0 + f64::from(*ms) / 1000.0);
                }
            }
        }
    }

    #[test]
    fn the_wall_bound_counts_rounds_of_jobs_and_the_time_limit() {
        let config = |cases, time, jobs| FuzzConfig {
            cases,
            time,
            seed: 1,
            max_timer_s: 3.0,
            jobs,
            save_dir: None,
            stop_at_first: true,
            shrink: true,
            dut_flags: String::new(),
            families: vec![case::IpFamily::Inet],
        };
        // 100 scenarios by default, 16 at once: 7 rounds of at most 8 s.
        assert_eq!(
            scenario_wall_bound(&config(None, None, 16)),
            Duration::from_secs(56)
        );
        assert_eq!(
            scenario_wall_bound(&config(Some(32), None, 16)),
            Duration::from_secs(16)
        );
        // --time: no scenario starts after it, and the last one ends within its limit.
        assert_eq!(
            scenario_wall_bound(&config(None, Some(Duration::from_secs(60)), 16)),
            Duration::from_secs(68)
        );
        assert_eq!(
            scenario_wall_bound(&config(Some(16), Some(Duration::from_secs(60)), 16)),
            Duration::from_secs(8)
        );
    }

    #[test]
    fn synack_options_fit_in_a_header() {
        for case in draw(4, 300, 0.0) {
            for r in &case.peer.syn {
                if let SynReaction::Synack(SynAckSpec {
                    options: Some(o), ..
                }) = r
                {
                    assert!(o.iter().map(option_bytes).sum::<usize>() <= 40);
                }
            }
        }
    }
}
