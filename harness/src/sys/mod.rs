//! The harness's own process: stopping signals, threads that outlive their work, thread
//! priorities and how late timers fire here.

pub mod host;
pub mod interrupt;
pub mod lateness;
pub mod priority;
pub mod reaper;
