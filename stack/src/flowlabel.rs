//! The IPv6 flow label of a connection's packets.
//!
//! Mirrors `ip6_make_flowlabel` and `ip6_default_np_autolabel` (include/net/ipv6.h) as
//! `ip6_xmit` calls them for TCP: the label comes from the packet's flow hash, which a
//! full socket sets from `sk_txhash` (`skb_set_hash_from_sk`).

use crate::config::Config;
use crate::wire::ipv6::FLOW_LABEL_MASK;

/// `IPV6_FLOWLABEL_STATELESS_FLAG`: the high bit of an automatic label under
/// `flowlabel_state_ranges`.
const STATELESS_FLAG: u32 = 0x0008_0000;

/// The flow label of a packet whose flow hash is `hash`, from a socket without a label of
/// its own (`np->flow_label` 0, no `IPV6_AUTOFLOWLABEL` set): under `auto_flowlabels` 1
/// (opt-out) or 3 (forced) the hash rotated by 16 and cut to 20 bits (the
/// "obfuscation" of `ip6_make_flowlabel`); under 0 (off) or 2 (opt-in) none.
pub fn make_flowlabel(cfg: &Config, hash: u32) -> u32 {
    if !matches!(cfg.ipv6_auto_flowlabels, 1 | 3) {
        return 0;
    }
    let mut label = hash.rotate_left(16) & FLOW_LABEL_MASK;
    if cfg.ipv6_flowlabel_state_ranges {
        label |= STATELESS_FLAG;
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_from_the_hash_by_the_sysctl() {
        let mut cfg = Config::default();
        // rol32(0x1234_5678, 16) = 0x5678_1234 → low 20 bits 0x81234.
        assert_eq!(make_flowlabel(&cfg, 0x1234_5678), 0x8_1234);
        for off in [0, 2] {
            cfg.ipv6_auto_flowlabels = off;
            assert_eq!(
                make_flowlabel(&cfg, 0x1234_5678),
                0,
                "auto_flowlabels={off}"
            );
        }
        cfg.ipv6_auto_flowlabels = 3;
        cfg.ipv6_flowlabel_state_ranges = true;
        assert_eq!(make_flowlabel(&cfg, 0x0000_0001), 0x9_0000);
    }
}
