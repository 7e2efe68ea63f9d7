//! What a run looked like on the wire: the capture, frames decoded, frames built, and the
//! normalized trace of frames and calls that the judge reads.

pub mod capture;
pub mod decode;
pub mod frame;
pub mod trace;
