//! The sysctls that shape an active open, by their Linux names.
//!
//! Defaults are what a fresh network namespace gets on the host kernel
//! (KERNEL-CONNECT.md §8; `tcp_sk_init` in net/ipv4/tcp_ipv4.c and
//! `inet_init_net` in net/ipv4/af_inet.c). `tcp_rmem`/`rmem_max` are the host's
//! values, which a new netns copies from init_net.
//!
//! Setting a value checks the same range the kernel's `proc_handler` checks,
//! so a case that writes an out-of-range value gets the error the kernel's
//! `sysctl -w` gets. Reading a namespace's `/proc/sys` is I/O and lives in
//! [`crate::driver::read_config`].

use core::fmt;

/// A rejected sysctl write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The name is not one the stack knows.
    #[error("unknown sysctl `{0}`")]
    Unknown(String),
    /// The value does not parse or is outside the kernel's accepted range
    /// (the kernel's `sysctl -w` fails with EINVAL).
    #[error("invalid value `{value}` for `{name}` (the kernel rejects it with EINVAL)")]
    Invalid {
        /// The sysctl.
        name: String,
        /// The rejected value.
        value: String,
    },
}

/// The Linux version whose behaviour the stack follows where versions differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Linux 6.1 (Debian 12's kernel).
    V6_1,
    /// Linux 6.18, the host kernel the cases were measured on.
    #[default]
    V6_18,
}

impl Profile {
    /// The version as `tcptwin --profile` takes it: `6.1`, `6.18`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::V6_1 => "6.1",
            Profile::V6_18 => "6.18",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "6.1" => Ok(Profile::V6_1),
            "6.18" => Ok(Profile::V6_18),
            other => Err(format!(
                "unknown kernel profile {other:?} (known: 6.1, 6.18)"
            )),
        }
    }
}

