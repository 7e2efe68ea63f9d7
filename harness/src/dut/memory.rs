//! `MemoryDut`: tcptwin-stack and the scripted peer joined by a wire in memory, in virtual
//! time. Every case runs this way without root, namespaces or a real clock, in a few
//! milliseconds: the fast tier a contributor runs with plain `cargo test`. The namespace
//! tier stays the judge of record; this one is the same stack, the same peer machine
//! ([`crate::peer::PeerMachine`]), the same step interpreter and the same judge.
//!
//! The world mirrors [`super::stack::StackDut`]'s driver (`tcptwin_stack::driver::Driver`)
//! turn for turn: the stack's frames reach the peer when the driver would flush them, the
//! peer's reach the stack when the driver would drain its socket (during a blocking call,
//! a poll or a wait, not between two calls that do not block), and a timer fires when it
//! is due. What differs is only what cannot be mirrored without a kernel: frames cross the
//! wire in no time, and the stack's configuration is the case's sysctls over Linux's
//! defaults, not read from a namespace.

use std::collections::VecDeque;
use std::time::Duration;

use tcptwin_stack::config::{ConfigError, Mutation, Profile, SYSCTL_NAMES};
use tcptwin_stack::socket::poll as pollbits;
use tcptwin_stack::{
    Config, Connect, Errno, Instant, SockAddr, SockOpt, SockOptName, SockOptValue, SocketHandle,
    Stack,
};

use crate::case::{Case, LoadedCase};
use crate::dut::api::{Dut, DutError, Running};
use crate::dut::steps::{self, CallResult, Failure, OptValue, SocketApi};
use crate::net::topology::{Topology, TopologySpec, DUT_IF};
use crate::peer::{PeerAddrs, PeerMachine};
use crate::record::{Captured, ClockShift, Phases, RecordError, RunFailure, RunRecord, MAX_FRAMES};

/// The capture's clock (CLOCK_REALTIME) at virtual time zero: 2027-01-01T00:00:00Z.
const REALTIME_AT_ZERO_NS: i64 = 1_798_761_600_000_000_000;
/// The stack's clock (CLOCK_MONOTONIC) at virtual time zero: a host up for 1000 s.
const MONOTONIC_AT_ZERO_NS: u64 = 1_000_000_000_000;
/// How long every socket call takes, in virtual time: about what a system call costs. Time
/// must move between two calls, as it does on a host: a connect right after a refused one
/// from the same port gets a fresh ISN only because `secure_tcp_seq`'s clock moved on.
const CALL_COST: Duration = Duration::from_micros(10);
/// Turns at one instant after which the world is taken to be stuck (a timer that is due
/// but never handled): a fault of the stack, reported, never an endless loop.
const MAX_TURNS_AT_ONE_INSTANT: u32 = 100_000;

/// Why the in-memory DUT could not play a case at all (what goes wrong in a run it played
/// is the record's failure).
#[derive(Debug, thiserror::Error)]
pub enum MemoryDutError {
    /// The stack refused one of the case's sysctls.
    #[error("sysctl {name}: {source}")]
    Sysctl {
        name: String,
        #[source]
        source: ConfigError,
    },
}

/// tcptwin-stack against the scripted peer, in memory and virtual time.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryDut {
    /// As [`super::stack::StackDut::profile`].
    pub profile: Profile,
    /// As [`super::stack::StackDut::mutation`].
    pub mutation: Option<Mutation>,
}

impl Dut for MemoryDut {
    fn name(&self) -> &'static str {
        match self.mutation {
            None => "memory",
            Some(Mutation::UnclampedWscale) => "memory[unclamped-wscale]",
            Some(Mutation::NoMinSndMss) => "memory[no-min-snd-mss]",
        }
    }

    fn about(&self) -> String {
        "tcptwin-stack against the scripted peer in memory, in virtual time".into()
    }

    fn kernel_owns_address(&self) -> bool {
        false
    }

    fn expectations_apply(&self) -> bool {
        self.profile == Profile::V6_18
    }

    fn run_steps(&self, _topology: &Topology, _case: &Case) -> Result<Running, DutError> {
        Err(DutError::Setup(
            "the in-memory DUT runs whole cases in memory (Dut::run_elsewhere)".into(),
        ))
    }

    fn run_elsewhere(&self, loaded: &LoadedCase) -> Option<Result<RunRecord, RecordError>> {
        Some(
            self.record(&loaded.case)
                .map_err(|e| RecordError::Elsewhere(e.to_string())),
        )
    }
}

