//! Duration and signal names from config files never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = supervisor::config::parse_duration(text);
    let _ = supervisor::config::parse_signal(text);
});
