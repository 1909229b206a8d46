//! The C allocator's settings for a long-running server.
//!
//! glibc's `malloc` serves a request from its arenas (one per thread that allocates, up to
//! eight per CPU) unless the request reaches the mmap threshold. The threshold starts at
//! 128 KiB but rises to the size of any mapped block that is freed, up to 32 MiB, and what an
//! arena frees is kept for reuse rather than returned. An upload to object storage holds parts
//! of several MiB from the moment they fill until the store has taken them, and they are freed
//! on whichever runtime thread finished the request: with the rising threshold they landed in
//! the arenas, and the server's resident memory grew by about 20 MiB with every gibibyte
//! uploaded while what it really held stayed under 30 MiB (measured with heaptrack; see
//! docs/SECURITY.md, object-storage uploads).
//!
//! A fixed threshold turns the rise off: blocks of [`MMAP_THRESHOLD`] and more are mapped on
//! their own and go back to the kernel when freed. Below it (transfer chunks of 256 KiB, SSH
//! packets) nothing changes, so the local-disk paths keep their reuse of warm blocks.

/// Requests of at least this many bytes are mapped on their own and unmapped when freed.
pub const MMAP_THRESHOLD: usize = 1024 * 1024;

/// Applies the settings; called once, before the runtime's threads exist. Where the C
/// library is not glibc it does nothing (musl maps large blocks on its own already).
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    set_mmap_threshold();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_mmap_threshold() {
    let Ok(threshold) = libc::c_int::try_from(MMAP_THRESHOLD) else { return };
    // SAFETY: `mallopt` only changes the allocator's parameters (under its own lock); it
    // takes no pointer, and any value is accepted or refused with 0.
    let accepted = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) };
    if accepted != 1 {
        tracing::warn!(
            "the C allocator refused a fixed mmap threshold; large buffers may stay resident"
        );
    }
}
