//! tcptwin: drives a TCP implementation through a scripted connect scenario inside network
//! namespaces, captures it on the wire, and checks it against the kernel.
//!
//! The pipeline reads top to bottom, one folder a stage, as packetdrill's does:
//! [`case`] (load) → [`net`] (build the namespaces) → [`peer`] + [`dut`] (run, inside
//! [`run`]) → [`record`] (what a run left: frames and calls) → [`observe`] (decode,
//! normalize) → [`judge`] (expectations and the diff) → [`report`]. [`vm`] runs whole cases
//! in a guest kernel; [`tools`] holds the other subcommands; [`linux`] and [`sys`] are
//! shared below every stage.
//!
//! Each folder imports only from the folders before it in [`LAYERS`]; a test keeps it so.

pub mod record;

pub mod linux;
pub mod sys;

pub mod case;
pub mod net;
pub mod observe;

pub mod peer;

pub mod dut;

pub mod judge;
pub mod run;
pub mod vm;

pub mod report;
pub mod tools;

/// The stages from the bottom up: a module may use only the ones before it (and itself).
pub const LAYERS: &[&str] = &[
    "record", "linux", "sys", "case", "net", "observe", "peer", "dut", "judge", "run", "vm",
    "report", "tools",
];