/// Every sysctl the stack honours, with Linux's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Which kernel version's behaviour to follow; see [`Config::with_profile`].
    pub profile: Profile,
    /// `net.ipv4.tcp_timestamps`: 0 off, 1 on with a random per-pair offset, 2 on without offset.
    pub tcp_timestamps: u8,
    /// `net.ipv4.tcp_sack`.
    pub tcp_sack: bool,
    /// `net.ipv4.tcp_window_scaling`.
    pub tcp_window_scaling: bool,
    /// `net.ipv4.tcp_ecn` (0..=2 in 6.18; `tcp_ecn_mode_max`).
    pub tcp_ecn: u8,
    /// `net.ipv4.tcp_ecn_fallback`.
    pub tcp_ecn_fallback: bool,
    /// `net.ipv4.tcp_syn_retries` (1..=127).
    pub tcp_syn_retries: u32,
    /// `net.ipv4.tcp_syn_linear_timeouts` (0..=127).
    pub tcp_syn_linear_timeouts: u32,
    /// `net.ipv4.tcp_rto_max_ms` (1000..=120000).
    pub tcp_rto_max_ms: u32,
    /// `net.ipv4.tcp_rmem` (min, default, max).
    pub tcp_rmem: [u32; 3],
    /// `net.ipv4.tcp_wmem` (min, default, max).
    pub tcp_wmem: [u32; 3],
    /// `net.core.rmem_max`.
    pub rmem_max: u32,
    /// `net.core.wmem_max`.
    pub wmem_max: u32,
    /// `net.ipv4.tcp_fastopen` (bit 0x1: client).
    pub tcp_fastopen: u32,
    /// `net.ipv4.tcp_early_retrans` (0..=4): 3 and 4 enable the tail loss probe
    /// (`tcp_schedule_loss_probe`).
    pub tcp_early_retrans: u8,
    /// `net.ipv4.tcp_app_win` (0..=31): `tcp_init_buffer_space` reserves
    /// `window >> tcp_app_win` (and at least one `advmss`) of the receive space.
    pub tcp_app_win: u8,
    /// `net.ipv4.tcp_pingpong_thresh` (1..=255): the pingpong count at which
    /// delayed ACKs stop being quick (`inet_csk_in_pingpong_mode`).
    pub tcp_pingpong_thresh: u8,
    /// `net.ipv4.tcp_workaround_signed_windows`.
    pub tcp_workaround_signed_windows: bool,
    /// `net.ipv4.tcp_min_snd_mss`.
    pub tcp_min_snd_mss: u32,
    /// `net.ipv4.tcp_base_mss` (only seeds MTU probing; not used on the SYN).
    pub tcp_base_mss: u32,
    /// `net.ipv4.tcp_mtu_probing`.
    pub tcp_mtu_probing: u8,
    /// `net.ipv4.tcp_tw_reuse`.
    pub tcp_tw_reuse: u8,
    /// `net.ipv4.ip_local_port_range` (low, high).
    pub ip_local_port_range: (u16, u16),
    /// `net.ipv4.ip_local_reserved_ports`.
    pub ip_local_reserved_ports: Vec<(u16, u16)>,
    /// `net.ipv4.ip_default_ttl`.
    pub ip_default_ttl: u8,
    /// `net.ipv4.ip_no_pmtu_disc`.
    pub ip_no_pmtu_disc: u8,
    /// `net.ipv4.route.min_pmtu`.
    pub route_min_pmtu: u32,
    /// `net.ipv4.neigh.<dev>.mcast_solicit`.
    pub neigh_mcast_solicit: u32,
    /// `net.ipv4.neigh.<dev>.ucast_solicit`.
    pub neigh_ucast_solicit: u32,
    /// `net.ipv4.neigh.<dev>.app_solicit`.
    pub neigh_app_solicit: u32,
    /// `net.ipv4.neigh.<dev>.retrans_time_ms`.
    pub neigh_retrans_time_ms: u32,
    /// `net.ipv6.neigh.<dev>.mcast_solicit` (`nd_tbl` default: 3).
    pub ndisc_mcast_solicit: u32,
    /// `net.ipv6.neigh.<dev>.ucast_solicit` (3).
    pub ndisc_ucast_solicit: u32,
    /// `net.ipv6.neigh.<dev>.app_solicit` (0).
    pub ndisc_app_solicit: u32,
    /// `net.ipv6.neigh.<dev>.retrans_time_ms` (`ND_RETRANS_TIMER`, 1000).
    pub ndisc_retrans_time_ms: u32,
    /// `net.ipv6.conf.<dev>.hop_limit` (`ipv6_devconf.hop_limit`, `IPV6_DEFAULT_HOPLIMIT` = 64):
    /// the hop limit of unicast packets without `IPV6_UNICAST_HOPS` or a route metric.
    pub ipv6_hop_limit: u8,
    /// `net.ipv6.conf.<dev>.addr_gen_mode` (`IN6_ADDR_GEN_MODE_EUI64` = 0 by default):
    /// 0 gives the interface its EUI-64 link-local address when IPv6 comes up on it
    /// (`addrconf_addr_gen`), 1 (none) no link-local address and no fe80::/64 route.
    /// Stable privacy (2) and random (3) are not modelled.
    pub ipv6_addr_gen_mode: u8,
    /// `net.ipv6.auto_flowlabels` (0..=3; default `IP6_AUTO_FLOW_LABEL_OPTOUT` = 1):
    /// 0 off, 1 on unless the socket opts out, 2 only if the socket opts in, 3 forced.
    pub ipv6_auto_flowlabels: u8,
    /// `net.ipv6.flowlabel_state_ranges` (default 0): set the high bit of automatic labels.
    pub ipv6_flowlabel_state_ranges: bool,
    /// `net.core.txrehash` (default `SOCK_TXREHASH_ENABLED` = 1): a retransmission timeout
    /// draws a new `sk_txhash` (`sk_rethink_txhash`), so an automatic flow label changes.
    pub core_txrehash: bool,
    /// Not a sysctl: a deliberate deviation from Linux, none by default. It is how tcptwin
    /// shows that its diffs and fuzzer catch a stack bug (`tcptwin fuzz --mutation`).
    pub mutation: Option<Mutation>,
    /// Not a sysctl: the kernel's `jiffies` minus the stack's tick count (the driver's
    /// `CLOCK_MONOTONIC` / `TICK_NSEC`), a per-boot constant. The timer wheel's buckets are
    /// aligned to absolute jiffies, so a timer fires on the kernel's bucket edges only if
    /// the stack knows it; see `driver::kernel_jiffies_offset`. 0 by default.
    pub jiffies_offset: u64,
}

