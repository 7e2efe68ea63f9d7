//! tcptwin: drives a TCP implementation through a scripted connect scenario inside network
//! namespaces, captures it on the wire, and checks it against the kernel.
//!
//! The pipeline reads top to bottom, one module a stage, as packetdrill's does:
//! [`case`] (load) → [`topology`] (build) → [`peer`] + [`capture`] + [`dut`] (run) →
//! [`decode`] → [`trace`] (normalize) → [`expect`] (verify) → [`report`].

pub mod bench;
pub mod capture;
pub mod case;
pub mod conformance;
pub mod decode;
pub mod diff;
pub mod dut;
pub mod errno;
pub mod ethtool;
pub mod exit;
pub mod expect;
pub mod frame;
pub mod fuzz;
pub mod html;
pub mod import;
pub mod interrupt;
pub mod json_report;
pub mod junit;
pub mod lateness;
pub mod mutants;
pub mod netlink;
pub mod netns;
pub mod packet_socket;
pub mod peer;
pub mod preflight;
pub mod prewarm;
pub mod priority;
pub mod reaper;
pub mod report;
pub mod runner;
pub mod schema;
pub mod spare_receiver;
pub mod sysctl;
pub mod tcp_options;
pub mod timing;
pub mod topology;
pub mod trace;
pub mod vm;
