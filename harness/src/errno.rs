//! Errno values by their Linux names, as reports and case files spell them.

/// The symbolic name of a Linux errno (`111` → `ECONNREFUSED`).
pub fn name(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno);
    match e {
        nix::errno::Errno::UnknownErrno => format!("errno{errno}"),
        known => format!("{known:?}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_linux_symbols() {
        assert_eq!(super::name(111), "ECONNREFUSED");
        assert_eq!(super::name(110), "ETIMEDOUT");
        assert_eq!(super::name(113), "EHOSTUNREACH");
        assert_eq!(super::name(115), "EINPROGRESS");
    }
}
