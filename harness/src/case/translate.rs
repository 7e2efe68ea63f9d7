//! An IPv4 case run in another family, as packetdrill runs each script as IPv4, IPv6 and
//! IPv4-mapped IPv6: the same steps and peer script on an `AF_INET6` socket, over an IPv6
//! network (`inet6`) or the same IPv4 one through v4-mapped addresses (`v4-mapped`).
//!
//! The case's `expect` block was measured in its own family and does not carry over (an
//! ARP exchange is an NS/NA one over IPv6, an MSS is 20 bytes smaller): a translated case is
//! judged by the diff against the reference DUT alone, and says so in its description.
//! What has no counterpart in the other family (an address off the case's subnet, IP
//! options, an ICMP type ICMPv6 lacks) makes the case untranslatable, with the reason.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Case, DutAddress, Expect, Family, IcmpSpec, IpFamily, SockOpt, Step, SynReaction};

/// Why a case cannot be run in another family.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{case} cannot run as {family}: {reason}")]
pub struct Untranslatable {
    pub case: String,
    pub family: IpFamily,
    pub reason: String,
}

/// `case`, an IPv4 (`inet`) case, as a case of `family`. Its name gets `-as-<family>`.
pub fn as_family(case: &Case, family: IpFamily) -> Result<Case, Untranslatable> {
    let mut out = in_family(case, family)?;
    out.name = format!("{}-as-{}", case.name, family.name());
    out.description = format!(
        "{} [run as {family}: the expect block was measured as inet and is not judged; \
         the diff against the reference DUT is]",
        case.description
    );
    out.expect = Expect::default();
    out.tags.push(format!("as-{}", family.name()));
    Ok(out)
}

/// `case`, an IPv4 (`inet`) case, as the same scenario in `family`, under its own name
/// and with its `expect` block as it is (for a case that has none, as the fuzzer's).
pub fn in_family(case: &Case, family: IpFamily) -> Result<Case, Untranslatable> {
    let refuse = |reason: String| Untranslatable {
        case: case.name.clone(),
        family,
        reason,
    };
    if case.family != IpFamily::Inet {
        return Err(refuse(format!("it is a {} case already", case.family)));
    }
    let mut out = case.clone();
    out.family = family;
    // A sockaddr of the other family than the socket's stays one: on an AF_INET6 socket
    // that is AF_INET.
    for step in &mut out.steps {
        if let Step::Connect(connect) = step {
            if connect.family == Some(Family::Inet6) {
                connect.family = Some(Family::Inet);
            }
        }
    }
    if family == IpFamily::V4Mapped {
        // The same network; the steps' IPv4 addresses are passed v4-mapped by the
        // interpreter ([`super::socket_address`]).
        return Ok(out);
    }
    if family != IpFamily::Inet6 {
        return Err(refuse("only inet6 and v4-mapped are other families".into()));
    }
    let topo = &case.topology;
    if topo.mtu.0 < 1280 {
        return Err(refuse(format!(
            "MTU {} is below IPv6's minimum of 1280",
            topo.mtu.0
        )));
    }
    out.topology.dut = match topo.dut {
        None => None,
        Some(DutAddress(None)) => Some(DutAddress(None)),
        Some(DutAddress(Some(cidr))) if cidr == IpFamily::Inet.default_dut() => None,
        Some(DutAddress(Some(cidr))) => {
            return Err(refuse(format!(
                "the DUT's address {}/{}",
                cidr.addr, cidr.prefix
            )))
        }
    };
    out.topology.peer = match topo.peer {
        None => None,
        Some(peer) => Some(address(peer).map_err(refuse)?),
    };
    if !topo.routes.is_empty() {
        return Err(refuse("its routes name IPv4 prefixes".into()));
    }
    for step in &mut out.steps {
        match step {
            Step::Bind(bind) => {
                if let Some(addr) = bind.addr {
                    bind.addr = Some(address(addr).map_err(refuse)?);
                }
            }
            Step::Connect(connect) => {
                if let Some(addr) = connect.addr {
                    connect.addr = Some(address(addr).map_err(refuse)?);
                }
            }
            Step::Setsockopt(SockOpt::IpOptions(_)) => {
                return Err(refuse("IP_OPTIONS: IPv6 has no IPv4 header options".into()))
            }
            _ => {}
        }
    }
    let reactions = out
        .peer
        .syn
        .iter_mut()
        .chain(std::iter::once(&mut out.peer.then));
    for reaction in reactions {
        if let SynReaction::Icmp(icmp) = reaction {
            icmpv6(icmp).map_err(refuse)?;
        }
    }
    Ok(out)
}

