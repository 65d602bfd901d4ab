//! Entry point: the process's memory allocator and its options; parse the command line and
//! run. All other logic lives in the library.

/// jemalloc instead of glibc's malloc. Under glibc, each round of 1000 routers left ~40 MB of
/// freed memory in the heaps for good (glibc's dynamic mmap threshold; a fixed one cost 3× the
/// throughput), so a long staging day grew without bound. jemalloc hands freed pages back
/// to the kernel on its own: see BENCHMARKS.md, "Soak".
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's compile-time options, read once before `main` (its `malloc_conf` global, under
/// the `_rjem_` prefix tikv-jemalloc-sys builds it with; jemalloc(3), "TUNING"). One background
/// thread returns pages that stayed unused for 1 s (`dirty_decay_ms`; the default is 10 s and
/// happens only when the process allocates again, so an idle server would keep its peak).
/// `MALLOC_CONF`-style overrides still work through the `_RJEM_MALLOC_CONF` variable.
// SAFETY: a NUL-terminated string with static lifetime, never written; jemalloc declares the
// symbol weak precisely so that the program can define it.
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &u8 =
    &b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

fn main() -> std::process::ExitCode {
    pnp_appliance::cli::main()
}
