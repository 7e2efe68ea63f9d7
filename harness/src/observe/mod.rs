//! What a run looked like on the wire. Frames go through three forms: [`crate::record::Captured`]
//! (bytes and the time they were seen), [`decode::Decoded`] (their fields), and
//! [`trace::TraceFrame`] (normalized, on the trace's time line, as the judge reads them);
//! [`craft`] builds the frames the scripted peer sends.

pub mod capture;
pub mod craft;
pub mod decode;
pub mod trace;