/// The IPv6 counterpart of an address an IPv4 case names: the DUT's and the peer's own,
/// the unspecified and the loopback address.
fn address(addr: IpAddr) -> Result<IpAddr, String> {
    let IpAddr::V4(v4) = addr else {
        return Err(format!("{addr} is already an IPv6 address"));
    };
    let dut = IpFamily::Inet.default_dut().addr;
    let peer = IpFamily::Inet.default_peer();
    Ok(if IpAddr::V4(v4) == dut {
        IpFamily::Inet6.default_dut().addr
    } else if IpAddr::V4(v4) == peer {
        IpFamily::Inet6.default_peer()
    } else if v4 == Ipv4Addr::UNSPECIFIED {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else if v4 == Ipv4Addr::LOCALHOST {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        return Err(format!("the address {v4} has no IPv6 counterpart here"));
    })
}

/// An ICMP error as the ICMPv6 one a router would send for the same reason (RFC 4443 §3;
/// the codes `icmpv6_err_convert` maps to the errnos `icmp_err_convert` gives for them).
fn icmpv6(icmp: &mut IcmpSpec) -> Result<(), String> {
    let (icmp_type, code) = match (icmp.icmp_type, icmp.code) {
        (3, 0) | (3, 6) => (1, 0),
        (3, 1) | (3, 7) => (1, 3),
        (3, 3) => (1, 4),
        (3, 9) | (3, 10) | (3, 13) => (1, 1),
        (3, 4) => (2, 0),
        (11, code) => (3, code),
        (12, _) => (4, 0),
        (t, c) => return Err(format!("ICMP {t}/{c} has no ICMPv6 counterpart")),
    };
    if let Some(from) = icmp.from {
        icmp.from = Some(address(from)?);
    }
    icmp.icmp_type = icmp_type;
    icmp.code = code;
    if icmp.quote_protocol.is_some() || icmp.quote_bytes.is_some() {
        return Err("a quote cut or altered at IPv4 offsets".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn case(text: &str) -> Case {
        super::super::parse(Path::new("x.yaml"), text).expect("a valid case")
    }

    #[test]
    fn a_plain_case_runs_on_the_ipv6_network_without_its_expectations() {
        let plain = case(
            "name: plain\nsteps:\n  - connect: { addr: 198.18.0.2 }\n  - bind: { addr: 0.0.0.0 }\n\
             expect:\n  calls:\n    - { call: connect, result: \"0\" }\n",
        );
        let v6 = as_family(&plain, IpFamily::Inet6).unwrap();
        assert_eq!(v6.name, "plain-as-inet6");
        assert_eq!(v6.family, IpFamily::Inet6);
        assert_eq!(v6.expect, Expect::default());
        assert!(v6.description.contains("not judged"), "{}", v6.description);
        let Step::Connect(c) = &v6.steps[0] else {
            panic!("a connect step")
        };
        assert_eq!(c.addr, Some("2001:2::2".parse().unwrap()));
        let Step::Bind(b) = &v6.steps[1] else {
            panic!("a bind step")
        };
        assert_eq!(b.addr, Some("::".parse().unwrap()));
        let mapped = as_family(&plain, IpFamily::V4Mapped).unwrap();
        assert_eq!(
            mapped.steps, plain.steps,
            "the interpreter maps the addresses"
        );
        assert_eq!(mapped.family, IpFamily::V4Mapped);
    }

    #[test]
    fn icmp_errors_become_their_icmpv6_counterparts_or_refuse() {
        let unreachable = case(
            "name: u\nsteps:\n  - connect: {}\npeer:\n  syn:\n    - icmp: { type: 3, code: 3 }\n",
        );
        let v6 = as_family(&unreachable, IpFamily::Inet6).unwrap();
        let SynReaction::Icmp(icmp) = &v6.peer.syn[0] else {
            panic!("an ICMP reaction")
        };
        assert_eq!((icmp.icmp_type, icmp.code), (1, 4));
        let redirect = case(
            "name: r\nsteps:\n  - connect: {}\npeer:\n  syn:\n    - icmp: { type: 5, code: 0 }\n",
        );
        let err = as_family(&redirect, IpFamily::Inet6).unwrap_err();
        assert!(err.reason.contains("ICMP 5/0"), "{err}");
    }

    #[test]
    fn what_has_no_ipv6_counterpart_is_refused_with_its_reason() {
        let routed = case(
            "name: r\ntopology:\n  routes:\n    - { to: 203.0.113.0/24, via: 198.18.0.2 }\n\
             steps:\n  - connect: { addr: 203.0.113.7 }\n",
        );
        assert!(as_family(&routed, IpFamily::Inet6)
            .unwrap_err()
            .reason
            .contains("routes"));
        let small = case("name: s\ntopology:\n  mtu: 576\nsteps:\n  - connect: {}\n");
        assert!(as_family(&small, IpFamily::Inet6)
            .unwrap_err()
            .reason
            .contains("1280"));
        let v6 = case("name: v\nfamily: inet6\nsteps:\n  - connect: {}\n");
        assert!(as_family(&v6, IpFamily::V4Mapped)
            .unwrap_err()
            .reason
            .contains("already"));
    }
}
