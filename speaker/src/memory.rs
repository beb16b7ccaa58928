//! glibc malloc settings for a daemon whose memory use comes in bursts. A first start at 10k
//! Services plans, deserialises and writes tens of thousands of objects within a minute; glibc
//! keeps the freed memory, spread over one arena per thread, and the speaker then sat at 77 MiB
//! resident with 32 MiB in use. Fewer arenas and a trim after busy periods hand it back.
//! Other allocators (musl's, or a build without glibc) are left alone.
// mallopt(3) and malloc_trim(3) have no safe wrapper.
#![allow(unsafe_code)]

/// Arenas glibc may create: one. The speaker's threads allocate little at a time, so sharing
/// one arena costs no contention that shows, and freed memory is reused by every thread.
const ARENAS: i32 = 1;

/// Caps the number of malloc arenas; call before the runtime starts its threads.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; M_ARENA_MAX with a positive value is
    // a documented setting, and no allocation is in progress on another thread yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Returns free memory at the top and inside every arena to the operating system.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes the arena locks itself and only releases pages no allocation
    // uses; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