impl MemoryDut {
    /// Plays `case` in memory: the steps, then until the line has been quiet for the case's
    /// `settle_ms`, within its time limit.
    pub fn record(&self, case: &Case) -> Result<RunRecord, MemoryDutError> {
        let started = std::time::Instant::now();
        let _dut = tracing::info_span!("dut", dut = self.name()).entered();
        let spec = TopologySpec::for_case(case, false);
        let config = self.config(case)?;
        let mut world = World::new(case, &spec, config);
        let calls = steps::interpret(&mut world, &case.steps, steps::Target::of(&spec));
        let cut_off = world.stopped();
        let run_ms = started.elapsed().as_secs_f64() * 1e3;
        let settled = !cut_off && world.settle(Duration::from_millis(case.settle_ms));
        let failure = if let Some(reason) = world.fault.take() {
            Some(RunFailure::Dut(format!("{} DUT: {reason}", self.name())))
        } else if cut_off {
            Some(RunFailure::TimeLimit(format!(
                "{} DUT: time limit of {} s exceeded; {} call(s) had returned",
                self.name(),
                case.time_limit_s.0,
                calls.len()
            )))
        } else if !settled {
            Some(RunFailure::NeverQuiet {
                limit_s: case.time_limit_s.0,
                frames: world.frames.len(),
            })
        } else if world.frames.len() > MAX_FRAMES {
            Some(RunFailure::Runaway {
                frames: world.frames.len(),
                max: MAX_FRAMES,
            })
        } else {
            None
        };
        Ok(RunRecord {
            frames: world.frames,
            calls,
            failure,
            phases: Phases {
                run_ms,
                settle_ms: started.elapsed().as_secs_f64() * 1e3 - run_ms,
                ..Phases::default()
            },
            clock_shift: Some(ClockShift::constant(
                REALTIME_AT_ZERO_NS - MONOTONIC_AT_ZERO_NS as i64,
            )),
        })
    }

    /// Linux's defaults with the case's sysctls on top, as the stack in a namespace reads
    /// them ([`tcptwin_stack::driver::read_config`]): only the names it knows, a neighbour
    /// setting of the DUT's interface as its own (the namespace's `neigh.default` is written
    /// after the interface exists, so it does not reach it).
    fn config(&self, case: &Case) -> Result<Config, MemoryDutError> {
        let mut config = Config::default().with_profile(self.profile);
        config.mutation = self.mutation;
        let per_device = format!("net.ipv4.neigh.{DUT_IF}.");
        for (name, value) in &case.sysctls {
            let name = match name.0.strip_prefix(&per_device) {
                Some(rest) => format!("net.ipv4.neigh.default.{rest}"),
                None if name.0.starts_with("net.ipv4.neigh.default.") => continue,
                None => name.0.clone(),
            };
            if SYSCTL_NAMES.contains(&name.as_str()) {
                config
                    .set(&name, &value.to_string())
                    .map_err(|source| MemoryDutError::Sysctl { name, source })?;
            }
        }
        Ok(config)
    }
}

/// The stack, the peer and the wire between them, at one virtual time.
struct World {
    stack: Stack,
    peer: PeerMachine,
    /// Virtual time since the run began.
    now: Duration,
    /// The peer's clock at virtual time zero.
    peer_epoch: std::time::Instant,
    /// The case's time limit, from virtual time zero.
    limit: Duration,
    /// Frames the peer sent that the stack has not read yet (its packet socket's queue).
    to_stack: VecDeque<Vec<u8>>,
    /// Every frame on the wire, both ways, stamped on the capture's clock.
    frames: Vec<Captured>,
    /// When the last frame crossed the wire.
    last_frame: Duration,
    handle: Option<SocketHandle>,
    nonblocking: bool,
    /// Why the world could not go on, if it could not (a stack stuck at one instant).
    fault: Option<String>,
}

