//! Judging a run: a pure function of the case and the run records. [`expect`] checks one
//! record against the case's expectations; [`diff`] compares two records field by field.

pub mod diff;
pub mod expect;
