//! Errno values by their Linux names, as reports and case files spell them.

/// The symbolic name of a Linux errno (`111` → `ECONNREFUSED`).
pub fn name(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno);
    match e {
        nix::errno::Errno::UnknownErrno => format!("errno{errno}"),
        known => format!("{known:?}"),
    }
}

/// The number of a Linux errno given by its name (`ECONNREFUSED` → 111).
pub fn code(text: &str) -> Option<i32> {
    (1..4096).find(|&code| {
        nix::errno::Errno::from_raw(code) != nix::errno::Errno::UnknownErrno && name(code) == text
    })
}

/// Whether `text` is the name of a Linux errno (`ECONNREFUSED`), as [`name`] spells them.
pub fn is_name(text: &str) -> bool {
    code(text).is_some()
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

    #[test]
    fn errno_names_are_recognised() {
        assert!(super::is_name("ECONNREFUSED") && super::is_name("EAGAIN"));
        assert!(!super::is_name("ECONNREFUSE") && !super::is_name("errno4000"));
        assert_eq!(super::code("ECONNREFUSED"), Some(111));
    }
}
