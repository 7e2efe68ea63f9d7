//! Shared by the tests that need something of the host.

/// Says why a test cannot run on this host, for it to return; where `CI` is set, fails
/// instead: a CI machine is set up to run every test (`ci/setup`), and a test that skipped
/// there would pass while checking nothing.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "cannot run here, and CI is set (a CI machine runs every test): {why}"
    );
    eprintln!("SKIPPED: {why}");
}