/// A bug the stack can be told to have, each the undoing of one Linux rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Take a peer's window scale above 14 as it is, instead of clamping it to 14
    /// (`tcp_parse_options`: "Illegal window scaling value").
    UnclampedWscale,
    /// Take a peer's MSS below `tcp_min_snd_mss` (48) as it is, instead of flooring the
    /// send MSS there (`tcp_mtu_to_mss`, the fix for CVE-2019-11479).
    NoMinSndMss,
}

impl Mutation {
    /// Every mutation, by the name the command line uses.
    pub const ALL: &[(&str, Mutation)] = &[
        ("unclamped-wscale", Mutation::UnclampedWscale),
        ("no-min-snd-mss", Mutation::NoMinSndMss),
    ];

    /// The name the command line uses.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| n)
    }

    /// The mutation called `name`.
    pub fn from_name(name: &str) -> Option<Mutation> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profile: Profile::V6_18,
            tcp_timestamps: 1,
            tcp_sack: true,
            tcp_window_scaling: true,
            tcp_ecn: 2,
            tcp_ecn_fallback: true,
            tcp_syn_retries: 6,
            tcp_syn_linear_timeouts: 4,
            tcp_rto_max_ms: 120_000,
            tcp_rmem: [4096, 131_072, 33_554_432],
            tcp_wmem: [4096, 16_384, 4_194_304],
            rmem_max: 4_194_304,
            wmem_max: 4_194_304,
            tcp_fastopen: 1,
            tcp_app_win: 31,
            tcp_early_retrans: 3,
            tcp_pingpong_thresh: 1,
            tcp_workaround_signed_windows: false,
            tcp_min_snd_mss: 48,
            tcp_base_mss: 1024,
            tcp_mtu_probing: 0,
            tcp_tw_reuse: 2,
            ip_local_port_range: (32768, 60999),
            ip_local_reserved_ports: Vec::new(),
            ip_default_ttl: 64,
            ip_no_pmtu_disc: 0,
            route_min_pmtu: 552,
            neigh_mcast_solicit: 3,
            neigh_ucast_solicit: 3,
            neigh_app_solicit: 0,
            neigh_retrans_time_ms: 1000,
            ndisc_mcast_solicit: 3,
            ndisc_ucast_solicit: 3,
            ndisc_app_solicit: 0,
            ndisc_retrans_time_ms: 1000,
            ipv6_hop_limit: 64,
            ipv6_addr_gen_mode: 0,
            ipv6_auto_flowlabels: 1,
            ipv6_flowlabel_state_ranges: false,
            core_txrehash: true,
            mutation: None,
            jiffies_offset: 0,
        }
    }
}

