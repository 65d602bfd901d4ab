//! The server process runs on jemalloc with the options `src/main.rs` bakes in: exactly one
//! background thread, the one that hands freed pages back to the kernel when the server goes
//! idle, is running. That it keeps RSS flat across rounds of routers is measured, not tested:
//! `bench/soak.sh` and `bench/allocator.sh` (BENCHMARKS.md, "Soak").

mod common;

use common::Bench;
use std::time::{Duration, Instant};

/// Names of the server's threads (`/proc/<pid>/task/*/comm`).
fn thread_names(pid: u32) -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let comm = task.unwrap().path().join("comm");
        if let Ok(name) = std::fs::read_to_string(comm) {
            names.push(name.trim().to_string());
        }
    }
    names
}

#[test]
fn allocator_runs_its_page_returning_thread_with_the_built_in_options() {
    let mut b = Bench::new("");
    b.start();
    let pid = b.server.as_ref().unwrap().id();
    // jemalloc starts its thread on the first allocation after `main`; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut names = thread_names(pid);
    while !names.iter().any(|n| n == "jemalloc_bg_thd") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        names = thread_names(pid);
    }
    assert!(
        names.iter().any(|n| n == "jemalloc_bg_thd"),
        "no jemalloc background thread in the server (malloc_conf not read?): {names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == "jemalloc_bg_thd").count(),
        1,
        "max_background_threads:1 not applied: {names:?}"
    );
}