impl World {
    fn new(case: &Case, spec: &TopologySpec, config: Config) -> World {
        // No namespace here: the ifindex eth0 gets in a fresh one, as in the kernel DUT's.
        let stack = super::stack::stack_on(
            spec,
            config,
            seed(&case.name),
            tcptwin_stack::route::DEFAULT_IFINDEX,
        );
        let peer_epoch = std::time::Instant::now();
        let peer = PeerMachine::new(case.peer.clone(), PeerAddrs::on(spec), peer_epoch);
        World {
            stack,
            peer,
            now: Duration::ZERO,
            peer_epoch,
            limit: Duration::from_secs_f64(case.time_limit_s.0),
            to_stack: VecDeque::new(),
            frames: Vec::new(),
            last_frame: Duration::ZERO,
            handle: None,
            nonblocking: false,
            fault: None,
        }
    }

    fn stack_now(&self) -> Instant {
        Instant::from_nanos(MONOTONIC_AT_ZERO_NS + self.now.as_nanos() as u64)
    }

    fn peer_now(&self) -> std::time::Instant {
        self.peer_epoch + self.now
    }

    /// A stack time as virtual time.
    fn virtual_time(&self, at: Instant) -> Duration {
        Duration::from_nanos(at.as_nanos().saturating_sub(MONOTONIC_AT_ZERO_NS))
    }

    fn capture(&mut self, bytes: &[u8]) {
        self.frames.push(Captured {
            t_ns: REALTIME_AT_ZERO_NS + self.now.as_nanos() as i64,
            bytes: bytes.to_vec(),
        });
        self.last_frame = self.now;
    }