/// The sysctl names [`Config::set`] accepts (neighbour ones take any device
/// name in place of `default`).
pub const SYSCTL_NAMES: &[&str] = &[
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_sack",
    "net.ipv4.tcp_window_scaling",
    "net.ipv4.tcp_ecn",
    "net.ipv4.tcp_ecn_fallback",
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_syn_linear_timeouts",
    "net.ipv4.tcp_rto_max_ms",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.tcp_fastopen",
    "net.ipv4.tcp_app_win",
    "net.ipv4.tcp_early_retrans",
    "net.ipv4.tcp_pingpong_thresh",
    "net.ipv4.tcp_workaround_signed_windows",
    "net.ipv4.tcp_min_snd_mss",
    "net.ipv4.tcp_base_mss",
    "net.ipv4.tcp_mtu_probing",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.ip_default_ttl",
    "net.ipv4.ip_no_pmtu_disc",
    "net.ipv4.route.min_pmtu",
    "net.ipv4.neigh.default.mcast_solicit",
    "net.ipv4.neigh.default.ucast_solicit",
    "net.ipv4.neigh.default.app_solicit",
    "net.ipv4.neigh.default.retrans_time_ms",
    "net.ipv6.neigh.default.mcast_solicit",
    "net.ipv6.neigh.default.ucast_solicit",
    "net.ipv6.neigh.default.app_solicit",
    "net.ipv6.neigh.default.retrans_time_ms",
    "net.ipv6.conf.default.hop_limit",
    "net.ipv6.conf.default.addr_gen_mode",
    "net.ipv6.auto_flowlabels",
    "net.ipv6.flowlabel_state_ranges",
    "net.core.txrehash",
];

fn ints(value: &str) -> Option<Vec<i64>> {
    value
        .split_whitespace()
        .map(|s| s.parse::<i64>().ok())
        .collect()
}

impl Config {
    /// Follows `profile` where its kernel differs from 6.18. Linux 6.1 has no
    /// `tcp_syn_linear_timeouts` (added in 6.5; `tcp_write_timeout` in 6.1 compares
    /// `icsk_retransmits` with the retry limit alone and the RTO doubles from the first
    /// retransmission), so under 6.1 its SYNs leave at 0, 1, 3, 7, 15 … s whatever the
    /// namespace's sysctl says. Its `tcp_init` also caps the default `tcp_rmem[2]` at
    /// 6 MiB where 6.18 caps it at 32 MiB (which sets the SYN's window scale, 7 against
    /// 10), so a `tcp_rmem[2]` still at 6.18's default is read as 6.1's default. (A case
    /// that sets exactly 32 MiB is misread; none does.)
    pub fn with_profile(mut self, profile: Profile) -> Config {
        self.profile = profile;
        if profile == Profile::V6_1 {
            self.tcp_syn_linear_timeouts = 0;
            if self.tcp_rmem[2] == Config::default().tcp_rmem[2] {
                self.tcp_rmem[2] = 6 * 1024 * 1024;
            }
        }
        self
    }

