//! Namespaces and sysctls as the namespace tier uses them: work runs inside a namespace of
//! its own and leaves the caller's alone. Needs root (or an unprivileged user namespace).

use tcptwin::net::netns::{current_id, Netns};
use tcptwin::net::sysctl::{read, write};

#[test]
fn work_runs_inside_the_namespace_and_the_caller_stays_outside() {
    let before = current_id().unwrap();
    let ns = Netns::new().unwrap();
    let inside = ns.run(|| current_id().unwrap()).unwrap();
    assert_ne!(inside, before, "run() must execute in the new namespace");
    assert_eq!(
        current_id().unwrap(),
        before,
        "the caller's namespace must not change"
    );
    let spawned = ns
        .spawn("t", || current_id().unwrap())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(spawned, inside, "spawn() must enter the same namespace");
}

#[test]
fn two_namespaces_are_distinct() {
    let a = Netns::new().unwrap();
    let b = Netns::new().unwrap();
    assert_ne!(
        a.run(current_id).unwrap().unwrap(),
        b.run(current_id).unwrap().unwrap()
    );
}

#[test]
fn writes_stay_inside_the_namespace() {
    let outside = read("net.ipv4.tcp_syn_retries").unwrap();
    let ns = Netns::new().unwrap();
    let new_value = if outside == "3" { "4" } else { "3" };
    let inside = ns
        .run(|| {
            write("net.ipv4.tcp_syn_retries", new_value).unwrap();
            read("net.ipv4.tcp_syn_retries").unwrap()
        })
        .unwrap();
    assert_eq!(inside, new_value);
    assert_eq!(read("net.ipv4.tcp_syn_retries").unwrap(), outside);
}