    /// The driver's flush: the stack's frames onto the wire, where the peer reads them at
    /// once; what the peer sends back waits in the stack's socket queue.
    fn flush(&mut self) {
        loop {
            let mut moved = false;
            while let Some(frame) = self.stack.poll_transmit(self.stack_now()) {
                self.capture(&frame);
                self.peer.handle(self.peer_now(), &frame);
                moved = true;
            }
            while let Some(out) = self.peer.poll_transmit(self.peer_now()) {
                self.capture(&out.bytes);
                self.to_stack.push_back(out.bytes);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    /// The driver's drain: the stack reads its socket queue, flushing what it answers;
    /// whether there was anything to read.
    fn drain(&mut self) -> bool {
        let mut any = false;
        while !self.to_stack.is_empty() {
            for frame in std::mem::take(&mut self.to_stack) {
                self.stack.handle_frame(self.stack_now(), &frame);
            }
            self.flush();
            any = true;
        }
        any
    }

    /// The next time something happens by itself: a stack timer or a peer job.
    fn next_event(&self) -> Option<Duration> {
        let stack = self.stack.poll_timeout().map(|t| self.virtual_time(t));
        let peer = self
            .peer
            .poll_timeout()
            .map(|t| t.saturating_duration_since(self.peer_epoch));
        [stack, peer].into_iter().flatten().min()
    }

    /// Moves time on to `wake` (never back); at the time limit, stops there and says so.
    fn sleep_until(&mut self, wake: Option<Duration>) -> CallResult<()> {
        match wake {
            Some(at) if at <= self.limit => {
                self.now = self.now.max(at);
                Ok(())
            }
            _ => {
                self.now = self.now.max(self.limit);
                Err(Failure::Interrupted)
            }
        }
    }

    /// One turn of the driver (`Driver::turn`): frames in if any came, else sleep until the
    /// next timer, `deadline` or frame; then the stack's due timer, then its frames out.
    fn turn(&mut self, deadline: Option<Duration>) -> CallResult<()> {
        self.flush();
        if !self.drain() {
            let wake = [self.next_event(), deadline].into_iter().flatten().min();
            self.sleep_until(wake)?;
            self.flush();
            self.drain();
        }
        if self
            .stack
            .poll_timeout()
            .is_some_and(|t| t <= self.stack_now())
        {
            self.stack.handle_timeout(self.stack_now());
        }
        self.flush();
        Ok(())
    }

    /// `Driver::run_until`: turns until `done` has a value or `deadline` passes (`None`).
    fn run_until<T>(
        &mut self,
        deadline: Option<Duration>,
        mut done: impl FnMut(&mut Stack, Instant) -> Option<T>,
    ) -> CallResult<Option<T>> {
        let mut stall = Stall::default();
        loop {
            let now = self.stack_now();
            if let Some(value) = done(&mut self.stack, now) {
                self.flush();
                return Ok(Some(value));
            }
            if deadline.is_some_and(|d| self.now >= d) {
                return Ok(None);
            }
            self.turn(deadline)?;
            if let Some(reason) = stall.turned(self.now) {
                self.fault = Some(reason.clone());
                self.now = self.limit;
                return Err(Failure::Machinery(reason));
            }
        }
    }

    /// After the last step: the stack keeps answering (as the driver keeps turning) until
    /// the line has been quiet for `quiet` and the peer has nothing scheduled; false when
    /// the time limit came first (the runner's `settle`).
    fn settle(&mut self, quiet: Duration) -> bool {
        let since = self.now;
        let mut stall = Stall::default();
        loop {
            self.flush();
            self.drain();
            let quiet_at = self.last_frame.max(since) + quiet;
            if self.now >= quiet_at && !self.peer.busy() {
                return true;
            }
            let quiet_at = (!self.peer.busy()).then_some(quiet_at);
            let wake = [self.next_event(), quiet_at].into_iter().flatten().min();
            if self.sleep_until(wake).is_err() {
                return false;
            }
            if self.turn(Some(self.now)).is_err() {
                return false;
            }
            if let Some(reason) = stall.turned(self.now) {
                self.fault = Some(reason);
                return false;
            }
        }
    }

    /// A call begins: its cost passes first.
    fn enter(&mut self) {
        self.now += CALL_COST;
    }

    fn handle(&self) -> CallResult<SocketHandle> {
        self.handle.ok_or(Failure::Errno("EBADF".into()))
    }
}

/// Counts the turns that left virtual time where it was: a stack whose due timer is never
/// handled would turn at one instant forever.
#[derive(Debug, Default)]
struct Stall {
    at: Duration,
    turns: u32,
}

impl Stall {
    /// Notes a turn that ended at `now`; why the world is stuck, once too many turns in a
    /// row ended at one instant.
    fn turned(&mut self, now: Duration) -> Option<String> {
        if now == self.at {
            self.turns += 1;
        } else {
            *self = Stall { at: now, turns: 0 };
        }
        (self.turns > MAX_TURNS_AT_ONE_INSTANT).then(|| {
            format!("the stack made no progress in {MAX_TURNS_AT_ONE_INSTANT} turns at {now:?}")
        })
    }
}

/// The same secret for the same case, so that the tier is deterministic (FNV-1a of the
/// name); a booted kernel's differs per boot, which the namespace tier shows.
fn seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A stack's errno as the log names it.
fn errno(e: Errno) -> Failure {
    Failure::Errno(e.name().to_string())
}

impl SocketApi for World {
    fn socket(&mut self, domain: steps::Domain) -> CallResult<i64> {
        self.enter();
        let domain = super::stack::stack_domain(domain);
        self.handle = Some(self.stack.socket_in(domain));
        Ok(3)
    }

    fn set_nonblocking(&mut self, on: bool) -> CallResult<()> {
        self.enter();
        let (h, now) = (self.handle()?, self.stack_now());
        self.stack
            .setsockopt(now, h, SockOpt::NonBlocking(on))
            .map_err(errno)?;
        self.nonblocking = on;
        Ok(())
    }

    fn setsockopt(&mut self, level: i32, name: i32, value: &[u8]) -> CallResult<()> {
        self.enter();
        let (h, now) = (self.handle()?, self.stack_now());
        SockOpt::from_raw(level, name, value)
            .and_then(|o| self.stack.setsockopt(now, h, o))
            .map_err(errno)
    }

    fn getsockopt(&mut self, level: i32, name: i32) -> CallResult<OptValue> {
        self.enter();
        let h = self.handle()?;
        let opt = match (level, name) {
            (libc::SOL_SOCKET, libc::SO_ERROR) => SockOptName::SoError,
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => SockOptName::TcpMaxSeg,
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => SockOptName::SoRcvBuf,
            _ => return Err(Failure::Errno("ENOPROTOOPT".into())),
        };
        match self.stack.getsockopt(h, opt) {
            Ok(SockOptValue::Int(v)) => Ok(OptValue::Int(v)),
            Ok(SockOptValue::Duration(d)) => Ok(OptValue::Duration(d)),
            Err(e) => Err(errno(e)),
        }
    }

    fn bind(&mut self, addr: &[u8]) -> CallResult<()> {
        self.enter();
        let h = self.handle()?;
        self.stack
            .bind(h, &SockAddr::from_bytes(addr))
            .map_err(errno)
    }

    fn connect(&mut self, addr: &[u8]) -> CallResult<()> {
        self.enter();
        let (h, now) = (self.handle()?, self.stack_now());
        let started = self.stack.connect(now, h, &SockAddr::from_bytes(addr));
        self.flush();
        match started {
            Connect::Done(r) => r.map_err(errno),
            Connect::Wait {
                deadline,
                on_timeout,
            } => {
                let deadline = deadline.map(|d| self.virtual_time(d));
                self.run_until(deadline, |s, now| s.connect_wait(now, h))?
                    .unwrap_or(Err(on_timeout))
                    .map_err(errno)
            }
        }
    }

    fn poll(&mut self, events: u32, timeout_ms: i32) -> CallResult<u32> {
        self.enter();
        let h = self.handle()?;
        // POLLERR and POLLHUP are reported whether asked for or not, as poll(2) does.
        let wanted = events | pollbits::POLLERR | pollbits::POLLHUP;
        let deadline =
            (timeout_ms >= 0).then(|| self.now + Duration::from_millis(timeout_ms as u64));
        let woke = self.run_until(deadline, |s, _| s.poll(h).ok().filter(|m| m & wanted != 0))?;
        Ok(woke.map_or(0, |mask| mask & wanted))
    }

    fn send(&mut self, data: &[u8]) -> CallResult<usize> {
        self.enter();
        let h = self.handle()?;
        if self.nonblocking {
            let r = self.stack.send(self.stack_now(), h, data);
            self.flush();
            return r.map_err(errno);
        }
        self.run_until(None, |s, now| match s.send(now, h, data) {
            Err(Errno::EAGAIN) => None,
            r => Some(r),
        })?
        .unwrap_or(Err(Errno::EAGAIN))
        .map_err(errno)
    }

    fn recv(&mut self, max: usize) -> CallResult<usize> {
        self.enter();
        let h = self.handle()?;
        let mut buf = vec![0u8; max];
        if self.nonblocking {
            return self
                .stack
                .recv(self.stack_now(), h, &mut buf)
                .map_err(errno);
        }
        self.run_until(None, |s, now| match s.recv(now, h, &mut buf) {
            Err(Errno::EAGAIN) => None,
            r => Some(r),
        })?
        .unwrap_or(Err(Errno::EAGAIN))
        .map_err(errno)
    }

    fn close(&mut self) -> CallResult<()> {
        self.enter();
        let (h, now) = (self.handle()?, self.stack_now());
        let r = self.stack.close(now, h);
        self.flush();
        r.map_err(errno)
    }

    fn wait(&mut self, ms: u64) -> CallResult<()> {
        let until = self.now + Duration::from_millis(ms);
        self.run_until(Some(until), |_, _| None::<()>).map(drop)
    }

    fn stopped(&self) -> bool {
        self.now >= self.limit
    }

    fn now_ns(&self) -> i64 {
        REALTIME_AT_ZERO_NS + self.now.as_nanos() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_stuck_at_one_instant_is_a_fault_and_time_moving_on_is_not() {
        let mut stall = Stall::default();
        let at = Duration::from_millis(5);
        // The first turn that ends at 5 ms moves time there; the next ones do not.
        for _ in 0..=MAX_TURNS_AT_ONE_INSTANT {
            assert_eq!(stall.turned(at), None);
        }
        let fault = stall.turned(at).expect("one turn too many at 5 ms");
        assert!(fault.contains("no progress"), "{fault}");
        assert_eq!(stall.turned(at + Duration::from_micros(1)), None);
    }
}
