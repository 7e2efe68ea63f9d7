//! Devices under test: one trait, the same steps for every implementation.
//!
//! A DUT runs a case's steps inside the topology's `dut` namespace and logs each call with
//! its return value, errno by name and the times it started and returned (CLOCK_REALTIME,
//! the capture's clock). [`steps`] turns the steps into calls and log records once, for
//! every DUT that offers its calls as a [`steps::SocketApi`].

pub mod adapter_error;
pub mod api;
pub mod encode;
pub mod exec;
pub mod kernel;
pub mod memory;
#[cfg(feature = "smoltcp")]
pub mod smoltcp;
pub mod stack;
pub mod steps;

pub use api::{Dut, DutError, Running, Stopper};
pub use exec::ExecDut;
pub use kernel::KernelDut;
pub use memory::MemoryDut;
#[cfg(feature = "smoltcp")]
pub use smoltcp::SmoltcpDut;
pub use stack::StackDut;
