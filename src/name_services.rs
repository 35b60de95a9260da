//! Where users, groups and host names come from in the static binary.
//!
//! glibc answers `getpwnam`, `getgrouplist` and `getaddrinfo` through the
//! services that `/etc/nsswitch.conf` lists. `files` and `dns` are built into
//! glibc (≥ 2.34); any other service (`systemd`, `sss`, `ldap`, `mdns4`…) is a
//! `libnss_*.so` that glibc would `dlopen` from the image. In a statically
//! linked binary that load brings the image's own `libc.so.6` in beside ours
//! and the process crashes: on a Debian host whose nsswitch.conf says
//! `passwd: files systemd`, a `user =` that is not in /etc/passwd segfaulted
//! PID 1 instead of giving the "does not exist" message.
//!
//! So the static build asks glibc for the built-in services only, whatever the
//! image's nsswitch.conf says: users and groups from /etc/passwd and
//! /etc/group, host names from /etc/hosts and then DNS (/etc/resolv.conf) —
//! what containers use, and what musl-based images do anyway. The dynamic build
//! (development, the test suite) keeps the system's configuration.

/// Pins glibc's name services to the built-in `files` and `dns` (static build
/// only; a no-op otherwise). Call first in `main`, before any thread exists
/// and before any lookup.
pub fn use_built_in_services_only() {
    #[cfg(all(target_feature = "crt-static", target_env = "gnu"))]
    built_in::configure();
}

#[cfg(all(target_feature = "crt-static", target_env = "gnu"))]
mod built_in {
    use std::ffi::{c_char, c_int};

    extern "C" {
        /// glibc's `__nss_configure_lookup(database, service_line)`: replaces
        /// the nsswitch.conf line of one database for this process.
        fn __nss_configure_lookup(database: *const c_char, services: *const c_char) -> c_int;
    }

    /// Every database a lookup of ours can reach, directly or inside glibc
    /// (`getgrouplist` reads `initgroups`; `getaddrinfo` may read `services`).
    const LINES: [(&std::ffi::CStr, &std::ffi::CStr); 6] = [
        (c"passwd", c"files"),
        (c"group", c"files"),
        (c"initgroups", c"files"),
        (c"hosts", c"files dns"),
        (c"services", c"files"),
        (c"protocols", c"files"),
    ];

    pub fn configure() {
        for (database, services) in LINES {
            // SAFETY: both arguments are NUL-terminated static strings; this
            // runs in `main` before any other thread exists, and glibc copies
            // what it keeps. A failure (unknown database) leaves that database
            // as nsswitch.conf says, which is no worse than not calling.
            unsafe { __nss_configure_lookup(database.as_ptr(), services.as_ptr()) };
        }
    }
}
