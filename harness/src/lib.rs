//! tcptwin harness library.