    /// Defaults, then each `(name, value)` applied in order with [`Config::set`].
    pub fn from_pairs<'a, I>(pairs: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut c = Config::default();
        for (n, v) in pairs {
            c.set(n, v)?;
        }
        Ok(c)
    }

    /// Set a sysctl by its Linux name (`net.ipv4.tcp_ecn`; a `/` path form
    /// `net/ipv4/tcp_ecn` is accepted too). The value is the text one would
    /// write to `/proc/sys`, e.g. `"4096 131072 6291456"`.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let name_n = name.trim().replace('/', ".");
        let invalid = || ConfigError::Invalid {
            name: name_n.clone(),
            value: value.to_string(),
        };
        if name_n == "net.ipv4.ip_local_reserved_ports" {
            self.ip_local_reserved_ports = parse_port_list(value).ok_or_else(invalid)?;
            return Ok(());
        }
        let v = ints(value).ok_or_else(invalid)?;
        let one = |lo: i64, hi: i64| -> Result<i64, ConfigError> {
            match v.as_slice() {
                [x] if (lo..=hi).contains(x) => Ok(*x),
                _ => Err(invalid()),
            }
        };
        let int_max = i32::MAX as i64;
        // Neighbour parameters exist per device: net.ipv4.neigh.<dev>.<param>.
        if let Some(rest) = name_n.strip_prefix("net.ipv4.neigh.") {
            let param = rest.rsplit('.').next().unwrap_or("");
            match param {
                "mcast_solicit" => self.neigh_mcast_solicit = one(0, int_max)? as u32,
                "ucast_solicit" => self.neigh_ucast_solicit = one(0, int_max)? as u32,
                "app_solicit" => self.neigh_app_solicit = one(0, int_max)? as u32,
                "retrans_time_ms" => self.neigh_retrans_time_ms = one(0, int_max)? as u32,
                _ => return Err(ConfigError::Unknown(name_n)),
            }
            return Ok(());
        }
        if let Some(rest) = name_n.strip_prefix("net.ipv6.neigh.") {
            let param = rest.rsplit('.').next().unwrap_or("");
            match param {
                "mcast_solicit" => self.ndisc_mcast_solicit = one(0, int_max)? as u32,
                "ucast_solicit" => self.ndisc_ucast_solicit = one(0, int_max)? as u32,
                "app_solicit" => self.ndisc_app_solicit = one(0, int_max)? as u32,
                "retrans_time_ms" => self.ndisc_retrans_time_ms = one(0, int_max)? as u32,
                _ => return Err(ConfigError::Unknown(name_n)),
            }
            return Ok(());
        }
        // Per-device IPv6 settings: net.ipv6.conf.<dev>.<param>.
        if let Some(rest) = name_n.strip_prefix("net.ipv6.conf.") {
            match rest.rsplit('.').next().unwrap_or("") {
                // addrconf_sysctl_hop_limit: 1..=255.
                "hop_limit" => self.ipv6_hop_limit = one(1, 255)? as u8,
                "addr_gen_mode" => self.ipv6_addr_gen_mode = one(0, 1)? as u8,
                _ => return Err(ConfigError::Unknown(name_n)),
            }
            return Ok(());
        }
        match name_n.as_str() {
            "net.ipv6.auto_flowlabels" => self.ipv6_auto_flowlabels = one(0, 3)? as u8,
            "net.ipv6.flowlabel_state_ranges" => self.ipv6_flowlabel_state_ranges = one(0, 1)? != 0,
            "net.core.txrehash" => self.core_txrehash = one(0, 1)? != 0,
            "net.ipv4.tcp_timestamps" => self.tcp_timestamps = one(0, 2)? as u8,
            "net.ipv4.tcp_sack" => self.tcp_sack = one(0, 1)? != 0,
            "net.ipv4.tcp_window_scaling" => self.tcp_window_scaling = one(0, 1)? != 0,
            // 6.18: tcp_ecn_mode_max = 2 (sysctl_net_ipv4.c), so 3..5 → EINVAL.
            "net.ipv4.tcp_ecn" => self.tcp_ecn = one(0, 2)? as u8,
            "net.ipv4.tcp_ecn_fallback" => self.tcp_ecn_fallback = one(0, 1)? != 0,
            "net.ipv4.tcp_syn_retries" => self.tcp_syn_retries = one(1, 127)? as u32,
            "net.ipv4.tcp_syn_linear_timeouts" => {
                self.tcp_syn_linear_timeouts = one(0, 127)? as u32
            }
            "net.ipv4.tcp_rto_max_ms" => self.tcp_rto_max_ms = one(1000, 120_000)? as u32,
            "net.ipv4.tcp_rmem" | "net.ipv4.tcp_wmem" => {
                let [a, b, c] = v.as_slice() else {
                    return Err(invalid());
                };
                if [a, b, c].iter().any(|x| !(1..=int_max).contains(*x)) {
                    return Err(invalid());
                }
                let t = [*a as u32, *b as u32, *c as u32];
                if name_n.ends_with("rmem") {
                    self.tcp_rmem = t
                } else {
                    self.tcp_wmem = t
                }
            }
            "net.core.rmem_max" => self.rmem_max = one(1, int_max)? as u32,
            "net.core.wmem_max" => self.wmem_max = one(1, int_max)? as u32,
            "net.ipv4.tcp_fastopen" => self.tcp_fastopen = one(0, int_max)? as u32,
            // proc_dou8vec_minmax with extra2 = tcp_app_win_max (31).
            "net.ipv4.tcp_app_win" => self.tcp_app_win = one(0, 31)? as u8,
            // proc_dou8vec_minmax, extra2 = SYSCTL_FOUR.
            "net.ipv4.tcp_early_retrans" => self.tcp_early_retrans = one(0, 4)? as u8,
            // proc_dou8vec_minmax with extra1 = SYSCTL_ONE.
            "net.ipv4.tcp_pingpong_thresh" => self.tcp_pingpong_thresh = one(1, 255)? as u8,
            "net.ipv4.tcp_workaround_signed_windows" => {
                self.tcp_workaround_signed_windows = one(0, 1)? != 0
            }
            "net.ipv4.tcp_min_snd_mss" => self.tcp_min_snd_mss = one(48, 65535 - 40)? as u32,
            "net.ipv4.tcp_base_mss" => self.tcp_base_mss = one(0, int_max)? as u32,
            "net.ipv4.tcp_mtu_probing" => self.tcp_mtu_probing = one(0, 2)? as u8,
            "net.ipv4.tcp_tw_reuse" => self.tcp_tw_reuse = one(0, 2)? as u8,
            "net.ipv4.ip_local_port_range" => {
                // ipv4_local_port_range (sysctl_net_ipv4.c): 1..=65535 and low <= high.
                let [lo, hi] = v.as_slice() else {
                    return Err(invalid());
                };
                if !(1..=65535).contains(lo) || !(1..=65535).contains(hi) || lo > hi {
                    return Err(invalid());
                }
                self.ip_local_port_range = (*lo as u16, *hi as u16);
            }
            "net.ipv4.ip_default_ttl" => self.ip_default_ttl = one(1, 255)? as u8,
            "net.ipv4.ip_no_pmtu_disc" => self.ip_no_pmtu_disc = one(0, 3)? as u8,
            "net.ipv4.route.min_pmtu" => self.route_min_pmtu = one(68, 65535)? as u32,
            _ => return Err(ConfigError::Unknown(name_n)),
        }
        Ok(())
    }

    /// The value as the kernel prints it in `/proc/sys` (tab-separated vectors).
    pub fn get(&self, name: &str) -> Option<String> {
        let name_n = name.trim().replace('/', ".");
        if let Some(rest) = name_n.strip_prefix("net.ipv4.neigh.") {
            return match rest.rsplit('.').next().unwrap_or("") {
                "mcast_solicit" => Some(self.neigh_mcast_solicit.to_string()),
                "ucast_solicit" => Some(self.neigh_ucast_solicit.to_string()),
                "app_solicit" => Some(self.neigh_app_solicit.to_string()),
                "retrans_time_ms" => Some(self.neigh_retrans_time_ms.to_string()),
                _ => None,
            };
        }
        if let Some(rest) = name_n.strip_prefix("net.ipv6.neigh.") {
            return match rest.rsplit('.').next().unwrap_or("") {
                "mcast_solicit" => Some(self.ndisc_mcast_solicit.to_string()),
                "ucast_solicit" => Some(self.ndisc_ucast_solicit.to_string()),
                "app_solicit" => Some(self.ndisc_app_solicit.to_string()),
                "retrans_time_ms" => Some(self.ndisc_retrans_time_ms.to_string()),
                _ => None,
            };
        }
        if let Some(rest) = name_n.strip_prefix("net.ipv6.conf.") {
            return match rest.rsplit('.').next().unwrap_or("") {
                "hop_limit" => Some(self.ipv6_hop_limit.to_string()),
                "addr_gen_mode" => Some(self.ipv6_addr_gen_mode.to_string()),
                _ => None,
            };
        }
        let b = |x: bool| u8::from(x).to_string();
        Some(match name_n.as_str() {
            "net.ipv6.auto_flowlabels" => self.ipv6_auto_flowlabels.to_string(),
            "net.ipv6.flowlabel_state_ranges" => b(self.ipv6_flowlabel_state_ranges),
            "net.core.txrehash" => b(self.core_txrehash),
            "net.ipv4.tcp_timestamps" => self.tcp_timestamps.to_string(),
            "net.ipv4.tcp_sack" => b(self.tcp_sack),
            "net.ipv4.tcp_window_scaling" => b(self.tcp_window_scaling),
            "net.ipv4.tcp_ecn" => self.tcp_ecn.to_string(),
            "net.ipv4.tcp_ecn_fallback" => b(self.tcp_ecn_fallback),
            "net.ipv4.tcp_syn_retries" => self.tcp_syn_retries.to_string(),
            "net.ipv4.tcp_syn_linear_timeouts" => self.tcp_syn_linear_timeouts.to_string(),
            "net.ipv4.tcp_rto_max_ms" => self.tcp_rto_max_ms.to_string(),
            "net.ipv4.tcp_rmem" => {
                format!(
                    "{}\t{}\t{}",
                    self.tcp_rmem[0], self.tcp_rmem[1], self.tcp_rmem[2]
                )
            }
            "net.ipv4.tcp_wmem" => {
                format!(
                    "{}\t{}\t{}",
                    self.tcp_wmem[0], self.tcp_wmem[1], self.tcp_wmem[2]
                )
            }
            "net.core.rmem_max" => self.rmem_max.to_string(),
            "net.core.wmem_max" => self.wmem_max.to_string(),
            "net.ipv4.tcp_fastopen" => self.tcp_fastopen.to_string(),
            "net.ipv4.tcp_app_win" => self.tcp_app_win.to_string(),
            "net.ipv4.tcp_early_retrans" => self.tcp_early_retrans.to_string(),
            "net.ipv4.tcp_pingpong_thresh" => self.tcp_pingpong_thresh.to_string(),
            "net.ipv4.tcp_workaround_signed_windows" => b(self.tcp_workaround_signed_windows),
            "net.ipv4.tcp_min_snd_mss" => self.tcp_min_snd_mss.to_string(),
            "net.ipv4.tcp_base_mss" => self.tcp_base_mss.to_string(),
            "net.ipv4.tcp_mtu_probing" => self.tcp_mtu_probing.to_string(),
            "net.ipv4.tcp_tw_reuse" => self.tcp_tw_reuse.to_string(),
            "net.ipv4.ip_local_port_range" => {
                format!(
                    "{}\t{}",
                    self.ip_local_port_range.0, self.ip_local_port_range.1
                )
            }
            "net.ipv4.ip_local_reserved_ports" => self
                .ip_local_reserved_ports
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
            "net.ipv4.ip_default_ttl" => self.ip_default_ttl.to_string(),
            "net.ipv4.ip_no_pmtu_disc" => self.ip_no_pmtu_disc.to_string(),
            "net.ipv4.route.min_pmtu" => self.route_min_pmtu.to_string(),
            _ => return None,
        })
    }

    /// Whether `port` is in `ip_local_reserved_ports` (`inet_is_local_reserved_port`).
    pub fn is_reserved_port(&self, port: u16) -> bool {
        self.ip_local_reserved_ports
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&port))
    }
}

