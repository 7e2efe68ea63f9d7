//! The subcommands beside `run`: benchmarks, fuzzing, mutation testing, packetdrill import
//! and the checks made before a suite runs.

pub mod bench;
pub mod fuzz;
pub mod import;
pub mod mutants;
pub mod preflight;
pub mod registry;
pub mod schema;
