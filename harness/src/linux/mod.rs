//! What the harness knows of Linux, kept apart from the stack's own model on purpose: the
//! judge must not share code with an implementation under test, or a bug in the shared code
//! would make both sides agree on the wrong thing.

pub mod errno;
pub mod tcp_options;
pub mod timing;