/// `proc_do_large_bitmap` syntax: `"8080,9000-9010"` (empty = none).
fn parse_port_list(value: &str) -> Option<Vec<(u16, u16)>> {
    let mut out = Vec::new();
    for part in value
        .split([',', ' ', '\t', '\n'])
        .filter(|s| !s.is_empty())
    {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => {
                let p: u16 = part.parse().ok()?;
                (p, p)
            }
        };
        if a > b {
            return None;
        }
        out.push((a, b));
    }
    Some(out)
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in SYSCTL_NAMES {
            writeln!(f, "{n} = {}", self.get(n).unwrap_or_default())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_spec_section_8() {
        let c = Config::default();
        assert_eq!(
            c.get("net.ipv4.tcp_rmem").unwrap(),
            "4096\t131072\t33554432"
        );
        assert_eq!(c.get("net.core.rmem_max").unwrap(), "4194304");
        assert_eq!(c.get("net.ipv4.tcp_syn_linear_timeouts").unwrap(), "4");
        assert_eq!(c.get("net.ipv4.tcp_syn_retries").unwrap(), "6");
        assert_eq!(c.get("net.ipv4.tcp_ecn").unwrap(), "2");
        assert_eq!(
            c.get("net.ipv4.ip_local_port_range").unwrap(),
            "32768\t60999"
        );
    }

    #[test]
    fn set_by_name_and_ranges() {
        let mut c = Config::from_pairs([
            ("net.ipv4.tcp_timestamps", "0"),
            ("net/ipv4/tcp_rmem", "4096 87380 6291456"),
            ("net.ipv4.neigh.veth0.mcast_solicit", "5"),
            ("net.ipv4.ip_local_reserved_ports", "40000,41000-41002"),
        ])
        .unwrap();
        assert_eq!(c.tcp_timestamps, 0);
        assert_eq!(c.tcp_rmem, [4096, 87380, 6291456]);
        assert_eq!(c.neigh_mcast_solicit, 5);
        assert!(c.is_reserved_port(41001) && !c.is_reserved_port(41003));
        // 6.18 caps tcp_ecn at 2 (scenario 32).
        assert!(matches!(
            c.set("net.ipv4.tcp_ecn", "3"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(c.set("net.ipv4.tcp_syn_retries", "0").is_err());
        assert!(c
            .set("net.ipv4.ip_local_port_range", "40001 40000")
            .is_err());
        assert!(matches!(
            c.set("net.ipv4.nope", "1"),
            Err(ConfigError::Unknown(_))
        ));
        for n in SYSCTL_NAMES {
            let v = c.get(n).unwrap();
            let mut d = c.clone();
            d.set(n, &v).unwrap();
            assert_eq!(d, c, "{n} round-trips");
        }
    }

    #[test]
    fn ipv6_sysctls_by_their_linux_names() {
        let c = Config::default();
        assert_eq!(c.get("net.ipv6.conf.default.hop_limit").unwrap(), "64");
        assert_eq!(c.get("net.ipv6.auto_flowlabels").unwrap(), "1");
        assert_eq!(
            c.get("net.ipv6.neigh.default.retrans_time_ms").unwrap(),
            "1000"
        );
        assert_eq!(c.get("net.ipv6.neigh.default.mcast_solicit").unwrap(), "3");
        let mut c = Config::from_pairs([
            ("net.ipv6.conf.veth0.hop_limit", "200"),
            ("net.ipv6.neigh.veth0.mcast_solicit", "5"),
            ("net.ipv6.auto_flowlabels", "0"),
        ])
        .unwrap();
        assert_eq!(
            (
                c.ipv6_hop_limit,
                c.ndisc_mcast_solicit,
                c.ipv6_auto_flowlabels
            ),
            (200, 5, 0)
        );
        // The IPv4 neighbour settings are apart.
        assert_eq!(c.neigh_mcast_solicit, 3);
        assert!(c.set("net.ipv6.conf.all.hop_limit", "0").is_err());
        assert_eq!(c.get("net.ipv6.conf.default.addr_gen_mode").unwrap(), "0");
        c.set("net.ipv6.conf.eth0.addr_gen_mode", "1").unwrap();
        assert_eq!(c.ipv6_addr_gen_mode, 1);
        assert!(
            c.set("net.ipv6.conf.eth0.addr_gen_mode", "2").is_err(),
            "stable privacy is not modelled"
        );
        assert!(c.set("net.ipv6.auto_flowlabels", "4").is_err());
        assert!(matches!(
            c.set("net.ipv6.conf.all.nope", "1"),
            Err(ConfigError::Unknown(_))
        ));
    }

    #[test]
    fn the_6_1_profile_has_no_linear_syn_timeouts() {
        let c = Config::default().with_profile(Profile::V6_1);
        assert_eq!(c.tcp_syn_linear_timeouts, 0);
        assert_eq!(
            Config::default()
                .with_profile(Profile::V6_18)
                .tcp_syn_linear_timeouts,
            4
        );
        assert_eq!("6.1".parse::<Profile>(), Ok(Profile::V6_1));
        assert!("5.10".parse::<Profile>().is_err());
    }
}
