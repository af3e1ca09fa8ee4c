//! The process's resources as the OS and libc see them: keeping RSS close to what the exporter
//! holds under glibc's allocator, and reading the open-files limit.
//!
//! The one module with `unsafe` code (libc calls; the crate denies it elsewhere).
//!
//! glibc gives every thread that allocates its own arena (up to 8 per core) and keeps freed
//! blocks in them. For a daemon whose heap is a few cached bodies, that took about 460 bytes per
//! series against about 300 with one arena (`docs/benchmarks.md`). One arena costs nothing
//! measurable here: the scrape path hardly allocates.
#![allow(
    unsafe_code,
    reason = "libc calls: mallopt, malloc_trim, getrlimit; each one's SAFETY comment says why it is sound"
)]

/// Limits glibc to one malloc arena, unless `MALLOC_ARENA_MAX` is set (then glibc obeys it).
/// Call before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of glibc's allocator; no thread has started yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Hands memory freed by polls (parsed answers, samples, the previous body) back to the OS, so
/// that RSS follows what the exporter holds rather than its peak.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; it takes no pointers of ours.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The process's open-files limit (soft), if it can be read.
pub fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes one rlimit into the struct we own.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        #[allow(clippy::unnecessary_cast, reason = "rlim_t is not u64 on every unix")]
        (rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}
