//! Building the network a case runs in: namespaces, the veth pair, addresses, routes,
//! sysctls and offloads, over netlink and `/proc/sys`; and the AF_PACKET sockets on it.

pub mod ethtool;
pub mod netlink;
pub mod netns;
pub mod packet_socket;
pub mod spare_receiver;
pub mod sysctl;
pub mod topology;
